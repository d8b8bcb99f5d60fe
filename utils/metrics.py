"""Segmentation metrics for one 2-D binary mask pair: Dice, IoU, HD95 and NSD.

All four take ``pred`` and ``gt`` as 2-D masks of the same shape (bool, or 0/1 or 0/255 numbers;
see ``utils.images.to_mask``). Distances are in millimetres: ``spacing`` is the pixel size as
``(row, col)`` in mm, like ``Case.spacing``.

Overlap metrics count pixels:

- ``dice = 2 |P ∩ G| / (|P| + |G|)`` and ``iou = |P ∩ G| / |P ∪ G|``.

Boundary metrics compare the two *boundaries*. A mask's boundary is its set of foreground pixels
with at least one 4-connected neighbour in the background, pixels outside the image counting as
background (``mask & ~binary_erosion(mask)``). This is the definition MONAI uses
(``monai.metrics.utils.get_mask_edges``), so the numbers here match MONAI's
``compute_hausdorff_distance(..., percentile=95)`` and ``compute_surface_dice``:

- ``hd95``: for every boundary pixel of one mask, the distance (in mm) to the nearest boundary
  pixel of the other; take the 95th percentile (linear interpolation) of each direction and
  return the larger one. Lower is better; 0 means the boundaries coincide.
- ``nsd`` (normalised surface Dice, Nikolov et al. 2021): the fraction of both boundaries that lies
  within ``tolerance`` mm of the other boundary. 1 is best.

Empty masks (a model that finds nothing, or a slice without the structure) need a convention:

=========================  =====  =====  =====================================  =====
case                       dice   iou    hd95                                   nsd
=========================  =====  =====  =====================================  =====
both empty                 1.0    1.0    0.0                                    1.0
exactly one empty          0.0    0.0    image diagonal in mm (worst case)      0.0
=========================  =====  =====  =====================================  =====

MONAI agrees on dice/iou (with ``ignore_empty=False``) and on nsd with one mask empty; it returns
NaN for hd95 with any mask empty and for nsd with both empty, which would poison a mean.

For ``hd95`` with one mask empty the distance is undefined. We return
the diagonal of the image's field of view, ``sqrt((H * row_mm)**2 + (W * col_mm)**2)``, which is
at least as large as any distance two pixels of the image can have: a finite worst-case penalty,
as segmentation challenges assign a fixed maximum when a structure is missed or spurious. It keeps
means over cases finite while still ranking a miss as the worst possible result.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from utils.images import to_mask

__all__ = ["dice", "iou", "hd95", "nsd", "boundary"]


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|P ∩ G| / (|P| + |G|)`` in [0, 1]. Both empty: 1.0; one empty: 0.0."""
    pred, gt = _check_pair(pred, gt)
    total = pred.sum() + gt.sum()
    if total == 0:
        return 1.0  # nothing to find and nothing found: a perfect answer
    return float(2.0 * np.logical_and(pred, gt).sum() / total)


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Intersection over union (Jaccard) ``|P ∩ G| / |P ∪ G|`` in [0, 1]. Both empty: 1.0; one empty: 0.0."""
    pred, gt = _check_pair(pred, gt)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the two boundaries, in mm.

    ``max(p95(d(boundary(pred) -> boundary(gt))), p95(d(boundary(gt) -> boundary(pred))))``, the
    same as MONAI's ``compute_hausdorff_distance(..., percentile=95, directed=False)``. The 95th
    percentile (rather than the maximum) ignores the worst 5% of boundary pixels, so a few stray
    pixels do not dominate the score.

    Both empty: 0.0. Exactly one empty: the image diagonal in mm (see the module docstring).
    ``spacing`` is the pixel size ``(row, col)`` in mm.
    """
    pred, gt = _check_pair(pred, gt)
    spacing = _check_spacing(spacing)
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        rows, cols = pred.shape
        return float(np.hypot(rows * spacing[0], cols * spacing[1]))
    pred_to_gt, gt_to_pred = _surface_distances(pred, gt, spacing)
    return float(max(np.percentile(pred_to_gt, 95), np.percentile(gt_to_pred, 95)))


def nsd(pred: np.ndarray, gt: np.ndarray, tolerance: float = 1.0, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Normalised surface Dice (Nikolov et al. 2021) at ``tolerance`` mm, in [0, 1].

    ``(#pred boundary pixels within tol of gt's boundary + #gt boundary pixels within tol of pred's)
    / (#pred boundary pixels + #gt boundary pixels)``; "within" means distance <= tolerance. It
    asks "how much of the outline would a reader accept as correct?", which Dice (dominated by the
    interior of large objects) does not. Same as MONAI's ``compute_surface_dice`` with
    ``class_thresholds=[tolerance]``.

    Both empty: 1.0. Exactly one empty: 0.0. ``spacing`` is the pixel size ``(row, col)`` in mm.
    """
    pred, gt = _check_pair(pred, gt)
    spacing = _check_spacing(spacing)
    tolerance = _check_tolerance(tolerance)
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    pred_to_gt, gt_to_pred = _surface_distances(pred, gt, spacing)
    within = np.count_nonzero(pred_to_gt <= tolerance) + np.count_nonzero(gt_to_pred <= tolerance)
    return float(within / (pred_to_gt.size + gt_to_pred.size))


def boundary(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask: foreground pixels with a 4-connected background neighbour.

    Pixels outside the image count as background, so a mask touching the image edge has a boundary
    there too (as in MONAI's ``get_mask_edges``).
    """
    mask = _check_mask(mask, "mask")
    # binary_erosion's default structure is the 4-connected cross and its border_value is 0.
    return mask & ~ndimage.binary_erosion(mask)


# --------------------------------------------------------------------------------------------
# Helpers


def _surface_distances(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances in mm from each boundary pixel of one mask to the nearest boundary pixel of the other."""
    edges_pred, edges_gt = boundary(pred), boundary(gt)
    # distance_transform_edt gives, for every pixel, the distance to the nearest zero; with the
    # boundary as the zeros that is "distance to the boundary". sampling= makes it millimetres.
    to_gt = ndimage.distance_transform_edt(~edges_gt, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~edges_pred, sampling=spacing)
    return to_gt[edges_pred], to_pred[edges_gt]


def _check_mask(mask: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim == 3 and array.shape[0] != 1:
        raise ValueError(
            f"{name} is 3-D with shape {array.shape}; these metrics are for 2-D masks (H, W). "
            f"For a volume, compute them slice by slice, e.g. [dice(p, g) for p, g in zip(pred, gt)]."
        )
    return to_mask(array, name=name)


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = _check_mask(pred, "pred"), _check_mask(gt, "gt")
    if pred.shape != gt.shape:
        raise ValueError(
            f"pred has shape {pred.shape} but gt has shape {gt.shape}; they must match pixel for pixel. "
            "Resize the prediction to the ground truth's grid (nearest neighbour) before scoring."
        )
    return pred, gt


def _check_spacing(spacing) -> tuple[float, float]:
    try:
        values = np.asarray(spacing, dtype=float).ravel()
    except (TypeError, ValueError):
        values = np.zeros(0)  # not numbers: reported below with the expected form
    if values.size != 2:
        raise ValueError(
            f"spacing must be 2 numbers (row_mm, col_mm), got {spacing!r}. For 2-D masks pass e.g. (1.0, 1.0)."
        )
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"spacing must be positive pixel sizes in mm (row_mm, col_mm), got {spacing!r}. "
            "Use (1.0, 1.0) to measure in pixels."
        )
    return float(values[0]), float(values[1])


def _check_tolerance(tolerance) -> float:
    try:
        value = float(tolerance)
    except (TypeError, ValueError):
        value = float("nan")  # not a number: reported below
    if not np.isfinite(value) or value < 0:
        raise ValueError(
            f"tolerance must be a distance in mm >= 0, got {tolerance!r}. Typical values are 1-2 pixel widths."
        )
    return value

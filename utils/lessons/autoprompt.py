"""Auto-prompting: a box prompt from a coarse classical segmentation, then SAM refines it.

A promptable model still needs someone to draw the box. The survey's *auto-prompting* family replaces
that person with another method; the simplest one is classical image processing. Here the recipe is
(:func:`coarse_mask`):

1. grey levels (mean of the RGB channels), smoothed with a Gaussian of ``sigma`` pixels
   (:func:`grey_levels`; speckle, noise and hairs would otherwise split the target or bridge it to
   the border);
2. Otsu's threshold, keeping the ``polarity`` side: ``"bright"`` (above) or ``"dark"`` (below);
3. a binary opening (``opening`` iterations) that cuts thin bridges between regions;
4. with ``clear_border=True``, drop every component that touches the image border (background,
   skin, the body outline usually do; a lesion or an organ in the field of view usually does not);
5. keep the largest connected component (8-connectivity) and fill its holes.

:func:`auto_box` turns that mask into a box ``[x0, y0, x1, y1]`` (inclusive pixel indices, as
:func:`utils.prompts.box_from_mask`), optionally grown by ``margin`` pixels; ``None`` when nothing
survives the recipe. :func:`compare_prompts` runs the whole pipeline on cases with one encoder call
each and scores three masks against the ground truth: the classical mask itself, the model's mask
from the automatic box, and the model's mask from the ground-truth box (what a careful annotator
would give: the reference an automatic prompt is measured against). :func:`utils.prompts.box_iou` says how
close the automatic box came to the annotator's; :func:`plot_pipeline` draws classical mask → box → mask.

When does it work? When the target is the largest region of one intensity class away from the
border: a pigmented skin lesion, a hypoechoic breast lesion, the brain on a skull-stripped scan.
When the target is a small lesion inside an organ of similar grey level (a liver lesion on CT), the
largest dark region is something else, the box lands elsewhere and no model can recover: garbage
box in, garbage mask out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage

from utils import metrics
from utils.checks import finite_number, whole_number
from utils.images import to_mask, to_rgb_uint8
from utils.prompts import box_from_mask, box_iou, check_box, next_box

__all__ = [
    "POLARITIES",
    "SOURCES",
    "auto_box",
    "coarse_mask",
    "compare_prompts",
    "grey_levels",
    "plot_pipeline",
]

POLARITIES = ("bright", "dark")

#: Where the recipe is tried, and with which polarity: (data source, target, polarity); the cases themselves
#: come from utils.cases.autoprompt_cases. MedSegBench sets run in full mode only; the CT liver lesion is
#: there on purpose, as a case the recipe cannot solve.
SOURCES: tuple[tuple[str, str, str], ...] = (
    ("MedSegBench isic2016 (full mode)", "pigmented skin lesion, darker than the skin", "dark"),
    ("MedSegBench busi (full mode)", "breast lesion, darker (hypoechoic) than the tissue", "dark"),
    ("Colin27 / MNI152 T1 brain", "the brain, brighter than the background", "bright"),
    ("dermoscopy phantom", "pigmented skin lesion", "dark"),
    ("ultrasound phantom", "hypoechoic lesion (with an acoustic shadow below it)", "dark"),
    ("CT phantom", "small hypodense lesion inside the liver: the recipe's failure case", "dark"),
)


def _check_polarity(polarity: Any) -> str:
    if polarity not in POLARITIES:
        raise ValueError(
            f"polarity must be 'bright' (the target is brighter than its surroundings) or 'dark'; got {polarity!r}."
        )
    return polarity


def grey_levels(image: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Step 1 of the recipe: float grey levels (mean of the RGB channels), smoothed by a Gaussian of ``sigma``
    pixels (0: no smoothing). ``image``: (H, W) or (H, W, 3) uint8, or an (H, W) float grey image."""
    sigma = finite_number(sigma, "sigma", minimum=0)
    array = np.asarray(image)
    if array.ndim == 2 and np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise ValueError("image contains NaN or inf; replace them (np.nan_to_num) before thresholding.")
        grey = array.astype(float)
    else:
        grey = to_rgb_uint8(array, name="image").astype(float).mean(axis=2)
    return ndimage.gaussian_filter(grey, sigma) if sigma > 0 else grey


def coarse_mask(
    image: np.ndarray,
    polarity: str = "bright",
    sigma: float = 2.0,
    opening: int = 2,
    clear_border: bool = True,
) -> np.ndarray:
    """The coarse classical segmentation of the module notes: Otsu → polarity → opening → largest component.

    ``image``: (H, W) or (H, W, 3) uint8, or an (H, W) float grey image. Returns an (H, W) bool mask,
    all False when no component survives (a flat image, or every region touches the border).
    """
    from skimage.filters import threshold_otsu

    polarity = _check_polarity(polarity)
    opening = whole_number(opening, "opening")
    grey = grey_levels(image, sigma)
    if grey.max() == grey.min():  # Otsu needs two grey levels
        return np.zeros(grey.shape, dtype=bool)
    threshold = threshold_otsu(grey)
    kept = grey > threshold if polarity == "bright" else grey <= threshold
    if opening:
        kept = ndimage.binary_opening(kept, iterations=opening)
    labels, count = ndimage.label(kept, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros(grey.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # the background is not a component
    if clear_border:
        edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
        sizes[edge] = 0
    if sizes.max() == 0:
        return np.zeros(grey.shape, dtype=bool)
    return ndimage.binary_fill_holes(labels == int(sizes.argmax()))


def auto_box(image: np.ndarray, polarity: str = "bright", margin: int = 0, **coarse: Any) -> np.ndarray | None:
    """The box of :func:`coarse_mask` (``coarse`` are its options), grown by ``margin`` pixels and clipped
    to the image (:func:`utils.prompts.next_box`); ``None`` when the coarse mask is empty (no automatic
    prompt for this image)."""
    margin = whole_number(margin, "margin")
    mask = coarse_mask(image, polarity, **coarse)
    return next_box(mask, margin) if mask.any() else None


def _predict(predictor: Any, box: np.ndarray) -> np.ndarray:
    masks, _, _ = predictor.predict(box=box, multimask_output=False)
    return np.asarray(masks[0], dtype=bool)


def _polarities(polarity: str | Sequence[str], n: int) -> list[str]:
    chosen = [polarity] * n if isinstance(polarity, str) else list(polarity)
    if len(chosen) != n:
        raise ValueError(f"give one polarity per case: {n} cases but {len(chosen)} polarities.")
    return [_check_polarity(p) for p in chosen]


def compare_prompts(
    predictor: Any,
    cases: Sequence[Any],
    polarity: str | Sequence[str] = "bright",
    margin: int = 0,
    keep_masks: bool = False,
    progress: bool = True,
    boxer: Callable[[np.ndarray, str], Any] | None = None,
    **coarse: Any,
) -> pd.DataFrame:
    """Classical mask vs the model with the automatic box vs the model with the ground-truth box, per case.

    ``polarity`` is one value for all cases or one per case; ``margin`` and ``coarse`` go to
    :func:`auto_box`. ``boxer(image, polarity)`` replaces :func:`auto_box` as the automatic prompt (a box
    ``[x0, y0, x1, y1]`` or None; checked with :func:`utils.prompts.check_box`), to score a recipe of your
    own against the course's. Each image is encoded once (``set_image``) and decoded twice. Columns:

    - ``case, dataset`` (:func:`utils.cases.case_dataset`), ``modality, source, polarity``;
    - ``found``: did the recipe give a box;
    - ``dice_classical, dice_auto_box, dice_gt_box``: Dice of the classical mask, of the model's mask
      from the automatic box (0 without one) and from the ground-truth box;
    - ``box_iou``: :func:`utils.prompts.box_iou` of the automatic and the ground-truth box (0 without one);
    - ``auto_box, gt_box`` (lists), and with ``keep_masks=True`` ``classical_mask, auto_mask,
      gt_box_mask`` for :func:`plot_pipeline`.
    """
    from tqdm.auto import tqdm

    from utils.cases import case_dataset

    cases = list(cases)
    if not cases:
        raise ValueError("cases is empty: pass at least one utils.datasets.Case.")
    polarities = _polarities(polarity, len(cases))
    rows = []
    for case, side in tqdm(list(zip(cases, polarities)), desc="auto-prompt", disable=not progress):
        classical = coarse_mask(case.image, side, **coarse)
        box = auto_box(case.image, side, margin=margin, **coarse) if boxer is None else boxer(case.image, side)
        if box is not None and boxer is not None:
            box = check_box(box, case.mask.shape, name=f"the box for {case.name}")
        gt_box = box_from_mask(case.mask)
        predictor.set_image(case.image)  # one encoder call; both boxes reuse the embedding
        auto_mask = _predict(predictor, box) if box is not None else np.zeros(case.mask.shape, dtype=bool)
        gt_mask = _predict(predictor, gt_box)
        row = {
            "case": case.name,
            "dataset": case_dataset(case),
            "modality": case.modality,
            "source": case.source,
            "polarity": side,
            "found": box is not None,
            "dice_classical": metrics.dice(classical, case.mask),
            "dice_auto_box": metrics.dice(auto_mask, case.mask),
            "dice_gt_box": metrics.dice(gt_mask, case.mask),
            "box_iou": box_iou(box, gt_box) if box is not None else 0.0,
            "auto_box": None if box is None else box.tolist(),
            "gt_box": gt_box.tolist(),
        }
        if keep_masks:
            row.update(classical_mask=classical, auto_mask=auto_mask, gt_box_mask=gt_mask)
        rows.append(row)
    return pd.DataFrame(rows)


def plot_pipeline(cases: Sequence[Any], table: pd.DataFrame, size: float = 2.6):
    """One row per case: the classical mask with its box → the model's mask from that box → the model's
    mask from the ground-truth box (gold outline: ground truth). ``table`` comes from
    :func:`compare_prompts` with ``keep_masks=True``, for the same cases in the same order."""
    import matplotlib.pyplot as plt

    from utils import viz

    cases = list(cases)
    if "auto_mask" not in table or len(table) != len(cases):
        raise ValueError("plot_pipeline needs compare_prompts(..., keep_masks=True) run on these same cases.")
    fig, axes = plt.subplots(
        len(cases), 3, figsize=(3 * size, len(cases) * size + 0.4), squeeze=False, layout="constrained"
    )
    for row_axes, case, (_, row) in zip(axes, cases, table.iterrows()):
        panels = (
            ("classical mask", row["classical_mask"], row["auto_box"], row["dice_classical"]),
            ("model · automatic box", row["auto_mask"], row["auto_box"], row["dice_auto_box"]),
            ("model · ground-truth box", row["gt_box_mask"], row["gt_box"], row["dice_gt_box"]),
        )
        for ax, (title, mask, box, dice) in zip(row_axes, panels):
            viz.show_case(case, ax=ax, pred=to_mask(mask), box=box, title=title, dice=dice, legend=False)
            ax.title.set_fontsize(8)
        name_axis = row_axes[0]
        name_axis.text(
            -0.04, 0.5, case.name, transform=name_axis.transAxes, rotation=90, ha="right", va="center", fontsize=7
        )
    viz.add_legend(fig, ["ground_truth", "prediction", "box"])
    return fig

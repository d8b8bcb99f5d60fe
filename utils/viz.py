"""Figures: the one plotting implementation every notebook uses (matplotlib only).

Conventions shared by all functions, so every figure in the course reads the same way:

- Colours come from :data:`course_palette` and legend text from :data:`LEGEND_LABELS`
  ("ground truth", "prediction", "positive point", "negative point", "box", TP / FP / FN).
- Ground truth is drawn as a gold outline, a prediction as a translucent blue fill with an outline.
- Points use SAM's convention: ``coords`` is (N, 2) as (x, y) = (column, row) in pixels and
  ``labels`` is 1 for a positive and 0 for a negative point. Positive points are green stars,
  negative points red crosses (shape and colour both differ, for colour-blind readers).
- Boxes are ``[x0, y0, x1, y1]`` in the same pixel coordinates.

Functions draw on an ``Axes`` you pass (or create one) and return the ``Axes`` / ``Figure``; they
never call ``plt.show()`` and never change the backend. Figures made here are pyplot figures, so
Jupyter displays them at the end of the cell; in a loop, ``plt.close(fig)`` what you no longer need.
Legends sit below the axes; save with ``fig.savefig(path, bbox_inches="tight")`` (as Jupyter's inline
display does) so that a legend is never cropped.
Inputs are checked with :mod:`utils.images` (``to_rgb_uint8``, ``to_mask``): a wrong shape, box or
point array raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from numpy.typing import ArrayLike

from utils.images import to_mask, to_rgb_uint8

__all__ = [
    "course_palette",
    "LEGEND_LABELS",
    "legend_handles",
    "add_legend",
    "show_mask",
    "show_points",
    "show_box",
    "show_case",
    "overlay_grid",
    "contour_compare",
]

# Read-only so that one notebook cannot recolour another's figures.
course_palette: Mapping[str, str] = MappingProxyType(
    {
        "ground_truth": "#FFC20A",  # gold: visible on grey scans, distinct from the blue prediction
        "prediction": "#1E90FF",  # dodger blue, as in SAM's own demos
        "positive": "#2ECC40",  # green star
        "negative": "#FF4136",  # red cross
        "box": "#FF4FD8",  # magenta: not confused with masks or points
        "tp": "#2ECC40",  # green: in both
        "fp": "#FF4136",  # red: predicted, not in the ground truth
        "fn": "#2F6BFF",  # blue: in the ground truth, missed
    }
)

LEGEND_LABELS: Mapping[str, str] = MappingProxyType(
    {
        "ground_truth": "ground truth",
        "prediction": "prediction",
        "positive": "positive point",
        "negative": "negative point",
        "box": "box",
        "tp": "TP (both)",
        "fp": "FP (prediction only)",
        "fn": "FN (ground truth only)",
    }
)

_MASK_ALPHA = 0.45
_OVERLAY_ALPHA = 0.6


# ----------------------------------------------------------------------------- input checks
def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1; got {alpha}.")
    return alpha


def _image_shape(ax: Axes) -> tuple[int, int] | None:
    """(H, W) of the first image drawn on ``ax`` (the background), or None if there is none."""
    if not ax.images:
        return None
    return tuple(ax.images[0].get_array().shape[:2])


def _check_box(box: ArrayLike) -> np.ndarray:
    array = np.asarray(box, dtype=float).reshape(-1)
    if array.size != 4:
        raise ValueError(f"box must be 4 numbers [x0, y0, x1, y1] (pixels); got {array.size} values: {array.tolist()}.")
    if not np.isfinite(array).all():
        raise ValueError(f"box contains NaN or inf: {array.tolist()}.")
    x0, y0, x1, y1 = array
    if x1 < x0 or y1 < y0:
        raise ValueError(
            f"box must be [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1; got {array.tolist()}. "
            "Is it (x, y, width, height) or (row, col) order?"
        )
    return array


def _check_points(coords: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels).reshape(-1)
    if coords.ndim == 1 and coords.size == 2:
        coords = coords[None, :]  # a single (x, y) point
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"point coords must be (N, 2) as (x, y); got shape {coords.shape}.")
    if len(coords) != len(labels):
        raise ValueError(
            f"points and labels differ in length: {len(coords)} coords but {len(labels)} labels "
            "(one label per point: 1 positive, 0 negative)."
        )
    if not np.isfinite(coords).all():
        raise ValueError("point coords contain NaN or inf.")
    if labels.size and not np.isin(labels, (0, 1)).all():
        raise ValueError(f"point labels must be 1 (positive) or 0 (negative); got {np.unique(labels).tolist()}.")
    return coords, labels.astype(bool)


def _dice(pred: np.ndarray, gt: np.ndarray) -> float:
    # Title-only helper (both empty -> 1.0); the reference implementation is utils.metrics.dice.
    total = int(pred.sum()) + int(gt.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(pred, gt).sum()) / total


# ----------------------------------------------------------------------------- legends
def legend_handles(entries: Iterable[str]) -> list[Any]:
    """Legend proxies for palette keys (``"ground_truth"``, ``"prediction"``, ``"positive"``,
    ``"negative"``, ``"box"``, ``"tp"``, ``"fp"``, ``"fn"``), drawn as the functions draw them."""
    handles: list[Any] = []
    for key in entries:
        if key not in course_palette:
            raise ValueError(f"unknown legend entry {key!r}; choose from {sorted(course_palette)}.")
        color, label = course_palette[key], LEGEND_LABELS[key]
        if key == "ground_truth":
            handles.append(Patch(facecolor="none", edgecolor=color, linewidth=1.5, label=label))
        elif key == "prediction":
            handles.append(Patch(facecolor=to_rgba(color, _MASK_ALPHA), edgecolor=color, label=label))
        elif key in ("positive", "negative"):
            # Sized like the scatter markers of show_points (a star reads smaller than a cross).
            marker, markersize = ("*", 12) if key == "positive" else ("X", 8)
            handles.append(
                Line2D(
                    [],
                    [],
                    linestyle="none",
                    marker=marker,
                    markersize=markersize,
                    markerfacecolor=color,
                    markeredgecolor="white",
                    label=label,
                )
            )
        elif key == "box":
            handles.append(Patch(facecolor="none", edgecolor=color, linewidth=2, label=label))
        else:  # tp / fp / fn overlay colours
            handles.append(Patch(facecolor=to_rgba(color, _OVERLAY_ALPHA), edgecolor=color, label=label))
    return handles


def add_legend(target: Axes | Figure, entries: Iterable[Any], **kwargs: Any) -> Legend:
    """Add a legend with the course's colours and wording to an ``Axes`` or a ``Figure``.

    ``entries`` are palette keys (see :func:`legend_handles`) or ready-made legend handles. Defaults
    put it below the axes (or figure) so it never hides the anatomy; ``kwargs`` override them.
    """
    handles = [legend_handles([e])[0] if isinstance(e, str) else e for e in entries]
    if isinstance(target, Figure):
        options = {"loc": "outside lower center", "ncols": len(handles), "frameon": False, "fontsize": 9}
    else:
        options = {
            "loc": "upper center",
            "bbox_to_anchor": (0.5, 0.0),
            "ncols": min(len(handles), 3),
            "frameon": False,
            "fontsize": 8,
            "handlelength": 1.5,
            "columnspacing": 1.0,
        }
    options.update(kwargs)
    return target.legend(handles=handles, **options)


# ----------------------------------------------------------------------------- primitives
def show_mask(
    ax: Axes,
    mask: ArrayLike,
    color: Any = None,
    alpha: float = _MASK_ALPHA,
    linewidth: float = 1.0,
    contour: bool = True,
) -> Axes:
    """Draw ``mask`` as a translucent fill plus a thin outline.

    ``color`` is any matplotlib colour (default: the palette's prediction blue). ``alpha=0`` draws the
    outline only (how ground truth is shown); ``contour=False`` the fill only. If ``ax`` already shows
    an image, the mask must have the same (H, W).
    """
    alpha = _check_alpha(alpha)
    mask = to_mask(mask, shape=_image_shape(ax))
    rgb = to_rgba(course_palette["prediction"] if color is None else color)[:3]
    if alpha > 0:
        rgba = np.zeros(mask.shape + (4,), dtype=np.float32)
        rgba[mask] = (*rgb, alpha)  # transparent (alpha 0) everywhere else
        ax.imshow(rgba, interpolation="nearest")
    # A contour needs both values present; an empty or full mask has no boundary to draw.
    if contour and linewidth > 0 and mask.any() and not mask.all():
        ax.contour(mask.astype(np.float32), levels=[0.5], colors=[rgb], linewidths=linewidth)
    return ax


def show_points(ax: Axes, coords: ArrayLike, labels: ArrayLike, size: float = 120) -> Axes:
    """Draw prompt points: positives (label 1) as green stars, negatives (label 0) as red crosses.

    ``coords`` is (N, 2) as (x, y) pixels; one scatter collection per non-empty group.
    """
    coords, positive = _check_points(coords, labels)
    for key, chosen, marker, scale in (("positive", positive, "*", 1.0), ("negative", ~positive, "X", 0.6)):
        if chosen.any():
            ax.scatter(
                coords[chosen, 0],
                coords[chosen, 1],
                s=size * scale,
                marker=marker,
                color=course_palette[key],
                edgecolors="white",
                linewidths=1.25,
                label=LEGEND_LABELS[key],
                zorder=4,
            )
    return ax


def show_box(ax: Axes, box: ArrayLike, color: Any = None, linewidth: float = 2.0) -> Axes:
    """Draw a box prompt ``[x0, y0, x1, y1]`` (pixels) as an unfilled rectangle."""
    x0, y0, x1, y1 = _check_box(box)
    ax.add_patch(
        Rectangle(
            (x0, y0),
            x1 - x0,
            y1 - y0,
            fill=False,
            linewidth=linewidth,
            zorder=3,
            edgecolor=course_palette["box"] if color is None else color,
            label=LEGEND_LABELS["box"],
        )
    )
    return ax


def _fit_to_image(ax: Axes, shape: tuple[int, int]) -> None:
    # Keep the view on the image even if a point lies outside it; hide ticks.
    height, width = shape
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_axis_off()


# ----------------------------------------------------------------------------- composite figures
def show_case(
    case: Any,
    ax: Axes | None = None,
    pred: ArrayLike | None = None,
    box: ArrayLike | None = None,
    points: tuple[ArrayLike, ArrayLike] | None = None,
    title: str | None = None,
    dice: float | None = None,
    legend: bool = True,
) -> Axes:
    """Show a :class:`~utils.datasets.Case`: image, ground truth outline, optional prediction and prompts.

    ``points`` is ``(coords, labels)``. The title is ``"name · modality"`` (or ``title``), followed by
    the Dice score when ``dice`` is given or ``pred`` is (computed from ``pred`` then; pass ``dice``
    from ``utils.metrics`` to show exactly the number your table reports). Returns the Axes.
    """
    image = to_rgb_uint8(case.image, name=f"case {getattr(case, 'name', '')!r} image")
    gt = to_mask(case.mask, shape=image.shape, name="case mask")
    if ax is None:
        _, ax = plt.subplots(figsize=(4.0, 4.4), layout="constrained")
    ax.imshow(image)
    entries = ["ground_truth"]
    if pred is not None:
        pred = to_mask(pred, shape=image.shape, name="pred")
        show_mask(ax, pred, color=course_palette["prediction"])
        entries.append("prediction")
        if dice is None:
            dice = _dice(pred, gt)
    show_mask(ax, gt, color=course_palette["ground_truth"], alpha=0.0, linewidth=1.5)
    if box is not None:
        show_box(ax, box)
        entries.append("box")
    if points is not None:
        if len(points) != 2:
            raise ValueError("points must be a (coords, labels) pair, e.g. utils.prompts.points_from_mask(...).")
        coords, labels = _check_points(*points)
        show_points(ax, coords, labels)
        entries += [key for key, present in (("positive", labels.any()), ("negative", (~labels).any())) if present]
    head = title if title is not None else f"{case.name} · {case.modality}"
    ax.set_title(head if dice is None else f"{head} · Dice {dice:.3f}", fontsize=10)
    _fit_to_image(ax, image.shape[:2])
    if legend:
        add_legend(ax, entries)
    return ax


def overlay_grid(
    cases: Sequence[Any],
    preds: Sequence[ArrayLike | None] | None = None,
    ncols: int = 4,
    titles: Sequence[str] | None = None,
    size: float = 3.0,
) -> Figure:
    """A gallery: each case with its ground-truth outline (and prediction fill when ``preds`` is given).

    ``preds`` may contain ``None`` for cases without a prediction; titles default to
    ``"name · modality"`` plus Dice when a prediction is shown. ``ncols`` is capped at the number of
    cases; unused cells of the last row are hidden. One legend below the grid. Returns the Figure.
    """
    cases = list(cases)
    n = len(cases)
    if n == 0:
        raise ValueError("overlay_grid needs at least one case.")
    if int(ncols) < 1:
        raise ValueError(f"ncols must be >= 1; got {ncols}.")
    if preds is not None and len(preds) != n:
        raise ValueError(f"preds has {len(preds)} entries but there are {n} cases; pass one (or None) per case.")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries but there are {n} cases.")
    ncols = min(int(ncols), n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows + 0.5), squeeze=False, layout="constrained"
    )
    any_pred = False
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_visible(False)
            continue
        case = cases[i]
        image = to_rgb_uint8(case.image, name=f"cases[{i}] image")
        gt = to_mask(case.mask, shape=image.shape, name=f"cases[{i}] mask")
        ax.imshow(image)
        title = titles[i] if titles is not None else f"{case.name} · {case.modality}"
        pred = None if preds is None else preds[i]
        if pred is not None:
            pred = to_mask(pred, shape=image.shape, name=f"preds[{i}]")
            show_mask(ax, pred)
            any_pred = True
            if titles is None:
                title += f"\nDice {_dice(pred, gt):.3f}"
        show_mask(ax, gt, color=course_palette["ground_truth"], alpha=0.0, linewidth=1.5)
        ax.set_title(title, fontsize=9)
        _fit_to_image(ax, image.shape[:2])
    add_legend(fig, ["ground_truth", "prediction"] if any_pred else ["ground_truth"])
    return fig


def contour_compare(
    ax: Axes,
    image: ArrayLike,
    pred: ArrayLike,
    gt: ArrayLike,
    spacing: tuple[float, float] | None = None,
    alpha: float = _OVERLAY_ALPHA,
) -> Axes:
    """Where prediction and ground truth agree and disagree: TP green, FP red, FN blue.

    Pixels in both masks (true positives) are green, predicted-only pixels (false positives,
    over-segmentation) red, ground-truth-only pixels (false negatives, missed) blue; the legend gives
    each area in pixels, or in mm² when ``spacing`` (row, col) in mm is given. Returns the Axes.
    """
    alpha = _check_alpha(alpha)
    image = to_rgb_uint8(image)
    pred = to_mask(pred, shape=image.shape, name="pred")
    gt = to_mask(gt, shape=image.shape, name="gt")
    if spacing is not None:
        spacing = tuple(float(s) for s in spacing)
        if len(spacing) != 2 or not all(math.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must be two positive mm values (row, col); got {spacing}.")
    ax.imshow(image)
    regions = {"tp": pred & gt, "fp": pred & ~gt, "fn": ~pred & gt}
    overlay = np.zeros(pred.shape + (4,), dtype=np.float32)
    for key, region in regions.items():
        overlay[region] = (*to_rgba(course_palette[key])[:3], alpha)
    ax.imshow(overlay, interpolation="nearest")
    handles = legend_handles(regions)
    for handle, region in zip(handles, regions.values()):
        count = int(region.sum())
        area = f"{count * spacing[0] * spacing[1]:.1f} mm²" if spacing is not None else f"{count} px"
        handle.set_label(f"{handle.get_label()}: {area}")
    add_legend(ax, handles, ncols=1)
    ax.set_title(f"prediction vs ground truth · Dice {_dice(pred, gt):.3f}", fontsize=10)
    _fit_to_image(ax, image.shape[:2])
    return ax

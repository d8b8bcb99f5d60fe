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
display does) so that a legend is never cropped. :func:`zoom_to` crops a view to a structure.
Figures of a :func:`utils.evaluate.evaluate` table: :func:`plot_by_mode`, :func:`plot_modality_heatmap`,
:func:`plot_oracle_gap` and :func:`plot_failures`.
Inputs are checked with :mod:`utils.images` (``to_rgb_uint8``, ``to_mask``) and :mod:`utils.prompts`
(``check_box``, ``check_points``): a wrong shape, box or point array raises ``ValueError`` saying what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from numpy.typing import ArrayLike

from utils import metrics
from utils.images import to_mask, to_rgb_uint8
from utils.prompts import check_box, check_points

if TYPE_CHECKING:
    import pandas as pd

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
    "zoom_to",
    "plot_by_mode",
    "plot_modality_heatmap",
    "plot_oracle_gap",
    "plot_failures",
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
    coords, labels = check_points(coords, labels)  # no image size here: a figure may show any region
    positive = labels.astype(bool)
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
    x0, y0, x1, y1 = check_box(box)
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
            dice = metrics.dice(pred, gt)
    show_mask(ax, gt, color=course_palette["ground_truth"], alpha=0.0, linewidth=1.5)
    if box is not None:
        show_box(ax, box)
        entries.append("box")
    if points is not None:
        if len(points) != 2:
            raise ValueError("points must be a (coords, labels) pair, e.g. utils.prompts.points_from_mask(...).")
        coords, labels = check_points(*points)
        labels = labels.astype(bool)
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
                title += f"\nDice {metrics.dice(pred, gt):.3f}"
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
    ax.set_title(f"prediction vs ground truth · Dice {metrics.dice(pred, gt):.3f}", fontsize=10)
    _fit_to_image(ax, image.shape[:2])
    return ax


def zoom_to(
    ax: Axes,
    region: ArrayLike,
    box: ArrayLike | None = None,
    points: ArrayLike | None = None,
    margin: float = 0.35,
    minimum: float = 32,
    pad: int | None = None,
) -> Axes:
    """Limit ``ax`` to where ``region`` (a 2-D mask of the drawn image's shape), ``box`` and ``points`` are.

    By default the view is a square around their bounding box: its side is the box's longer side (at
    least ``minimum`` pixels) grown by ``margin`` of it on each side, so small structures stay visible
    and panels keep their shape. With ``pad`` (pixels) the view is the bounding box itself grown by
    ``pad`` pixels, not squared (for views whose pixels are not square, e.g. a volume's sagittal plane).
    The view stops at the image's edges; with nothing to show (an empty region, no prompt) it is left as is.
    """
    region = np.asarray(region)
    if region.ndim != 2:
        raise ValueError(f"region must be a 2-D mask of the drawn image; got shape {region.shape}.")
    if not (math.isfinite(margin) and margin >= 0 and math.isfinite(minimum) and minimum >= 0):
        raise ValueError(f"margin and minimum must be >= 0; got margin={margin!r}, minimum={minimum!r}.")
    if pad is not None and (isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0):
        raise ValueError(f"pad must be a whole number of pixels >= 0 (or None); got {pad!r}.")
    rows, cols = np.nonzero(region)
    xs, ys = [float(c) for c in cols], [float(r) for r in rows]
    if box is not None:
        x0, y0, x1, y1 = check_box(box)
        xs += [x0, x1]
        ys += [y0, y1]
    for x, y in np.asarray(points if points is not None else [], dtype=float).reshape(-1, 2):
        xs.append(x)
        ys.append(y)
    if not xs:
        return ax
    height, width = region.shape
    if pad is not None:
        ax.set_xlim(max(min(xs) - pad, 0) - 0.5, min(max(xs) + pad, width - 1) + 0.5)
        ax.set_ylim(min(max(ys) + pad, height - 1) + 0.5, max(min(ys) - pad, 0) - 0.5)
        return ax
    half = max(max(xs) - min(xs), max(ys) - min(ys), minimum) * (0.5 + margin)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    ax.set_xlim(max(cx - half, -0.5), min(cx + half, width - 0.5))
    ax.set_ylim(min(cy + half, height - 0.5), max(cy - half, -0.5))
    return ax


# ----------------------------------------------------------------------------- evaluation figures
# Figures of a utils.evaluate.evaluate table: one row per case x prompt mode (x model).


def _models(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"])) if "model" in df.columns else [""]


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns:
        raise ValueError(f"Unknown metric {metric!r}; the table has columns {list(df.columns)}.")


def plot_by_mode(df: pd.DataFrame, metric: str = "dice", modes: Sequence[str] | None = None) -> Figure:
    """Box plot per mode with every case as a dot (one panel per model); the mean is a white diamond."""
    from utils.evaluate import MODES

    _check_metric(df, metric)
    models = _models(df)
    fig, axes = plt.subplots(1, len(models), figsize=(1.0 + 0.9 * len(MODES) * len(models), 3.8), squeeze=False,
                             layout="constrained", sharey=True)  # fmt: skip
    rng = np.random.default_rng(0)  # jitter of the dots only
    for ax, model in zip(axes[0], models):
        rows = df[df["model"] == model] if model else df
        order = [m for m in (modes or MODES) if m in set(rows["mode"])]
        values = [rows.loc[rows["mode"] == m, metric].dropna().to_numpy(float) for m in order]
        ax.boxplot(values, showfliers=False, widths=0.6, medianprops={"color": course_palette["prediction"]})
        for i, v in enumerate(values, start=1):
            ax.scatter(i + rng.uniform(-0.18, 0.18, v.size), v, s=9, color="0.35", alpha=0.6, zorder=3)
            if v.size:
                ax.scatter([i], [v.mean()], marker="D", s=30, color="white", edgecolors="black", zorder=4)
        ax.set_xticks(range(1, len(order) + 1), order, rotation=40, ha="right", fontsize=8)
        ax.set_title(model or metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel(metric)
    return fig


def plot_modality_heatmap(
    df: pd.DataFrame, metric: str = "dice", by: str | Sequence[str] = ("dataset", "modality")
) -> Figure:
    """Mean ``metric`` per data source/modality (rows) × mode (columns), one panel per model, values written in."""
    from utils.evaluate import per_modality

    models = _models(df)
    tables = [per_modality(df[df["model"] == m] if m else df, metric=metric, by=list(by)) for m in models]
    n_rows = max(len(t) for t in tables)
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 1.0 + 0.38 * n_rows), squeeze=False,
                             layout="constrained")  # fmt: skip
    for ax, model, table in zip(axes[0], models, tables):
        values = table.drop(columns="n_cases")
        image = ax.imshow(values.to_numpy(float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
        for (i, j), v in np.ndenumerate(values.to_numpy(float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
        labels = [" · ".join(map(str, k if isinstance(k, tuple) else (k,))) + f" (n={n})"
                  for k, n in zip(values.index, table["n_cases"])]  # fmt: skip
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.set_xticks(range(values.shape[1]), values.columns, rotation=40, ha="right", fontsize=8)
        ax.set_title(f"{model} · mean {metric}" if model else f"mean {metric}", fontsize=10)
    fig.colorbar(image, ax=axes[0, -1], shrink=0.8, label=metric)
    return fig


def plot_oracle_gap(df: pd.DataFrame, metric: str = "dice") -> Figure:
    """Reported (IoU-head) vs oracle ``metric`` for every multimask row: dots below the diagonal are
    cases where the IoU head picked a worse mask than the best of SAM's three."""
    _check_metric(df, metric)
    rows = df[df["choice"] == "iou_head"]
    if rows.empty:
        raise ValueError("No multimask rows (choice 'iou_head') in the table: evaluate a single-point mode.")
    fig, ax = plt.subplots(figsize=(4.6, 4.4), layout="constrained")
    markers = dict(zip(dict.fromkeys(rows["mode"]), "os^v"))
    for (model, mode), part in rows.groupby(["model", "mode"], sort=False):
        gap = (part[f"{metric}_oracle"] - part[metric]).mean()
        ax.scatter(part[f"{metric}_oracle"], part[metric], s=22, alpha=0.75, marker=markers.get(mode, "o"),
                   label=f"{model} · {mode} (mean gap {gap:.3f})")  # fmt: skip
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", linewidth=1)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"oracle {metric} (best of the 3 masks)")
    ax.set_ylabel(f"{metric} of the IoU head's pick")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def plot_failures(
    df: pd.DataFrame,
    cases: Sequence[Any],
    n: int = 4,
    mode: str = "box",
    metric: str = "dice",
    model: str | None = None,
    zoom: bool = True,
) -> Figure:
    """The ``n`` worst cases of ``mode`` by ``metric``: image, ground-truth outline, the reported mask
    and the prompt (box or points). ``zoom`` crops each view to the target, mask and prompt (plus a
    margin, :func:`zoom_to`) so that small structures stay visible. Needs ``evaluate(..., keep_masks=True)``."""
    if "mask" not in df.columns:
        raise ValueError("The table has no masks: run evaluate(..., keep_masks=True) to draw a failure gallery.")
    _check_metric(df, metric)
    rows = df[df["mode"] == mode]
    if model is not None:
        rows = rows[rows["model"] == model]
    if rows.empty:
        raise ValueError(f"No rows for mode {mode!r}" + (f" and model {model!r}" if model else "") + ".")
    worst = rows.nsmallest(int(n), metric)
    by_name = {c.name: c for c in cases}
    fig, axes = plt.subplots(1, len(worst), figsize=(3.2 * len(worst), 3.8), squeeze=False, layout="constrained")
    for ax, (_, row) in zip(axes[0], worst.iterrows()):
        case = by_name[row["case"]]
        points = None
        if row["prompt_points"] is not None:
            points = (np.asarray(row["prompt_points"], float), np.asarray(row["prompt_labels"]))
        show_case(case, ax=ax, pred=row["mask"], box=row["prompt_box"], points=points, legend=False,
                  title=f"{row['case']}\n{row['model']} · {mode}", dice=row["dice"])  # fmt: skip
        ax.title.set_fontsize(8)
        if zoom:
            zoom_to(ax, case.mask | row["mask"], row["prompt_box"], row["prompt_points"])
    entries = ["ground_truth", "prediction", "box" if rows["prompt_box"].notna().any() else "positive"]
    add_legend(fig, entries)
    return fig

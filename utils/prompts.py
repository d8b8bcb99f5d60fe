"""Prompts for SAM: drawn from a ground-truth mask, checked when a user gives them, and box geometry.

Coordinates follow SAM: a point is ``(x, y)`` with ``x`` the column and ``y`` the row, in pixels of
the original image; a box is ``[x0, y0, x1, y1]``. The pixel in row ``r``, column ``c`` has
coordinates ``(c, r)``.

Simulated prompts (the way papers evaluate SAM: an "oracle" user who knows the answer):

- ``box_from_mask``: the tight box around the mask, ``[min col, min row, max col, max row]`` with
  inclusive pixel indices (as MedSAM does), optionally jittered to mimic a sloppy annotator.
- ``points_from_mask``: positive points inside the mask and negative points just outside it, with
  a deterministic ``"center"`` strategy or a ``"random"`` one.

Randomness: ``rng`` may be a ``np.random.Generator``, an int seed, or ``None``. ``None`` means
``np.random.default_rng(0)``, so a call without ``rng`` gives the same prompt every time (results
in the notebooks are reproducible); pass a generator or another seed for new draws.

User prompts: ``check_box`` and ``check_points`` validate what a person (or a widget) passes to a
predictor and raise a ``ValueError`` that names the problem and the fix. The image covers
``0 <= x <= W`` and ``0 <= y <= H`` (SAM's full-image box is ``[0, 0, W, H]``); anything outside
is rejected rather than silently clipped, because it usually means swapped axes or a prompt
drawn on a different image size.

Prompt protocols (every simulator of the course builds on the two functions above, so a box or a
point means the same thing everywhere):

- Evaluation (:func:`make_prompt`): a named mode of :data:`PROMPT_MODES` (points per
  :data:`POINT_PROMPTS`, boxes per :data:`BOX_JITTER`) for one case, with the random generator
  :func:`prompt_rng` seeded from ``(seed, case name, mode)``: a prompt does not depend on which other
  cases or modes were drawn, nor on their order.
- Training (:func:`sample_prompt`): one prompt of a kind in :data:`PROMPT_KINDS` from a running
  generator, drawn anew at every step. The box kind with jitter ``j`` and an evaluation box mode
  with jitter ``j`` give the same box from the same generator.

Box geometry: :func:`next_box` (a mask's box grown by a margin: the box for the next slice, or around
an automatic mask), :func:`flip_box` (the box in a mirrored image, :data:`FLIPS`),
:func:`box_region` (the pixels a grown box covers) and :func:`box_iou` (overlap of two boxes).
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np
from scipy import ndimage

from utils.checks import finite_number, whole_number
from utils.images import to_mask

__all__ = [
    "BOX_JITTER",
    "FLIPS",
    "NEG_MARGIN",
    "POINT_PROMPTS",
    "PROMPT_KINDS",
    "PROMPT_MODES",
    "STRATEGIES",
    "box_from_mask",
    "box_iou",
    "box_region",
    "check_box",
    "check_points",
    "flip_box",
    "jitter_box",
    "make_prompt",
    "next_box",
    "points_from_mask",
    "prompt_rng",
    "sample_prompt",
]

STRATEGIES = ("center", "random")

#: Evaluation point modes: (number of positive points, :data:`STRATEGIES` entry).
POINT_PROMPTS: dict[str, tuple[int, str]] = {
    "point_center": (1, "center"),
    "point_random": (1, "random"),
    "points_3": (3, "center"),
    "points_5": (5, "center"),
}
#: Evaluation box modes: jitter as a fraction of the box's width/height (see :func:`box_from_mask`).
BOX_JITTER: dict[str, float] = {"box": 0.0, "box_jitter_5": 0.05, "box_jitter_10": 0.10, "box_jitter_20": 0.20}
#: Every evaluation prompt mode, points first (the order of notebook 03's tables).
PROMPT_MODES: tuple[str, ...] = (*POINT_PROMPTS, *BOX_JITTER)
#: Training prompt kinds: a jittered box, random positive points, or either with equal probability.
PROMPT_KINDS: tuple[str, ...] = ("box", "points", "mixed")
#: Mirrorings of a 2-D image: "horizontal" swaps left and right (columns), "vertical" top and bottom
#: (rows), "both" is a 180° rotation. Each is its own inverse.
FLIPS: tuple[str, ...] = ("none", "horizontal", "vertical", "both")

# Negative points are drawn outside the mask but inside its box grown by this fraction of the
# box's larger side (at least NEG_MARGIN_MIN pixels) on every side: close enough to tell SAM
# "not this neighbouring tissue", far enough not to sit on the boundary.
NEG_MARGIN = 0.25
NEG_MARGIN_MIN = 5


def box_from_mask(mask: np.ndarray, jitter: float = 0.0, rng=None) -> np.ndarray:
    """Bounding box ``[x0, y0, x1, y1]`` (float, pixel coordinates) of a 2-D mask.

    ``x0``/``x1`` are the first/last columns and ``y0``/``y1`` the first/last rows that contain
    mask pixels (inclusive indices, as MedSAM computes its box prompts).

    ``jitter`` simulates an imprecise annotator: each coordinate moves independently by a uniform
    random amount in ``[-jitter * w, +jitter * w]`` for x and ``[-jitter * h, +jitter * h]`` for y,
    where ``w``/``h`` are the box's width/height in pixels (``x1 - x0 + 1``, ``y1 - y0 + 1``); the
    result is clipped to the image (``0..W-1``, ``0..H-1``) and re-ordered if the two sides cross.
    ``jitter=0.1`` is "box with 10% jitter". ``rng``: Generator, int seed, or None (= seed 0).
    """
    mask = to_mask(mask, name="mask")
    if not mask.any():
        raise ValueError(
            "box_from_mask got an empty mask: no box can be drawn; skip this case or check that the "
            "mask (label) you selected is present in this image/slice."
        )
    jitter = finite_number(jitter, "jitter", minimum=0, hint=_JITTER_HINT)
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=float)
    return box if jitter == 0 else jitter_box(box, jitter, rng, mask.shape)


_JITTER_HINT = "0.1 means up to 10% of the box size"


def jitter_box(box, jitter: float, rng, image_shape) -> np.ndarray:
    """``box`` ``[x0, y0, x1, y1]`` moved as an imprecise annotator would (see :func:`box_from_mask`).

    Each coordinate moves by a uniform amount up to ``jitter`` × the box's width (x) or height (y),
    counted inclusively; the result is clipped to the image of ``image_shape`` (H, W[, C]) and
    re-ordered if two sides cross. ``rng``: Generator, int seed, or None (= seed 0).
    """
    box = check_box(box, image_shape)
    jitter = finite_number(jitter, "jitter", minimum=0, hint=_JITTER_HINT)
    rng = _as_rng(rng)
    width, height = box[2] - box[0] + 1, box[3] - box[1] + 1
    box = box + rng.uniform(-1.0, 1.0, size=4) * jitter * np.array([width, height, width, height])
    rows_total, cols_total = _check_image_shape(image_shape)
    box = np.clip(box, 0, [cols_total - 1, rows_total - 1, cols_total - 1, rows_total - 1])
    # A large jitter can push x0 past x1; sorting keeps a valid box covering the same corners.
    x0, x1 = sorted(box[[0, 2]])
    y0, y1 = sorted(box[[1, 3]])
    return np.array([x0, y0, x1, y1], dtype=float)


def points_from_mask(
    mask: np.ndarray, n_pos: int = 1, n_neg: int = 0, strategy: str = "center", rng=None
) -> tuple[np.ndarray, np.ndarray]:
    """Point prompts from a 2-D mask: ``(coords, labels)``, positives first, then negatives.

    ``coords`` is a float ``(N, 2)`` array of ``(x, y)`` pixel coordinates (integers: pixel
    centres) and ``labels`` an int ``(N,)`` array, 1 = positive (inside), 0 = negative (outside).

    Strategies:

    - ``"center"`` (deterministic): the first positive is the mask pixel farthest from the mask's
      boundary (the maximum of the Euclidean distance transform; the image edge counts as
      boundary; among equally deep pixels, the one nearest their centroid). Each next point
      maximises ``min(distance to the boundary, distance to the points already chosen)`` (ties:
      the one farthest from the chosen points), so points stay deep inside and spread out
      instead of clustering next to the first one.
    - ``"random"``: positives uniformly among the mask pixels (without repetition).

    Negatives come from a band around the object: pixels outside the mask but inside the mask's
    bounding box grown by ``NEG_MARGIN`` (25%) of its larger side, at least ``NEG_MARGIN_MIN`` (5)
    pixels, clipped to the image. If that band has fewer than ``n_neg`` pixels (the mask fills it)
    the whole background is used. ``"center"`` applies the same farthest-and-spread rule to the band (it picks the
    middle of the widest background gap near the object, e.g. the notch of an L shape);
    ``"random"`` samples the band uniformly. ``rng``: Generator, int seed, or None (= seed 0).
    """
    mask = to_mask(mask, name="mask")
    if not mask.any():
        raise ValueError(
            "points_from_mask got an empty mask: no positive point can be placed; skip this case or "
            "check that the mask (label) you selected is present in this image/slice."
        )
    n_pos = whole_number(n_pos, "n_pos")
    n_neg = whole_number(n_neg, "n_neg")
    if n_pos + n_neg == 0:
        raise ValueError("points_from_mask: n_pos + n_neg is 0, so there is nothing to return; ask for n_pos >= 1.")
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown strategy {strategy!r}; choose one of {', '.join(map(repr, STRATEGIES))}.")
    if n_pos > mask.sum():
        raise ValueError(
            f"Asked for n_pos={n_pos} positive points but the mask has only {int(mask.sum())} pixels; "
            "points must be distinct pixels, so lower n_pos."
        )
    rng = _as_rng(rng)
    positives = _pick(mask, n_pos, strategy, rng)
    negatives = np.zeros((0, 2))
    if n_neg:
        band = _negative_band(mask, n_neg)
        if n_neg > band.sum():
            raise ValueError(
                f"Asked for n_neg={n_neg} negative points but the image has only {int(band.sum())} background "
                "pixels (the mask covers (almost) all of it); lower n_neg or use n_neg=0."
            )
        negatives = _pick(band, n_neg, strategy, rng)
    coords = np.concatenate([positives, negatives]).astype(float)
    labels = np.concatenate([np.ones(n_pos, dtype=np.int64), np.zeros(n_neg, dtype=np.int64)])
    return coords, labels


def check_box(box, image_shape=None, name: str = "box") -> np.ndarray:
    """Validate a box prompt ``[x0, y0, x1, y1]`` for an image of ``image_shape`` (H, W[, C]).

    Accepts shape ``(4,)`` or ``(1, 4)``; returns a float ``(4,)`` array. Requires finite values,
    ``x0 <= x1`` and ``y0 <= y1`` (equal allowed: a one-pixel-wide box) and the box inside the image
    (``0 <= x <= W``, ``0 <= y <= H``; not checked when ``image_shape`` is None). Raises ``ValueError``
    naming the problem (and ``name``) and the fix.
    """
    array = _as_float_array(box, name)
    if array.shape not in ((4,), (1, 4)):
        raise ValueError(
            f"{name} must have shape (4,) or (1, 4) as [x0, y0, x1, y1]; got shape {array.shape}. "
            "For several boxes, call the predictor once per box."
        )
    array = array.reshape(4)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} {array.tolist()} contains NaN or inf; every coordinate must be a finite number.")
    x0, y0, x1, y1 = array
    if x0 > x1 or y0 > y1:
        raise ValueError(
            f"{name} {array.tolist()} is not [x0, y0, x1, y1] with x0 <= x1 and y0 <= y1. Order the corners "
            "(top-left first); if it is (x, y, w, h), convert with [x, y, x + w, y + h]."
        )
    if image_shape is None:
        return array
    height, width = _check_image_shape(image_shape)
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        raise ValueError(
            f"{name} {array.tolist()} lies (partly) outside the image of width {width} and height {height} "
            f"(x must be in 0..{width}, y in 0..{height}). Clip it with np.clip(box, 0, [{width}, {height}, "
            f"{width}, {height}]) or re-draw it; check that x is the column and y the row."
        )
    return array


def check_points(coords, labels, image_shape=None) -> tuple[np.ndarray, np.ndarray]:
    """Validate point prompts for an image of ``image_shape`` (H, W[, C]).

    ``coords``: ``(N, 2)`` as ``(x, y)`` (a single ``(2,)`` point is accepted); ``labels``: ``(N,)``
    with 1 = positive, 0 = negative. Returns ``(coords float (N, 2), labels int (N,))``. Raises
    ``ValueError`` for a wrong shape, NaN/inf, a point outside the image (``0 <= x <= W``,
    ``0 <= y <= H``; not checked when ``image_shape`` is None), labels other than 0/1, or a length
    mismatch.
    """
    points = _as_float_array(coords, "coords")
    if points.shape == (2,):
        points = points[None]
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(
            f"coords must have shape (N, 2) with N >= 1, one (x, y) row per point; got shape {points.shape}. "
            "Pass None instead of an empty array when there are no points."
        )
    if not np.all(np.isfinite(points)):
        raise ValueError("coords contain NaN or inf; every point must have finite (x, y).")
    label_array = _as_float_array(labels, "labels").reshape(-1)
    if label_array.size != len(points):
        raise ValueError(
            f"Got {len(points)} points but {label_array.size} labels; give exactly one label (1 or 0) per point."
        )
    if not np.all(np.isin(label_array, (0, 1))):
        raise ValueError(
            f"labels must be 1 (positive, inside the object) or 0 (negative, background); got "
            f"{np.unique(label_array).tolist()}."
        )
    if image_shape is None:
        return points, label_array.astype(np.int64)
    height, width = _check_image_shape(image_shape)
    outside = (points[:, 0] < 0) | (points[:, 0] > width) | (points[:, 1] < 0) | (points[:, 1] > height)
    if outside.any():
        bad = points[outside][:3].tolist()
        raise ValueError(
            f"{int(outside.sum())} point(s) lie outside the image of width {width} and height {height}, e.g. "
            f"(x, y) = {bad}. Points are (x, y) = (column, row) with x in 0..{width}, y in 0..{height}; "
            f"clip with np.clip(coords, 0, [{width}, {height}]) or re-draw them."
        )
    return points, label_array.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Prompt protocols: evaluation modes and training kinds


def prompt_rng(seed: int, case_name: str, mode: str) -> np.random.Generator:
    """The random generator of the prompt for case ``case_name`` in mode ``mode`` with ``seed``.

    Seeded from ``(seed, crc32(case_name), crc32(mode))``: crc32 is stable across runs and machines
    (Python's ``hash()`` of a str is salted per process), and each prompt has its own stream.
    """
    seed = whole_number(seed, "seed")
    for value, name in ((case_name, "case_name"), (mode, "mode")):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a str (it seeds the prompt); got {type(value).__name__}.")
    return np.random.default_rng([seed, zlib.crc32(case_name.encode()), zlib.crc32(mode.encode())])


def make_prompt(case: Any, mode: str, seed: int = 0) -> dict[str, Any]:
    """The evaluation prompt for ``case`` (a ``Case``: ``.name``, ``.mask``) in ``mode`` (:data:`PROMPT_MODES`).

    Returns ``{"point_coords": (N, 2) array or None, "point_labels": (N,) array or None, "box": (4,)
    array or None}``, ready for ``predictor.predict(**prompt)``. Deterministic in ``(seed, case.name,
    mode)`` (:func:`prompt_rng`); ``utils.evaluate.evaluate`` asks with exactly this prompt.
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"{mode!r} is not a prompt mode; choose from {', '.join(PROMPT_MODES)}.")
    rng = prompt_rng(seed, case.name, mode)
    if mode in POINT_PROMPTS:
        return _point_prompt(case.mask, *POINT_PROMPTS[mode], rng)
    return _box_prompt(case.mask, BOX_JITTER[mode], rng)


def sample_prompt(
    mask: np.ndarray, rng: np.random.Generator, kind: str = "box", box_jitter: float = 0.1, n_points: int = 1
) -> dict[str, Any]:
    """One training prompt simulated from ``mask``, as keyword arguments for ``SamPredictor.predict``.

    ``kind`` (:data:`PROMPT_KINDS`): ``"box"`` (the tight box, each side moved by up to ``box_jitter`` of
    the box size, see :func:`box_from_mask`), ``"points"`` (``n_points`` positive points drawn uniformly
    inside the mask) or ``"mixed"`` (box or points with equal probability). Returns
    ``{"point_coords", "point_labels", "box"}`` with ``None`` for the unused prompt type. From the same
    generator, ``"box"`` gives :func:`make_prompt`'s box of the mode with that jitter and ``"points"``
    with ``n_points=1`` its ``"point_random"`` point.
    """
    if kind not in PROMPT_KINDS:
        raise ValueError(f"Unknown prompt kind {kind!r}; choose one of {', '.join(PROMPT_KINDS)}.")
    if kind == "mixed":
        kind = "box" if rng.random() < 0.5 else "points"
    if kind == "box":
        return _box_prompt(mask, box_jitter, rng)
    return _point_prompt(mask, n_points, "random", rng)


def _box_prompt(mask: np.ndarray, jitter: float, rng: np.random.Generator) -> dict[str, Any]:
    return {"point_coords": None, "point_labels": None, "box": box_from_mask(mask, jitter=jitter, rng=rng)}


def _point_prompt(mask: np.ndarray, n_points: int, strategy: str, rng: np.random.Generator) -> dict[str, Any]:
    n_pos = int(min(n_points, np.count_nonzero(mask)))  # a tiny mask cannot hold n distinct points
    coords, labels = points_from_mask(mask, n_pos=n_pos, strategy=strategy, rng=rng)
    return {"point_coords": coords, "point_labels": labels, "box": None}


# --------------------------------------------------------------------------------------------
# Box geometry (boxes hold inclusive pixel indices, as box_from_mask returns them)


def next_box(mask: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """The tight box of ``mask`` grown by ``margin`` pixels on every side, clipped to the image.

    ``[x0, y0, x1, y1]`` as :func:`box_from_mask` returns it (inclusive pixel indices), then
    ``x0 - margin, y0 - margin, x1 + margin, y1 + margin`` clipped to ``0..W-1`` and ``0..H-1``. The box
    for the next slice of a volume (a margin lets a structure that grows from one slice to the next still
    fit in it), or around an automatic coarse mask.
    """
    margin = float(margin)
    if not np.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a number of pixels >= 0; got {margin!r}.")
    box = box_from_mask(mask)
    height, width = np.asarray(mask).shape[:2]
    grown = box + np.array([-margin, -margin, margin, margin])
    return np.clip(grown, 0, [width - 1, height - 1, width - 1, height - 1])


def flip_box(box, image_shape, flip: str) -> np.ndarray:
    """The box ``[x0, y0, x1, y1]`` (pixel indices) that covers the same pixels in the flipped image.

    ``flip``: one of :data:`FLIPS`. A horizontal flip sends column ``x`` to ``W - 1 - x``, so
    ``[x0, x1]`` becomes ``[W - 1 - x1, W - 1 - x0]`` (the corners swap to keep ``x0 <= x1``); a
    vertical flip does the same to the rows with ``H``.
    """
    if flip not in FLIPS:
        raise ValueError(f"Unknown flip {flip!r}; choose one of {', '.join(FLIPS)}.")
    height, width = _check_image_shape(image_shape)
    x0, y0, x1, y1 = check_box(box, (height, width))
    if flip in ("horizontal", "both"):
        x0, x1 = width - 1 - x1, width - 1 - x0
    if flip in ("vertical", "both"):
        y0, y1 = height - 1 - y1, height - 1 - y0
    return np.clip(np.array([x0, y0, x1, y1], dtype=float), 0, [width, height, width, height])


def box_region(box, image_shape, margin: int = 0) -> np.ndarray:
    """A bool ``(H, W)`` mask of the pixels inside ``box`` grown by ``margin`` pixels on every side."""
    height, width = _check_image_shape(image_shape)
    x0, y0, x1, y1 = check_box(box, (height, width))
    if isinstance(margin, bool) or not isinstance(margin, (int, np.integer)) or margin < 0:
        raise ValueError(f"margin must be a whole number of pixels >= 0; got {margin!r}.")
    region = np.zeros((height, width), dtype=bool)
    rows = slice(max(0, int(np.floor(y0)) - margin), min(height, int(np.ceil(y1)) + 1 + margin))
    cols = slice(max(0, int(np.floor(x0)) - margin), min(width, int(np.ceil(x1)) + 1 + margin))
    region[rows, cols] = True
    return region


def box_iou(box, reference) -> float:
    """IoU of two boxes ``[x0, y0, x1, y1]`` holding inclusive pixel indices (:func:`box_from_mask`'s
    convention): a box covers ``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels, so a one-pixel box has area 1."""
    a, b = check_box(box), check_box(reference, name="reference")
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    overlap = max(width, 0.0) * max(height, 0.0)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return float(overlap / (area_a + area_b - overlap))


# --------------------------------------------------------------------------------------------
# Helpers


def _pick(region: np.ndarray, n: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pixels of ``region`` as an (n, 2) array of (x, y)."""
    rows, cols = np.nonzero(region)
    if strategy == "random":
        chosen = rng.choice(rows.size, size=n, replace=False)
        return np.stack([cols[chosen], rows[chosen]], axis=1).astype(float)
    # "center": pad with background so the image edge counts as boundary (the object may continue
    # beyond the field of view, so pixels at the edge are not "deep inside").
    depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1][rows, cols]
    nearest = np.full(rows.size, np.inf)  # distance from each pixel to the closest chosen point
    chosen = []
    for _ in range(n):
        score = np.minimum(depth, nearest)
        ties = np.flatnonzero(score == score.max())
        if chosen:
            # Equally good pixels: take the one farthest from the points so far, to spread them out.
            best = ties[np.argmax(nearest[ties])]
        else:
            # A plateau of equally deep pixels (e.g. a rectangle's midline): take its middle.
            offset = np.hypot(rows[ties] - rows[ties].mean(), cols[ties] - cols[ties].mean())
            best = ties[np.argmin(offset)]
        chosen.append(best)
        # A chosen pixel now scores 0 and every other pixel at least 1, so points stay distinct.
        nearest = np.minimum(nearest, np.hypot(rows - rows[best], cols - cols[best]))
    return np.stack([cols[chosen], rows[chosen]], axis=1).astype(float)


def _negative_band(mask: np.ndarray, n: int) -> np.ndarray:
    """Background pixels near the mask (inside its grown box); all background if that has < n pixels."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    size = max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1)
    margin = max(NEG_MARGIN_MIN, int(round(NEG_MARGIN * size)))
    near = np.zeros_like(mask)
    near[max(rows[0] - margin, 0) : rows[-1] + margin + 1, max(cols[0] - margin, 0) : cols[-1] + margin + 1] = True
    band = near & ~mask
    return band if band.sum() >= n else ~mask


def _as_rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(0)  # reproducible by default
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a np.random.Generator, an int seed or None; got {type(rng).__name__}.")


def _check_image_shape(image_shape) -> tuple[int, int]:
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        shape = ()  # not a shape: reported below
    if len(shape) not in (2, 3) or shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"image_shape must be (H, W) or (H, W, C), e.g. image.shape; got {image_shape!r}.")
    return shape[0], shape[1]


def _as_float_array(value, name: str) -> np.ndarray:
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numbers (a list or numpy array); got {value!r}.") from exc

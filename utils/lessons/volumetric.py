"""3-D segmentation with a 2-D promptable model: propagate a box slice by slice, and score in 3-D.

SAM and LiteMedSAM segment one 2-D image at a time. A volume (a stack of slices) can still be
segmented with one prompt: draw a box on one slice (usually the middle of the structure), take the
mask the model returns, turn it into the box for the *next* slice, and repeat, in both directions,
until a **stop rule** says the structure has ended (:func:`propagate`). The best a box-prompted 2-D
model can do is a fresh ground-truth box on every slice (:func:`slicewise_upper_bound`): the
difference between the two is the price of propagation.

Conventions:

- A volume is ``(S, H, W)``: ``volume[k]`` is the 2-D image of slice ``k`` (uint8 grey, or
  ``(S, H, W, 3)`` RGB), as :func:`utils.datasets.colin27_volume` returns it. Masks are ``(S, H, W)``
  bool. ``spacing`` is ``(slice, row, col)`` in mm.
- Directions: ``"down"`` walks towards slice 0, ``"up"`` towards slice ``S - 1`` (for an axial volume
  from :mod:`utils.datasets`, down is inferior and up is superior).
- Encoder calls are the cost: wrap the predictor in :class:`utils.models.CachedPredictor` and every distinct slice
  image is encoded once, however many prompts (propagation, upper bound, other structures in the
  same volume) use it.

The stop rule (:class:`StopRule`) is checked on every new slice's mask, in this order; the first that
fires ends that direction and the offending mask is discarded:

==================  ==========================================================================
reason              fires when
==================  ==========================================================================
``vanished``        the mask has fewer than ``min_area`` pixels: the structure has ended
``low_score``       the model's own IoU estimate is below ``min_score`` (off by default)
``area_jump``       the area changed by more than ``max_area_ratio`` (either way) from the previous
                    slice: the model jumped to a neighbouring structure or lost most of the target
``overlap_jump``    Dice between this mask and the previous slice's is below ``min_overlap``: the
                    mask moved (adjacent slices of one structure overlap strongly)
``max_slices``      ``max_slices`` slices were added in this direction (a budget, not anatomy)
``range_end``       the next slice lies outside ``limits`` (first, last slice), when the user gave them
``volume_edge``     there is no next slice
==================  ==========================================================================

A box-prompted model almost always returns *something* inside a box, so ``vanished`` rarely fires on
real scans: past the end of a structure the model tends to segment whatever tissue the box holds,
and only the jump rules (or the budget) end the walk. That is the weak point of propagation.

Any function with the :data:`StopCheck` interface can replace the rule (``propagate(..., rule=my_rule,
max_slices=...)``): it also sees the model's score and the two slices, so it can look at what lies under
the mask. :func:`compare_rules` runs several rules under the same start box and budget and scores them
(3-D Dice, :func:`overshoot_slices`); notebook 07's build exercise uses it. An empty mask ends a
direction whatever the rule says (there is no box to make from it).

:func:`score` and :func:`report` measure in 3-D with :mod:`utils.metrics` (Dice and HD95 over the whole
volume, with the voxel spacing in mm; the volume in mL; :func:`utils.metrics.slice_dice_profile` per slice).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy import ndimage

from utils import metrics
from utils.checks import whole_number
from utils.images import rescale_to_uint8
from utils.prompts import next_box

if TYPE_CHECKING:  # only for the annotation: datasets is imported where it is used
    from utils.datasets import Case

__all__ = [
    "DIRECTIONS",
    "STOP_REASONS",
    "StopCheck",
    "StopRule",
    "Structure",
    "VolumeResult",
    "compare_rules",
    "crop_slab",
    "load_structure",
    "normalise_slices",
    "orthogonal_views",
    "overshoot_slices",
    "plot_slice_profile",
    "propagate",
    "report",
    "score",
    "slicewise_upper_bound",
    "walk_gallery",
]

DIRECTIONS = ("down", "up")
STOP_REASONS = ("vanished", "low_score", "area_jump", "overlap_jump", "max_slices", "range_end", "volume_edge")


# ------------------------------------------------------------------------------------------ input checks


def _check_volume(volume: np.ndarray, name: str = "volume") -> np.ndarray:
    array = np.asarray(volume)
    if array.ndim == 4 and array.shape[-1] == 3:
        pass  # RGB slices
    elif array.ndim != 3:
        raise ValueError(
            f"{name} must be (S, H, W) (or (S, H, W, 3) RGB), one 2-D image per slice; got shape {array.shape}. "
            "For a single image, add a slice axis: image[None]."
        )
    if array.dtype != np.uint8:
        raise ValueError(
            f"{name} is {array.dtype}; the model takes uint8 slices. Window it first, e.g. "
            "utils.images.rescale_to_uint8(volume) (one window for the whole volume)."
        )
    if array.shape[0] < 1:
        raise ValueError(f"{name} has no slices.")
    return array


def _check_mask_volume(mask: np.ndarray, shape: tuple[int, ...] | None = None, name: str = "mask") -> np.ndarray:
    array = np.asarray(mask)
    if array.ndim != 3:
        raise ValueError(f"{name} must be a 3-D (S, H, W) mask; got shape {array.shape}.")
    if shape is not None and tuple(array.shape) != tuple(shape[:3]):
        raise ValueError(
            f"{name} has shape {array.shape} but the volume is {tuple(shape[:3])}; they must match voxel for voxel."
        )
    if array.dtype == bool:
        return array
    if not np.issubdtype(array.dtype, np.number) or not np.isin(np.unique(array), (0, 1)).all():
        raise ValueError(f"{name} must be a binary mask (bool or 0/1); for a label map pick one label (mask == k).")
    return array.astype(bool)


def _check_spacing_3d(spacing: Sequence[float]) -> tuple[float, float, float]:
    try:
        values = np.asarray(spacing, dtype=float).ravel()
    except (TypeError, ValueError):
        values = np.zeros(0)  # reported below with the expected form
    if values.size != 3 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(
            f"spacing must be 3 positive voxel sizes in mm (slice, row, col), got {spacing!r}; "
            "utils.datasets.colin27_volume returns it as its third value."
        )
    return float(values[0]), float(values[1]), float(values[2])


def _check_slice(index: Any, n_slices: int, name: str = "start_slice") -> int:
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n_slices:
        raise ValueError(f"{name} must be a slice index in 0..{n_slices - 1}; got {index!r}.")
    return int(index)


# ------------------------------------------------------------------------------------------ data


@dataclass
class Structure:
    """One structure in one volume: ``volume`` (S, H, W) uint8, ``mask`` (S, H, W) bool, ``spacing`` (slice,
    row, col) in mm, a ``source`` line for figures, the slicing ``axis`` and ``offset``: the index of slice 0
    in the full volume (non-zero after :meth:`slab`)."""

    name: str
    volume: np.ndarray
    mask: np.ndarray
    spacing: tuple[float, float, float]
    source: str
    axis: str = "axial"
    offset: int = 0

    @property
    def extent(self) -> tuple[int, int]:
        """First and last slice that hold the structure."""
        present = np.flatnonzero(self.mask.reshape(self.mask.shape[0], -1).any(axis=1))
        if present.size == 0:
            raise ValueError(f"{self.name}: the mask is empty in every slice.")
        return int(present[0]), int(present[-1])

    @property
    def middle(self) -> int:
        """The middle slice of the structure's extent: where the user draws the one box."""
        first, last = self.extent
        return (first + last) // 2

    def slab(self, half_width: int) -> Structure:
        """The slices ``middle - half_width .. middle + half_width`` only (a quick run on a short stack)."""
        volume, mask, _ = crop_slab(self.volume, self.mask, self.middle, half_width)
        low = max(self.middle - int(half_width), 0)
        return Structure(self.name, volume, mask, self.spacing, self.source, self.axis, self.offset + low)

    def middle_case(self) -> Case:
        """The middle slice as a :class:`utils.datasets.Case` (for :mod:`utils.viz`)."""
        from utils.datasets import Case

        k = self.middle
        return Case(
            image=self.volume[k],
            mask=self.mask[k],
            name=f"{self.name} · slice {self.offset + k}",
            modality="MRI T1",
            spacing=self.spacing[1:],
            source=self.source,
        )


def load_structure(name: str, hemisphere: str = "left", axis: str = "axial") -> Structure:
    """A structure from the offline real scans: Colin27 + AAL (thalamus, caudate, putamen, hippocampus,
    brain; ``hemisphere`` left/right/both) or the MNI152 template (ventricles, gm, wm).

    Raises ``FileNotFoundError`` (with the install command) when the Colin27 files are missing.
    """
    from utils import datasets

    if name in datasets.COLIN27_STRUCTURES:
        volume, mask, spacing = datasets.colin27_volume(name, hemisphere, axis)
        side = "" if name == "brain" else f"{hemisphere} "
        source = f"Colin27 + AAL ({side}{name})"
    elif name in datasets.MNI152_STRUCTURES:
        volume, mask, spacing = datasets.mni152_volume(name, axis)
        source = f"MNI152 2009a ({name}{', derived mask' if name == 'ventricles' else ''})"
    else:
        known = sorted({*datasets.COLIN27_STRUCTURES, *datasets.MNI152_STRUCTURES})
        raise ValueError(f"Unknown structure {name!r}; choose one of: {', '.join(known)}.")
    return Structure(name, volume, mask, tuple(float(s) for s in spacing), source, axis)


# ------------------------------------------------------------------------------------------ propagation


@dataclass(frozen=True)
class StopRule:
    """When slice-by-slice propagation stops (see the module docstring for the order of the checks).

    ``min_area`` pixels: smaller masks count as vanished. ``min_score``: the model's predicted IoU below
    it stops (None: not checked). ``max_area_ratio``: ``max(a, b) / min(a, b)`` of this and the previous
    area above it is a jump (None: not checked). ``min_overlap``: Dice with the previous slice's mask
    below it is a jump (None: not checked). ``max_slices``: at most this many slices are added per
    direction (None: no budget).
    """

    min_area: int = 10
    min_score: float | None = None
    max_area_ratio: float | None = 2.0
    min_overlap: float | None = 0.5
    max_slices: int | None = None

    def __post_init__(self) -> None:
        whole_number(self.min_area, "min_area", minimum=1, hint="pixels")
        if self.min_score is not None and not 0.0 <= float(self.min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1] (the model's IoU estimate) or None; got {self.min_score!r}.")
        if self.max_area_ratio is not None and not float(self.max_area_ratio) > 1.0:
            raise ValueError(
                f"max_area_ratio must be > 1 (e.g. 2.0: area may halve or double) or None; got {self.max_area_ratio!r}."
            )
        if self.min_overlap is not None and not 0.0 <= float(self.min_overlap) <= 1.0:
            raise ValueError(f"min_overlap must be a Dice in [0, 1] or None; got {self.min_overlap!r}.")
        if self.max_slices is not None:
            whole_number(self.max_slices, "max_slices", hint="or None: no limit")

    def check(
        self,
        mask: np.ndarray,
        previous: np.ndarray,
        score: float | None = None,
        image: np.ndarray | None = None,
        previous_image: np.ndarray | None = None,
    ) -> str | None:
        """The reason to stop at a slice whose mask is ``mask`` (after ``previous``), or None to go on.

        ``image`` and ``previous_image`` (the two slices) are part of the :data:`StopCheck` interface;
        this rule looks at the masks and the score only.
        """
        area = int(np.count_nonzero(mask))
        if area < self.min_area:
            return "vanished"
        if self.min_score is not None and score is not None and score < self.min_score:
            return "low_score"
        previous_area = int(np.count_nonzero(previous))
        if self.max_area_ratio is not None and previous_area > 0:
            if max(area, previous_area) / min(area, previous_area) > self.max_area_ratio:
                return "area_jump"
        if self.min_overlap is not None and metrics.dice(mask, previous) < self.min_overlap:
            return "overlap_jump"
        return None

    __call__ = check  # a StopRule is itself a StopCheck: rule(mask, previous, ...) is rule.check(...)


#: A stop rule as :func:`propagate` calls it: ``check(mask, previous, score=..., image=..., previous_image=...)``
#: returns a reason (a short string such as ``"area_jump"``) to stop at this slice, or None to keep its mask and
#: go on. ``mask``/``previous``: this and the previous slice's (H, W) bool masks; ``score``: the model's IoU
#: estimate for ``mask``; ``image``/``previous_image``: the two slices as the model saw them. A
#: :class:`StopRule` is one; any function with these parameters is another (write one in notebook 07).
StopCheck = Callable[..., "str | None"]


@dataclass
class VolumeResult:
    """A 3-D prediction built slice by slice.

    ``masks`` (S, H, W) bool; ``scores`` (S,) the model's IoU estimate per slice (NaN where no mask was
    kept); ``boxes`` slice → the box prompt used there; ``stopped`` direction → stop reason (empty for
    the upper bound); ``stop_details`` direction → what the stop rule saw where it stopped (``slice``,
    and for a rejected mask its ``area``, ``previous_area``, ``overlap`` (Dice with the previous mask)
    and ``score``); ``start_slice`` the prompted slice (None for the upper bound).
    """

    masks: np.ndarray
    scores: np.ndarray
    boxes: dict[int, np.ndarray] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)
    stop_details: dict[str, dict[str, float]] = field(default_factory=dict)
    start_slice: int | None = None

    @property
    def slices(self) -> list[int]:
        """Indices of the slices that hold a kept mask, in order."""
        return [int(k) for k in np.flatnonzero(np.isfinite(self.scores))]

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def stopped_because(self) -> str:
        """One line: ``"down: area_jump, up: vanished"``."""
        return ", ".join(f"{direction}: {reason}" for direction, reason in self.stopped.items())


def _predict_box(predictor: Any, image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, float]:
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(box=box, multimask_output=False)
    return np.asarray(masks[0], dtype=bool), float(np.asarray(scores).reshape(-1)[0])


def _stop_reason(
    rule: StopCheck, mask: np.ndarray, previous: np.ndarray, score: float, image: np.ndarray, previous_image: np.ndarray
) -> str | None:
    reason = rule(mask, previous, score=score, image=image, previous_image=previous_image)
    if reason is not None and (not isinstance(reason, str) or not reason):
        raise ValueError(
            f"a stop rule returns a reason (a non-empty string such as 'area_jump') or None to go on; "
            f"{getattr(rule, '__name__', type(rule).__name__)} returned {reason!r}."
        )
    return reason


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False)


def propagate(
    predictor: Any,
    volume: np.ndarray,
    start_slice: int,
    start_box: Sequence[float],
    rule: StopRule | StopCheck | None = None,
    box_margin: float = 3.0,
    limits: tuple[int, int] | None = None,
    directions: Iterable[str] = DIRECTIONS,
    progress: bool = True,
    max_slices: int | None = None,
) -> VolumeResult:
    """Segment a volume from one box: predict on ``start_slice``, then walk slice by slice both ways.

    On each next slice the box is :func:`utils.prompts.next_box` of the previous slice's mask (grown by ``box_margin``
    pixels); the model predicts one mask (``multimask_output=False``); the stop ``rule`` decides whether to
    keep it and go on or to stop that direction (the offending mask is discarded). ``rule`` is a
    :class:`StopRule` (default: ``StopRule()``) or any :data:`StopCheck` function; ``max_slices`` is a budget
    per direction on top of the rule's own (the smaller wins; ``"max_slices"`` either way), so a rule of
    your own can run under the same budget as the course's. An empty mask always ends a direction
    (``"vanished"``: there is nothing to make the next box from), whatever the rule.
    ``limits=(first, last)`` keeps the walk inside those slices (inclusive), as when a user marks where
    the structure starts and ends (MedSAM's 3-D box prompt holds such a slice range). The start slice is
    encoded once and shared by both directions; every other slice at most once (wrap the predictor in
    :class:`utils.models.CachedPredictor` to share slices with other runs). If the start mask itself has vanished
    (< ``rule.min_area`` pixels; 1 for a rule without ``min_area``) nothing is propagated and both
    directions report ``"vanished"``.
    """
    volume = _check_volume(volume)
    rule = StopRule() if rule is None else rule
    if not callable(rule):
        raise ValueError(
            f"rule must be a StopRule or a function (mask, previous, score=None, image=None, previous_image=None) "
            f"-> reason or None; got {type(rule).__name__}."
        )
    if max_slices is not None:
        whole_number(max_slices, "max_slices", hint="or None: no limit")
    budgets = [b for b in (getattr(rule, "max_slices", None), max_slices) if b is not None]
    budget_per_direction = min(budgets) if budgets else None
    min_area = getattr(rule, "min_area", 1)
    n_slices = volume.shape[0]
    start = _check_slice(start_slice, n_slices)
    directions = tuple(directions)
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}; got {directions!r}.")
    first, last = 0, n_slices - 1
    if limits is not None:
        if len(limits) != 2:
            raise ValueError(f"limits must be (first, last) slice indices; got {limits!r}.")
        first, last = (_check_slice(k, n_slices, name="limits") for k in limits)
        if not first <= start <= last:
            raise ValueError(f"limits {limits!r} must contain start_slice {start} (first <= start <= last).")
    result = VolumeResult(
        masks=np.zeros(volume.shape[:3], dtype=bool), scores=np.full(n_slices, np.nan), start_slice=start
    )
    box = np.asarray(start_box, dtype=float).reshape(4)
    mask, score = _predict_box(predictor, volume[start], box)
    result.boxes[start] = box
    if np.count_nonzero(mask) < min_area:
        details = {"slice": start, "area": int(np.count_nonzero(mask)), "score": score}
        result.stopped = dict.fromkeys(directions, "vanished")
        result.stop_details = {d: dict(details) for d in directions}
        return result
    result.masks[start], result.scores[start] = mask, score
    steps = {"down": -1, "up": 1}
    room = {"down": start - first, "up": last - start}
    budget = {d: room[d] if budget_per_direction is None else min(room[d], budget_per_direction) for d in directions}
    with _progress(1 + sum(budget.values()), "propagating", progress) as bar:
        bar.update(1)
        for direction in directions:
            previous, k, added = mask, start + steps[direction], 0
            while True:
                reason = None
                if not 0 <= k < n_slices:
                    reason = "volume_edge"
                elif not first <= k <= last:
                    reason = "range_end"
                elif budget_per_direction is not None and added >= budget_per_direction:
                    reason = "max_slices"
                if reason is not None:
                    result.stopped[direction], result.stop_details[direction] = reason, {"slice": k}
                    break
                box = next_box(previous, box_margin)
                candidate, score = _predict_box(predictor, volume[k], box)
                bar.update(1)
                result.boxes[k] = box
                if not candidate.any():  # nothing left to follow (and no box to make): whatever the rule says
                    reason = "vanished"
                else:
                    reason = _stop_reason(rule, candidate, previous, score, volume[k], volume[k - steps[direction]])
                if reason is not None:
                    result.stopped[direction] = reason
                    result.stop_details[direction] = {
                        "slice": k,
                        "area": int(np.count_nonzero(candidate)),
                        "previous_area": int(np.count_nonzero(previous)),
                        "overlap": metrics.dice(candidate, previous),
                        "score": score,
                    }
                    break
                result.masks[k], result.scores[k] = candidate, score
                previous, k, added = candidate, k + steps[direction], added + 1
        bar.total = bar.n  # the walk usually ends before the budget: show the bar complete
        bar.refresh()
    return result


def slicewise_upper_bound(
    predictor: Any,
    volume: np.ndarray,
    mask: np.ndarray,
    box_margin: float = 0.0,
    progress: bool = True,
) -> VolumeResult:
    """The best case for box prompts: on every slice that holds ``mask``, a box from that slice's ground truth.

    Slices without the structure get an empty prediction (an oracle also knows where the structure
    starts and ends). ``box_margin`` grows each box as :func:`utils.prompts.next_box` does (0: the tight box). One
    encoder call per slice with the structure (shared with :func:`propagate` through a
    :class:`utils.models.CachedPredictor`).
    """
    volume = _check_volume(volume)
    mask = _check_mask_volume(mask, volume.shape)
    present = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    result = VolumeResult(masks=np.zeros(mask.shape, dtype=bool), scores=np.full(mask.shape[0], np.nan))
    with _progress(len(present), "ground-truth boxes", progress) as bar:
        for k in present:
            box = next_box(mask[k], box_margin)
            result.masks[k], result.scores[k] = _predict_box(predictor, volume[k], box)
            result.boxes[int(k)] = box
            bar.update(1)
    return result


def crop_slab(volume: np.ndarray, mask: np.ndarray, center: int, half_width: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Slices ``center - half_width .. center + half_width`` (clipped to the volume) of a volume and its mask.

    Returns ``(volume_slab, mask_slab, center_in_slab)``: a short stack for quick runs, where the
    propagation stops at the slab's edges (``"volume_edge"``).
    """
    volume = _check_volume(volume)
    mask = _check_mask_volume(mask, volume.shape)
    center = _check_slice(center, volume.shape[0], name="center")
    if isinstance(half_width, bool) or not isinstance(half_width, (int, np.integer)) or half_width < 0:
        raise ValueError(f"half_width must be a whole number of slices >= 0; got {half_width!r}.")
    low, high = max(center - int(half_width), 0), min(center + int(half_width) + 1, volume.shape[0])
    return volume[low:high], mask[low:high], center - low


# ------------------------------------------------------------------------------------------ intensities


def normalise_slices(
    volume: np.ndarray, percentiles: tuple[float, float] = (1.0, 99.0), foreground: bool = True
) -> np.ndarray:
    """Window every slice on its own: slice ``k`` maps its own ``percentiles`` to 0 and 255.

    The alternative to one window for the whole volume (what :mod:`utils.datasets` does). With
    ``foreground=True`` the percentiles are taken over the pixels brighter than the slice's darkest
    value (the head, not the air around it), so a slice with little tissue is not windowed by its
    background. Per-slice windows adapt to each slice's content, so the same tissue can get a different
    grey level on neighbouring slices. Works on raw intensities (any numeric dtype) or on an already
    windowed uint8 volume; on the latter it can only re-stretch what the first window kept (clipped
    values stay clipped, and stretching 256 grey levels leaves gaps between them).
    """
    array = np.asarray(volume)
    if array.ndim != 3:
        raise ValueError(f"volume must be (S, H, W) grey slices; got shape {array.shape}.")
    low, high = (float(p) for p in percentiles)
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must be (low, high) with 0 <= low < high <= 100; got {percentiles!r}.")
    slices = []
    for image in array:
        values = image[image > image.min()] if foreground else image.ravel()
        if values.size == 0:  # a uniform slice: nothing to window
            values = image.ravel()
        lo, hi = np.percentile(values.astype(np.float64), (low, high))
        slices.append(rescale_to_uint8(image, low=float(lo), high=float(hi)))
    return np.stack(slices)


# ------------------------------------------------------------------------------------------ 3-D scores


def score(result: VolumeResult, mask: np.ndarray, spacing: Sequence[float]) -> dict[str, float]:
    """A 3-D prediction's numbers: ``dice3d``, ``hd95_mm``, ``volume_ml`` (predicted), ``slices`` (with a mask)."""
    return {
        "dice3d": metrics.dice(result.masks, mask),
        "hd95_mm": metrics.hd95(result.masks, mask, spacing),
        "volume_ml": metrics.volume_ml(result.masks, spacing),
        "slices": int(np.count_nonzero(result.masks.reshape(result.masks.shape[0], -1).any(axis=1))),
    }


def overshoot_slices(structure: Structure, result: VolumeResult) -> int:
    """How many slices ``result`` filled outside the structure's extent (a walk that ran past its ends)."""
    first, last = structure.extent
    filled = np.flatnonzero(result.masks.reshape(result.masks.shape[0], -1).any(axis=1))
    return int(np.count_nonzero((filled < first) | (filled > last)))


def compare_rules(
    predictor: Any,
    structures: dict[str, Structure],
    rules: dict[str, StopRule | StopCheck],
    box_margin: float = 3.0,
    max_slices: int | None = None,
    done: dict[str, dict[str, VolumeResult]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Run :func:`propagate` with each stop rule on each structure, under the same start box and budget.

    Every walk starts from the ground truth's box on the structure's middle slice grown by ``box_margin``
    (the simulated user's box) and adds at most ``max_slices`` slices per direction. ``done`` (rule →
    structure → :class:`VolumeResult`) supplies walks already made with exactly these settings, so they
    are not repeated. Returns rule → structure → ``dice3d``, ``overshoot_slices``, ``slices`` (with a
    mask) and ``stopped_because``.
    """
    if not rules:
        raise ValueError("rules is empty; pass e.g. {'course': StopRule(), 'mine': my_rule}.")
    done = done or {}
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for label, rule in rules.items():
        table[label] = {}
        for name, structure in structures.items():
            result = done.get(label, {}).get(name)
            if result is None:
                start_box = next_box(structure.mask[structure.middle], box_margin)
                result = propagate(
                    predictor, structure.volume, structure.middle, start_box, rule=rule, box_margin=box_margin,
                    max_slices=max_slices, progress=False,
                )  # fmt: skip
            table[label][name] = {
                "dice3d": metrics.dice(result.masks, structure.mask),
                "overshoot_slices": overshoot_slices(structure, result),
                "slices": result.n_slices,
                "stopped_because": result.stopped_because,
            }
    return table


def report(structure: Structure, results: dict[str, VolumeResult]) -> dict[str, Any]:
    """One structure's numbers for a table and results.json.

    ``results`` maps a method to its :class:`VolumeResult`: ``"propagation"`` and ``"upper_bound"`` are
    required, ``"in_range"`` (propagation inside the user's slice range) is optional. Returns
    ``<method>_dice3d`` for each, ``gap`` (upper bound − propagation Dice), ``hd95_mm`` and ``volume_ml``
    per method (plus the ground truth's volume), ``slices_propagated``, ``stopped_because`` and
    ``stop_slices`` per direction, ``overshoot_slices`` (slices the propagation filled outside the
    structure's extent), and the structure's ``gt_slices`` and ``start_slice`` as indices of the full volume.
    """
    missing = {"propagation", "upper_bound"} - set(results)
    if missing:
        raise ValueError(f"results needs the methods {sorted(missing)}; got {sorted(results)}.")
    first, last = structure.extent
    scores = {method: score(result, structure.mask, structure.spacing) for method, result in results.items()}
    propagation = results["propagation"]
    numbers: dict[str, Any] = {f"{method}_dice3d": s["dice3d"] for method, s in scores.items()}
    numbers["gap"] = numbers["upper_bound_dice3d"] - numbers["propagation_dice3d"]
    if "in_range" in results:
        numbers["in_range_gap"] = numbers["upper_bound_dice3d"] - numbers["in_range_dice3d"]
    numbers["hd95_mm"] = {method: s["hd95_mm"] for method, s in scores.items()}
    numbers["volume_ml"] = {"ground_truth": metrics.volume_ml(structure.mask, structure.spacing)}
    numbers["volume_ml"].update({method: s["volume_ml"] for method, s in scores.items()})
    numbers["slices_propagated"] = propagation.n_slices
    numbers["stopped_because"] = dict(propagation.stopped)
    numbers["stop_slices"] = {d: structure.offset + v["slice"] for d, v in propagation.stop_details.items()}
    numbers["overshoot_slices"] = overshoot_slices(structure, propagation)
    numbers["gt_slices"] = [structure.offset + first, structure.offset + last]
    numbers["start_slice"] = structure.offset + structure.middle
    numbers["source"] = structure.source
    return numbers


# ------------------------------------------------------------------------------------------ figures


def plot_slice_profile(
    ax: Axes,
    profiles: dict[str, np.ndarray],
    gt: np.ndarray | None = None,
    start_slice: int | None = None,
) -> Axes:
    """Per-slice Dice curves (``profiles``: label → :func:`utils.metrics.slice_dice_profile`) against the slice index.

    With ``gt`` the ground-truth area per slice is shaded on a second axis; ``start_slice`` is marked.
    """
    if gt is not None:
        area_ax = ax.twinx()
        area = np.count_nonzero(_check_mask_volume(gt), axis=(1, 2))
        area_ax.fill_between(np.arange(area.size), area, color="0.85", step="mid", zorder=0)
        area_ax.set_ylabel("ground-truth area (px)", color="0.45")
        area_ax.tick_params(axis="y", colors="0.45")
        ax.set_zorder(area_ax.get_zorder() + 1)
        ax.patch.set_visible(False)  # let the shaded area show through
    shown = []  # slice indices with something to draw, to zoom the x axis onto them
    for label, profile in profiles.items():
        profile = np.asarray(profile, dtype=float)
        ax.plot(np.arange(profile.size), profile, marker=".", markersize=4, label=label)
        shown.append(np.flatnonzero(np.isfinite(profile)))
    if gt is not None:
        shown.append(np.flatnonzero(area))
    if start_slice is not None:
        ax.axvline(start_slice, color="0.3", linestyle="--", linewidth=1, label="prompted slice")
        shown.append(np.array([start_slice]))
    indices = np.concatenate(shown) if shown else np.zeros(0, dtype=int)
    if indices.size:
        ax.set_xlim(indices.min() - 3, indices.max() + 3)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("slice index")
    ax.set_ylabel("Dice on the slice")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=2, frameon=False)
    return ax


def orthogonal_views(
    volume: np.ndarray,
    gt: np.ndarray | None = None,
    pred: np.ndarray | None = None,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    center: Sequence[int] | None = None,
    titles: Sequence[str] = ("axial", "coronal", "sagittal"),
    zoom: int | None = 40,
    size: float = 3.2,
) -> Figure:
    """Three orthogonal planes through ``center`` (slice, row, col), with ground truth and prediction drawn.

    Panel 1 is slice ``center[0]``; panel 2 the plane of row ``center[1]`` (slices x columns), panel 3
    the plane of column ``center[2]`` (slices x rows). In panels 2 and 3 the slice index increases
    upwards (superior at the top for an axial volume from :mod:`utils.datasets`, whose default
    ``titles`` these are) and pixels are drawn with the true ``spacing`` aspect. ``center`` defaults to
    the ground truth's (else the prediction's) centre of mass; ``zoom`` (pixels) crops every panel to
    that margin around the masks (None: whole planes). Masks are drawn with :mod:`utils.viz` (gold
    outline: ground truth, blue fill: prediction).
    """
    from utils import viz

    volume = _check_volume(volume)
    spacing = _check_spacing_3d(spacing)
    grey = volume if volume.ndim == 3 else volume[..., 0]
    masks = {"gt": gt, "pred": pred}
    masks = {k: _check_mask_volume(m, grey.shape, name=k) for k, m in masks.items() if m is not None}
    if center is None:
        reference = masks.get("gt", masks.get("pred"))
        if reference is None or not reference.any():
            center = tuple(n // 2 for n in grey.shape)
        else:
            center = tuple(int(round(c)) for c in ndimage.center_of_mass(reference))
    center = tuple(int(c) for c in center)
    if len(center) != 3 or not all(0 <= c < n for c, n in zip(center, grey.shape)):
        raise ValueError(f"center must be (slice, row, col) inside the volume {grey.shape}; got {center!r}.")
    k, r, c = center
    # (plane extractor, aspect = height of a pixel / its width, flip so the slice index grows upwards)
    planes = [
        (lambda a: a[k], spacing[1] / spacing[2], False),
        (lambda a: a[:, r, :], spacing[0] / spacing[2], True),
        (lambda a: a[:, :, c], spacing[0] / spacing[1], True),
    ]
    union = None
    if zoom is not None and masks:
        union = np.logical_or.reduce(list(masks.values()))
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size + 0.6), layout="constrained")
    for ax, (take, aspect, flip), title in zip(axes, planes, titles):
        image = take(grey)
        layers = {name: take(m) for name, m in masks.items()}
        if flip:
            image, layers = image[::-1], {name: m[::-1] for name, m in layers.items()}
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, aspect=aspect)
        if "pred" in layers:
            viz.show_mask(ax, layers["pred"], color=viz.course_palette["prediction"])
        if "gt" in layers:
            viz.show_mask(ax, layers["gt"], color=viz.course_palette["ground_truth"], alpha=0.0, linewidth=1.5)
        ax.set_aspect(aspect)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
        if union is not None:
            footprint = take(union)[::-1] if flip else take(union)
            viz.zoom_to(ax, footprint, pad=zoom)
    entries = [e for e, key in (("ground_truth", "gt"), ("prediction", "pred")) if key in masks]
    if entries:
        viz.add_legend(fig, entries)
    return fig


def walk_gallery(
    volume: np.ndarray,
    gt: np.ndarray,
    result: VolumeResult,
    slices: Sequence[int] | None = None,
    n: int = 6,
    margin: int = 12,
    size: float = 2.4,
) -> Figure:
    """A row of slices along a propagation, cropped around the structure, drawn with :func:`utils.viz.overlay_grid`.

    Each panel shows the ground truth (gold outline), the kept prediction (blue) and the box prompt that
    slice received (magenta), titled with the slice index and its Dice. ``slices`` defaults to ``n``
    slices spread evenly over those where either mask is present, plus the slices where the walk
    stopped (their box is drawn, their rejected mask is not).
    """
    from utils import viz
    from utils.datasets import Case
    from utils.metrics import dice

    volume = _check_volume(volume)
    gt = _check_mask_volume(gt, volume.shape, name="gt")
    grey = volume if volume.ndim == 3 else volume[..., 0]
    union = gt | result.masks
    if not union.any():
        raise ValueError("walk_gallery: both the ground truth and the prediction are empty; nothing to show.")
    if slices is None:
        present = np.flatnonzero(union.reshape(union.shape[0], -1).any(axis=1))
        picked = np.unique(np.linspace(present[0], present[-1], num=min(n, present.size)).round().astype(int))
        stops = [d["slice"] for d in result.stop_details.values() if 0 <= d.get("slice", -1) < grey.shape[0]]
        slices = sorted({*picked.tolist(), *[k for k in stops if k in result.boxes]})
    rows = np.flatnonzero(union.any(axis=(0, 2)))
    cols = np.flatnonzero(union.any(axis=(0, 1)))
    r0, r1 = max(rows[0] - margin, 0), min(rows[-1] + margin + 1, grey.shape[1])
    c0, c1 = max(cols[0] - margin, 0), min(cols[-1] + margin + 1, grey.shape[2])
    cases, preds, titles = [], [], []
    for k in slices:
        k = _check_slice(k, grey.shape[0], name="slices")
        cases.append(Case(image=grey[k, r0:r1, c0:c1], mask=gt[k, r0:r1, c0:c1], name=f"slice {k}", modality=""))
        preds.append(result.masks[k, r0:r1, c0:c1])
        stops = [reason for direction, reason in result.stopped.items() if result.stop_details[direction]["slice"] == k]
        if stops:
            note = f"stop: {stops[0]}"
        elif not gt[k].any():
            note = "outside the structure" if result.masks[k].any() else "both empty"
        elif not result.masks[k].any():
            note = "missed (Dice 0)"
        else:
            note = f"Dice {dice(result.masks[k], gt[k]):.2f}"
        titles.append(f"slice {k}\n{note}")
    fig = viz.overlay_grid(cases, preds=preds, ncols=len(cases), titles=titles, size=size)
    for ax, k in zip(fig.axes, slices):
        if k in result.boxes:
            x0, y0, x1, y1 = result.boxes[k]
            viz.show_box(ax, [x0 - c0, y0 - r0, x1 - c0, y1 - r0], linewidth=1.2)
    return fig

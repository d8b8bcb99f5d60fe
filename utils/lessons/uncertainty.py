"""Uncertainty of a promptable segmenter: where do its answers disagree, and does that flag its errors?

A segmenter that answers one prompt with one mask says nothing about how sure it is. Two cheap ways to
make it say more, both giving a pixel-wise map in ``[0, 1]``:

- :func:`multimask_disagreement` — SAM answers a prompt with three masks when asked
  (``multimask_output=True``); where the three disagree, the prompt (or the image) is ambiguous.
- :func:`tta_uncertainty` — test-time augmentation: mirror the image (each mirror is a new image,
  so it costs one more encoder call), move the box a little (costs only decoder calls), segment every
  variant, map each answer back to the original frame and see where they disagree.
- :func:`intensity_tta` — the same with intensity changes (gamma, contrast...) written by the caller:
  every changed image costs one encoder call, and nothing has to be mapped back.

**Which maps mean what depends on how the model was trained.** Multimask disagreement measures a
model's uncertainty only if its three outputs were trained (``utils.models.model_card(name)["multimask"]``:
True for SAM). LiteMedSAM was trained with one output, so its tokens 1-3 are untrained and their
disagreement says more about those heads than about the image; TTA asks the trained output only.

**From K answers to a map.** Each pixel's foreground probability ``p`` is the share of the ``K``
answers that call it foreground (a *vote*: logit > SAM's threshold 0), or with ``soft=True`` the mean
of ``sigmoid(logit)``. The uncertainty is the binary entropy of ``p`` in bits (0 when all answers
agree, 1 when half say foreground) or, with ``measure="variance"``, the variance across the answers
(at most 0.25). Votes do not depend on how a model scales its logits, which matters for LiteMedSAM's
three multimask outputs: trained for single-mask output, it gives them logits within about ±0.5, so
their ``sigmoid`` is close to 0.5 everywhere. Soft probabilities separate more finely where the logits
are well scaled (a single-mask answer's are in the tens). The cheapest map of all needs no extra call:
:func:`logit_entropy`, the entropy of one answer's own ``sigmoid`` probability.

**Does high uncertainty flag the errors?** :func:`error_vs_uncertainty` takes an uncertainty map, a
prediction and the ground truth and returns the error rate per uncertainty bin (a tidy table to plot)
and a summary: :func:`auroc` of the uncertainty as a detector of misclassified pixels (0.5: no better
than chance, 1: every error is more uncertain than every correct pixel) and the error rate among the
most uncertain pixels against the rest. Most of an image is background far from the object, where
the model is both sure and right; counting those pixels inflates any score, so pass ``region`` (e.g.
:func:`utils.prompts.box_region`, the prompt box grown by a margin) to ask the question where it is hard.

Figures: :func:`plot_uncertainty_maps` (image, error map and uncertainty maps side by side) and
:func:`plot_error_vs_uncertainty` (error rate per uncertainty bin).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from utils.images import to_mask, to_rgb_uint8
from utils.prompts import FLIPS, box_region, check_box, flip_box, jitter_box

__all__ = [
    "MEASURES",
    "TTAResult",
    "auroc",
    "binary_entropy",
    "error_vs_uncertainty",
    "flag_verdict",
    "flip_array",
    "foreground_probability",
    "intensity_tta",
    "logit_entropy",
    "multimask_disagreement",
    "plot_error_vs_uncertainty",
    "plot_uncertainty_maps",
    "read_uncertainty",
    "tta_uncertainty",
]

#: Pixel-wise uncertainty measures over K answers.
MEASURES: tuple[str, ...] = ("entropy", "variance")


# ------------------------------------------------------------------------------------------ maps


def binary_entropy(p: ArrayLike) -> np.ndarray:
    """Entropy in bits of a foreground probability, pixel by pixel: ``-p log2 p - (1-p) log2 (1-p)``.

    0 where ``p`` is 0 or 1 (``0 log 0 = 0``), 1 where ``p = 0.5``. ``p`` must hold finite values in
    ``[0, 1]``.
    """
    p = np.asarray(p, dtype=float)
    if p.size and not np.all(np.isfinite(p)):
        raise ValueError("p contains NaN or inf; pass probabilities in [0, 1] (e.g. a mean of votes).")
    if p.size and (p.min() < -1e-9 or p.max() > 1 + 1e-9):
        raise ValueError(
            f"p has values in [{p.min():.3g}, {p.max():.3g}]; probabilities must be in [0, 1]. "
            "For logits, take sigmoid(logits) first."
        )
    p = np.clip(p, 0.0, 1.0)
    entropy = np.zeros_like(p)
    inside = (p > 0) & (p < 1)
    q = p[inside]
    entropy[inside] = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    return entropy


def logit_entropy(logits: ArrayLike) -> np.ndarray:
    """The uncertainty of one answer on its own: :func:`binary_entropy` of ``sigmoid(logits)``.

    ``logits`` as ``predictor.predict(..., return_logits=True)`` returns them (any shape). Costs no
    extra model call: it only says how close each pixel's logit is to the threshold.
    """
    from scipy.special import expit

    logits = np.asarray(logits, dtype=float)
    if logits.size and not np.all(np.isfinite(logits)):
        raise ValueError("logits contain NaN or inf; pass the raw logits of predict(..., return_logits=True).")
    return binary_entropy(expit(logits))


def _check_stack(outputs: ArrayLike, name: str = "outputs") -> np.ndarray:
    array = np.asarray(outputs)
    if array.ndim != 3 or array.shape[0] < 2:
        raise ValueError(
            f"{name} must be K answers stacked as (K, H, W) with K >= 2 (e.g. the three masks of "
            f"predictor.predict(..., multimask_output=True)); got shape {array.shape}."
        )
    if array.dtype != bool and not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} has dtype {array.dtype}; pass bool masks or float logits.")
    if array.dtype != bool and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf; pass bool masks or finite logits.")
    return array


def foreground_probability(outputs: ArrayLike, soft: bool = False, threshold: float = 0.0) -> np.ndarray:
    """Per-pixel foreground probability ``(H, W)`` from ``K`` answers stacked as ``(K, H, W)``.

    bool answers are votes. Float answers are logits: by default each votes foreground where its logit
    is above ``threshold`` (SAM's ``mask_threshold``, 0); with ``soft=True`` their ``sigmoid`` is
    averaged instead.
    """
    stack = _check_stack(outputs)
    if stack.dtype == bool:
        return stack.mean(axis=0)
    if soft:
        return _sigmoid(stack).mean(axis=0)
    return (stack > threshold).mean(axis=0)


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(logits.astype(float))


def _check_measure(measure: str) -> str:
    if measure not in MEASURES:
        raise ValueError(f"Unknown measure {measure!r}; choose one of {', '.join(MEASURES)}.")
    return measure


def _spread(stack: np.ndarray, measure: str, soft: bool, threshold: float) -> np.ndarray:
    probability = foreground_probability(stack, soft=soft, threshold=threshold)
    if measure == "entropy":
        return binary_entropy(probability)
    if stack.dtype == bool or not soft:
        return probability * (1 - probability)  # the variance of K votes with mean p
    return _sigmoid(stack).var(axis=0)


def multimask_disagreement(
    outputs: ArrayLike, measure: str = "entropy", soft: bool = False, threshold: float = 0.0
) -> np.ndarray:
    """Where the ``K`` masks a model returns for one prompt disagree: an ``(H, W)`` map in ``[0, 1]``.

    ``outputs``: ``(K, H, W)`` bool masks or float logits (``predictor.predict(box=...,
    multimask_output=True, return_logits=True)`` gives SAM's three as logits). ``measure``:
    ``"entropy"`` (bits; 0.918 where one of three masks disagrees with the other two) or
    ``"variance"`` (at most 0.25). ``soft`` and ``threshold``: see :func:`foreground_probability`.
    """
    return _spread(_check_stack(outputs), _check_measure(measure), bool(soft), float(threshold))


# --------------------------------------------------------------------------------- augmentations


def _check_flip(flip: str) -> str:
    if flip not in FLIPS:
        raise ValueError(f"Unknown flip {flip!r}; choose one of {', '.join(FLIPS)}.")
    return flip


def flip_array(array: ArrayLike, flip: str) -> np.ndarray:
    """An image ``(H, W[, C])`` or mask ``(H, W)`` mirrored by ``flip`` (see :data:`utils.prompts.FLIPS`).

    Every flip is its own inverse: flipping a prediction made on a flipped image with the same
    ``flip`` maps it back to the original frame.
    """
    flip = _check_flip(flip)
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"flip_array takes an (H, W) or (H, W, C) array; got shape {array.shape}.")
    if flip in ("horizontal", "both"):
        array = array[:, ::-1]
    if flip in ("vertical", "both"):
        array = array[::-1]
    return np.ascontiguousarray(array)


@dataclass
class TTAResult:
    """What :func:`tta_uncertainty` computed, every map in the original image's frame.

    ``views`` names each answer (``"horizontal · box"``, ``"none · jitter 2"``...); ``logits`` holds
    them ``(K, H, W)``; ``mean`` is the foreground probability, ``entropy`` (bits) and ``variance``
    the two uncertainty maps; ``base`` is the plain answer (original image, the box as given);
    ``encoder_calls`` counts the images encoded (one per view of the image).
    """

    views: list[str]
    logits: np.ndarray
    mean: np.ndarray
    entropy: np.ndarray
    variance: np.ndarray
    base: np.ndarray
    encoder_calls: int
    soft: bool = False

    @classmethod
    def from_logits(
        cls, views: list[str], logits: np.ndarray, encoder_calls: int, soft: bool, threshold: float
    ) -> TTAResult:
        """The maps of ``logits`` ``(K, H, W)``, one answer per view, the plain answer first."""
        return cls(
            views=list(views),
            logits=logits,
            mean=foreground_probability(logits, soft=soft, threshold=threshold),
            entropy=_spread(logits, "entropy", soft, threshold),
            variance=_spread(logits, "variance", soft, threshold),
            base=logits[0] > threshold,
            encoder_calls=int(encoder_calls),
            soft=bool(soft),
        )

    @property
    def prediction(self) -> np.ndarray:
        """The augmented ensemble's mask: pixels that at least half of the answers call foreground."""
        return self.mean >= 0.5

    @property
    def n_predictions(self) -> int:
        return len(self.views)

    def uncertainty(self, measure: str = "entropy") -> np.ndarray:
        """The ``entropy`` or ``variance`` map."""
        return self.entropy if _check_measure(measure) == "entropy" else self.variance


def _check_flips(flips: Sequence[str] | str) -> tuple[str, ...]:
    flips = (flips,) if isinstance(flips, str) else tuple(flips)
    for flip in flips:
        _check_flip(flip)
    if "none" in flips:
        raise ValueError("flips lists the extra mirrorings only: the original image ('none') is always used.")
    if len(set(flips)) != len(flips):
        raise ValueError(f"flips has duplicates: {list(flips)}; list each mirroring once.")
    return flips


def tta_uncertainty(
    predictor: Any,
    image: np.ndarray,
    box: ArrayLike,
    flips: Sequence[str] = ("horizontal",),
    n_jitter: int = 4,
    jitter: float = 0.05,
    rng: np.random.Generator | int | None = None,
    soft: bool = False,
) -> TTAResult:
    """Test-time augmentation of one box prompt: segment mirrored images and moved boxes, map every
    answer back to the original frame and measure where they disagree.

    Views: the original image plus each of ``flips`` (see :data:`utils.prompts.FLIPS`; ``"none"`` is always
    included). On every view the model answers the box as given and ``n_jitter`` jittered copies of
    it (:func:`utils.prompts.jitter_box` with ``jitter``; the same copies on every view, drawn from ``rng``), so
    there are ``(1 + len(flips)) * (1 + n_jitter)`` answers. Each view is a new image for the encoder:
    **``1 + len(flips)`` encoder calls** (fewer when ``predictor`` caches embeddings, e.g.
    :class:`utils.models.CachedPredictor`); the boxes cost decoder calls only. The original image
    is encoded last, so ``predictor`` is left holding its embedding. ``soft``: see
    :func:`foreground_probability`.
    """
    image = to_rgb_uint8(image)
    box = check_box(box, image.shape)
    flips = _check_flips(flips)
    if isinstance(n_jitter, bool) or not isinstance(n_jitter, (int, np.integer)) or n_jitter < 0:
        raise ValueError(f"n_jitter must be a whole number >= 0; got {n_jitter!r}.")
    if not flips and n_jitter == 0:
        raise ValueError("One view and one box give one answer and nothing to compare: add a flip or n_jitter >= 1.")
    for name in ("set_image", "predict"):
        if not callable(getattr(predictor, name, None)):
            raise ValueError(f"predictor has no {name}(); pass e.g. utils.models.load_predictor('litemedsam').")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    boxes = [box] + [jitter_box(box, jitter, rng, image.shape) for _ in range(int(n_jitter))]
    threshold = float(getattr(getattr(predictor, "model", None), "mask_threshold", 0.0))
    answers: dict[str, list[tuple[str, np.ndarray]]] = {}
    for flip in (*flips, "none"):  # the original last: the predictor keeps its embedding
        predictor.set_image(flip_array(image, flip))
        answers[flip] = []
        for index, prompt in enumerate(boxes):
            logits, _, _ = predictor.predict(
                box=flip_box(prompt, image.shape, flip), multimask_output=False, return_logits=True
            )
            label = f"{flip} · {'box' if index == 0 else f'jitter {index}'}"
            answers[flip].append((label, flip_array(np.asarray(logits)[0], flip).astype(np.float32)))
    ordered = answers["none"] + [item for flip in flips for item in answers[flip]]
    stack = np.stack([logits for _, logits in ordered])
    return TTAResult.from_logits([label for label, _ in ordered], stack, 1 + len(flips), soft, threshold)


def _check_view(view: Any, image: np.ndarray, index: int) -> np.ndarray:
    array = np.asarray(view)
    if array.shape != image.shape:
        raise ValueError(
            f"augment returned shape {array.shape} for view {index}; it must return an image shaped like its "
            f"input {image.shape}."
        )
    if not (array.dtype == bool or np.issubdtype(array.dtype, np.number)) or not np.all(np.isfinite(array)):
        raise ValueError(f"augment returned non-numeric or non-finite values for view {index}.")
    if array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"augment returned values in [{array.min():.3g}, {array.max():.3g}] for view {index}; "
            "keep the image in [0, 255] (e.g. np.clip, then .astype(np.uint8))."
        )
    return np.round(array).astype(np.uint8)


def intensity_tta(
    predictor: Any,
    image: np.ndarray,
    box: ArrayLike,
    augment: Any,
    n_views: int = 2,
    rng: np.random.Generator | int | None = None,
    soft: bool = True,
) -> TTAResult:
    """Test-time augmentation by intensity: the box on the original image and on ``n_views`` images made by
    ``augment(image, rng)`` (an ``(H, W, 3)`` uint8 image in, the same shape out, values in [0, 255]).

    An intensity change (gamma, contrast, noise) moves no pixel, so answers need no mapping back. Each view
    is a new image: **``1 + n_views`` encoder calls** (the original is encoded last, as in
    :func:`tta_uncertainty`). The views are called ``"none · box"`` and ``"intensity 1"``, ``"intensity 2"``...;
    ``rng`` seeds ``augment``; ``soft``: see :func:`foreground_probability`.
    """
    image = to_rgb_uint8(image)
    box = check_box(box, image.shape)
    if not callable(augment):
        raise ValueError("augment must be a function augment(image, rng) -> image, e.g. a gamma change.")
    if isinstance(n_views, bool) or not isinstance(n_views, (int, np.integer)) or n_views < 1:
        raise ValueError(f"n_views must be a whole number >= 1; got {n_views!r}.")
    for name in ("set_image", "predict"):
        if not callable(getattr(predictor, name, None)):
            raise ValueError(f"predictor has no {name}(); pass e.g. utils.models.load_predictor('litemedsam').")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    views = [_check_view(augment(image.copy(), rng), image, i + 1) for i in range(int(n_views))]
    threshold = float(getattr(getattr(predictor, "model", None), "mask_threshold", 0.0))
    answers = []
    for view in (*views, image):  # the original last: the predictor keeps its embedding
        predictor.set_image(view)
        logits, _, _ = predictor.predict(box=box, multimask_output=False, return_logits=True)
        answers.append(np.asarray(logits)[0].astype(np.float32))
    stack = np.stack([answers[-1], *answers[:-1]])
    views = ["none · box"] + [f"intensity {i + 1}" for i in range(int(n_views))]
    return TTAResult.from_logits(views, stack, 1 + int(n_views), soft, threshold)


# ------------------------------------------------------------------------- does it flag errors?


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve of ``scores`` for detecting ``labels`` (True = positive).

    The probability that a random positive scores higher than a random negative, ties counting one
    half (the Mann-Whitney U statistic over ``n_pos * n_neg``). NaN when ``labels`` holds only one
    class (there is nothing to separate).
    """
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=float).reshape(-1)
    labels = np.asarray(labels)
    if labels.dtype != bool:
        if not np.isin(labels, (0, 1)).all():
            raise ValueError("labels must be bool or 0/1 (True = the pixel is an error).")
        labels = labels.astype(bool)
    labels = labels.reshape(-1)
    if scores.shape != labels.shape:
        raise ValueError(f"scores ({scores.size} values) and labels ({labels.size}) must have one value per pixel.")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf; pass a finite uncertainty map.")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # average ranks: ties count one half
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _check_same_shape(uncertainty: np.ndarray, *masks: tuple[str, ArrayLike]) -> list[np.ndarray]:
    out = []
    for name, mask in masks:
        array = np.asarray(mask)
        if array.shape != uncertainty.shape:
            raise ValueError(
                f"{name} has shape {array.shape} but uncertainty has {uncertainty.shape}; "
                "they must match pixel for pixel."
            )
        if array.dtype != bool:
            if not np.isin(array, (0, 1)).all():
                raise ValueError(f"{name} must be a bool mask (or 0/1); threshold probabilities first (p > 0.5).")
            array = array.astype(bool)
        out.append(array)
    return out


def _pixels(uncertainty: ArrayLike, pred: ArrayLike, gt: ArrayLike, region: ArrayLike | None, where: str = ""):
    """One case's (uncertainty, error) pixels, flattened, inside ``region``."""
    values = np.asarray(uncertainty, dtype=float)
    if values.size == 0:
        raise ValueError(f"uncertainty{where} is empty; pass a map with at least one pixel.")
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"uncertainty{where} contains NaN or inf; pass a finite map (e.g. binary_entropy of a probability)."
        )
    pred, gt = _check_same_shape(values, (f"pred{where}", pred), (f"gt{where}", gt))
    if region is not None:
        (region,) = _check_same_shape(values, (f"region{where}", region))
        if not region.any():
            raise ValueError(
                f"region{where} selects no pixel; grow it (e.g. utils.prompts.box_region(box, shape, margin=10))."
            )
        values, pred, gt = values[region], pred[region], gt[region]
    return values.reshape(-1), (pred != gt).reshape(-1)


def _pooled(uncertainty: Sequence, pred: Any, gt: Any, region: Any):
    """Several cases' pixels, concatenated (lists with one array per case)."""
    n = len(uncertainty)
    regions = [None] * n if region is None else region
    for name, items in (("pred", pred), ("gt", gt), ("region", regions)):
        if not isinstance(items, (list, tuple)) or len(items) != n:
            raise ValueError(
                f"uncertainty is a list of {n} maps, so {name} must be a list of {n} arrays too (one per case)."
            )
    if n == 0:
        raise ValueError("uncertainty is an empty list; pass at least one map.")
    parts = [_pixels(u, p, g, r, where=f"[{i}]") for i, (u, p, g, r) in enumerate(zip(uncertainty, pred, gt, regions))]
    return np.concatenate([v for v, _ in parts]), np.concatenate([e for _, e in parts])


def error_vs_uncertainty(
    uncertainty: ArrayLike | Sequence[ArrayLike],
    pred: ArrayLike | Sequence[ArrayLike],
    gt: ArrayLike | Sequence[ArrayLike],
    n_bins: int = 10,
    region: ArrayLike | Sequence[ArrayLike] | None = None,
    value_range: tuple[float, float] | None = None,
    top_fraction: float = 0.1,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Does high uncertainty flag the errors of ``pred``? A table per uncertainty bin and a summary.

    ``uncertainty``, ``pred`` and ``gt`` have one shape (e.g. one image ``(H, W)``); a pixel is an
    *error* where ``pred != gt``. ``region`` (bool, same shape) keeps only those pixels. To pool several
    cases, pass lists with one array per case for all three (and for ``region``). Bins are ``n_bins``
    equal-width intervals over ``value_range`` (default: the values' min to max; values outside fall
    into the end bins).

    Table columns: ``bin_low, bin_high, pixels, errors, error_rate`` (NaN for an empty bin),
    ``share_of_pixels, share_of_errors``. Summary: ``pixels, errors, error_rate, auroc`` (see
    :func:`auroc`), and for the ``top_fraction`` most uncertain pixels (ties broken by pixel order):
    ``error_rate_top``, ``error_rate_rest`` and ``errors_caught_top`` (the share of all errors among them).
    """
    if isinstance(uncertainty, (list, tuple)):
        values, errors = _pooled(uncertainty, pred, gt, region)
    else:
        values, errors = _pixels(uncertainty, pred, gt, region)
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be a whole number >= 1; got {n_bins!r}.")
    top_fraction = float(top_fraction)
    if not 0 < top_fraction <= 1:
        raise ValueError(
            f"top_fraction must be in (0, 1], e.g. 0.1 for the 10% most uncertain pixels; got {top_fraction}."
        )
    if value_range is None:
        low, high = float(values.min()), float(values.max())
    elif len(value_range) != 2:
        raise ValueError(f"value_range must be (low, high), e.g. (0, 1) for entropy in bits; got {value_range!r}.")
    else:
        low, high = (float(v) for v in value_range)
    if not (np.isfinite(low) and np.isfinite(high)) or high < low:
        raise ValueError(f"value_range must be (low, high) with low <= high; got {value_range!r}.")
    edges = np.linspace(low, high if high > low else low + 1e-12, int(n_bins) + 1)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, int(n_bins) - 1)
    pixels = np.bincount(index, minlength=int(n_bins))
    wrong = np.bincount(index, weights=errors, minlength=int(n_bins)).astype(int)
    n_errors = int(errors.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "pixels": pixels,
                "errors": wrong,
                "error_rate": np.where(pixels > 0, wrong / np.maximum(pixels, 1), np.nan),
                "share_of_pixels": pixels / values.size,
                "share_of_errors": wrong / n_errors if n_errors else np.zeros(int(n_bins)),
            }
        )
    k = max(1, int(round(top_fraction * values.size)))
    top = np.zeros(values.size, dtype=bool)
    top[np.argsort(-values, kind="stable")[:k]] = True
    summary = {
        "pixels": int(values.size),
        "errors": n_errors,
        "error_rate": n_errors / values.size,
        "auroc": auroc(values, errors),
        "top_fraction": top_fraction,
        "error_rate_top": float(errors[top].mean()),
        "error_rate_rest": float(errors[~top].mean()) if (~top).any() else float("nan"),
        "errors_caught_top": float(errors[top].sum() / n_errors) if n_errors else float("nan"),
    }
    return table, summary


# ------------------------------------------------------------------------------------- reading it


def flag_verdict(auroc_value: float) -> str:
    """How the course words an AUROC of uncertainty against errors: ``"flags"`` (above 0.7), ``"weakly flags"``
    (above 0.55), ``"does not flag"`` (otherwise, NaN included: no error to flag)."""
    value = float(auroc_value)
    return "flags" if value > 0.7 else "weakly flags" if value > 0.55 else "does not flag"


def read_uncertainty(model: str, claims: Mapping[str, Any]) -> str:
    """The interpretation of one model's uncertainty scores, written from its numbers (notebook 06 prints it).

    ``claims`` holds ``auroc_TTA``, ``auroc_own_probability``, ``auroc_multimask``, ``multimask_trained``
    (:func:`utils.models.trained_multimask`), ``worst_dice_case``, ``worst_dice``,
    ``worst_dice_case_tta_auroc``, ``others_mean_tta_auroc`` and ``tta_ensemble_dice_gain``.
    """
    tta, own, multi = (float(claims[k]) for k in ("auroc_TTA", "auroc_own_probability", "auroc_multimask"))
    baseline = "TTA beat it" if tta > own else "the free map did at least as well as TTA"
    heads = (
        "its trained outputs: its doubt about the prompt"
        if claims["multimask_trained"]
        else "untrained outputs 1-3: a confound, not its uncertainty"
    )
    worst, others = float(claims["worst_dice_case_tta_auroc"]), float(claims["others_mean_tta_auroc"])
    if np.isfinite(others):
        beside = f"{'lower than' if worst < others else 'not lower than'} the others' {others:.2f} on average"
    else:
        beside = "no other case to compare with"
    gain = float(claims["tta_ensemble_dice_gain"])
    return (
        f"{model}: TTA uncertainty {flag_verdict(tta)} the errors (AUROC {tta:.2f}; 0.5 = chance). Its own "
        f"probability, free: {own:.2f} ({baseline}). Multimask {multi:.2f} ({heads}).\n"
        f"  Worst-segmented case {claims['worst_dice_case']} (Dice {float(claims['worst_dice']):.2f}): TTA AUROC "
        f"{worst:.2f}, {beside}. The TTA ensemble changes the mean Dice by "
        f"{gain:+.3f} ({'it helped' if gain > 0 else 'it did not help'})."
    )


# ------------------------------------------------------------------------------------------ figures


def plot_uncertainty_maps(
    image: np.ndarray,
    gt: ArrayLike,
    pred: ArrayLike,
    maps: Mapping[str, ArrayLike],
    box: ArrayLike | None = None,
    margin: int = 20,
    title: str = "",
):
    """One row: the image with ground truth (gold), prediction (blue) and box; the error map (TP / FP /
    FN, :func:`utils.viz.contour_compare`); then each uncertainty map in ``maps`` (label → ``(H, W)``
    in ``[0, 1]``) with the errors outlined. Zoomed to ``box`` grown by ``margin`` pixels. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from utils import viz

    image = to_rgb_uint8(image)
    gt = to_mask(gt, shape=image.shape, name="gt")
    pred = to_mask(pred, shape=image.shape, name="pred")
    maps = {label: np.asarray(values, dtype=float) for label, values in maps.items()}
    for label, values in maps.items():
        if values.shape != gt.shape:
            raise ValueError(f"map {label!r} has shape {values.shape}; expected {gt.shape} like the image.")
    fig, axes = plt.subplots(1, 2 + len(maps), figsize=(3.3 * (2 + len(maps)), 3.9), layout="constrained")
    axes[0].imshow(image)
    viz.show_mask(axes[0], pred)
    viz.show_mask(axes[0], gt, color=viz.course_palette["ground_truth"], alpha=0.0, linewidth=1.5)
    if box is not None:
        viz.show_box(axes[0], box, linewidth=1.0)
    axes[0].set_title(title or "prediction (blue), truth (gold)", fontsize=9)
    viz.contour_compare(axes[1], image, pred, gt)
    errors = pred != gt
    for ax, (label, values) in zip(axes[2:], maps.items()):
        shown = ax.imshow(values, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        if errors.any() and not errors.all():
            ax.contour(errors.astype(float), levels=[0.5], colors=["cyan"], linewidths=0.7)
        ax.set_title(f"{label}\n(cyan: errors)", fontsize=9)
    if maps:
        fig.colorbar(shown, ax=list(axes[2:]), shrink=0.7, label="uncertainty")
    limits = box_region(box, image.shape, margin) if box is not None else np.ones(gt.shape, bool)
    rows, cols = np.flatnonzero(limits.any(axis=1)), np.flatnonzero(limits.any(axis=0))
    for ax in axes:
        ax.set_xlim(cols[0] - 0.5, cols[-1] + 0.5)
        ax.set_ylim(rows[-1] + 0.5, rows[0] - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
    return fig


def plot_error_vs_uncertainty(tables: Mapping[str, pd.DataFrame], ax: Any = None):
    """Error rate per uncertainty bin, one line per table from :func:`error_vs_uncertainty`; a marker's
    area grows with the bin's share of the pixels. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    for label, table in tables.items():
        missing = {"bin_low", "bin_high", "error_rate", "share_of_pixels"} - set(table.columns)
        if missing:
            raise ValueError(f"table {label!r} lacks {sorted(missing)}; pass error_vs_uncertainty(...)[0].")
        kept = table[table["pixels"] > 0]
        centres = (kept["bin_low"] + kept["bin_high"]) / 2
        line = ax.plot(centres, kept["error_rate"], label=label, linewidth=1.5)[0]
        ax.scatter(centres, kept["error_rate"], s=20 + 400 * kept["share_of_pixels"], color=line.get_color(), alpha=0.6)
    ax.set(xlabel="uncertainty (bin centre)", ylabel="error rate of the pixels in the bin", ylim=(-0.02, 1.02))
    ax.set_title("does high uncertainty flag the errors?", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax

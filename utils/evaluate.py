"""Zero-shot evaluation: cases × prompt modes → one table, with the image encoder run once per image.

``evaluate(predictor, cases, modes)`` embeds each case's image once (``predictor.set_image``), then
asks for a mask with every prompt mode, scores it against the ground truth and returns a pandas
DataFrame with one row per case × mode. Prompts are simulated from the ground-truth mask (the
"oracle annotator" protocol of the zero-shot SAM studies) with :mod:`utils.prompts`.

Modes (:data:`MODES`) and how the reported mask is picked
---------------------------------------------------------

==================  =========================================================  ===========  ============
mode                prompt                                                     multimask    choice
==================  =========================================================  ===========  ============
``point_center``    1 positive point, deepest inside the mask ("center")       yes (3)      ``iou_head``
``point_random``    1 positive point, uniform inside the mask                  yes (3)      ``iou_head``
``points_3``        3 positive points, deep and spread ("center" strategy)     no (1)       ``single``
``points_5``        5 positive points, deep and spread                         no (1)       ``single``
``box``             the tight box around the mask                              no (1)       ``single``
``box_jitter_5``    the box, each side moved by up to 5% of its size           no (1)       ``single``
``box_jitter_10``   ... 10%                                                    no (1)       ``single``
``box_jitter_20``   ... 20%                                                    no (1)       ``single``
``everything``      no prompt: SAM's automatic mask generator (a point grid)   all masks    ``best_match``
==================  =========================================================  ===========  ============

Why: SAM's authors return three masks for a *single* point because one click is ambiguous (part,
object, whole) and rank them with the IoU head; with several prompts (points, or a box's two
corners) SAM's extra fourth output token gives one unambiguous mask (``multimask_output=False``).
LiteMedSAM was trained with boxes and single-mask output only. ``multimask=`` overrides the policy
per mode (e.g. ``{"box": True}`` to study the IoU head on boxes).

For every row the table reports the mask the *model* would hand a user (``choice``: ``iou_head``
= highest predicted IoU, ``single`` = the only mask, ``best_match`` = the generated mask with the
best Dice) and the *oracle*: the candidate with the best Dice against the ground truth
(``dice_oracle``, ``iou_oracle``, ``oracle_index``). The oracle can only be >= the reported mask;
the gap measures how often the IoU head picks the wrong one of SAM's three answers. For
single-output modes the two are equal.

Everything mode runs ``segment_anything.SamAutomaticMaskGenerator`` on ``predictor.model`` (SAM's
default filters; ``points_per_side`` 16 here, SAM's own default is 32: ``amg_kwargs`` changes any
of its arguments) and keeps the generated mask that best matches the ground truth by Dice: an upper
bound on what "segment everything, then pick" could do. The generator normally embeds the image
itself; here it is handed the predictor's embedding of the same image, so **everything mode costs
no extra encoder call** (with ``crop_n_layers > 0`` each extra crop is a real, counted encoder
call). It does cost one decoder pass per grid point: ``points_per_side ** 2`` prompts per image.

Columns
-------
``model, case, dataset, modality, mode, multimask, choice, chosen_index, n_candidates, dice, iou,
hd95, nsd, iou_pred, dice_oracle, iou_oracle, oracle_index, n_points, gt_area, pred_area,
prompt_box, prompt_points, prompt_labels`` (+ ``mask`` with ``keep_masks=True``). ``hd95`` is in mm
(the case's ``spacing``); ``nsd`` uses a tolerance of ``nsd_tolerance_px`` pixel widths (default 2,
as mm: 2 × the larger side of a pixel). ``iou_pred`` is the model's predicted IoU of the reported
mask (NaN when no mask was generated). Metric conventions for empty masks: :mod:`utils.metrics`.
``df.attrs`` records ``encoder_calls`` (when the predictor counts them), ``seed``, ``modes``,
``multimask`` and ``amg_kwargs``.

Reproducibility: each prompt's random generator is seeded from ``(seed, case name, mode)``, so a
row does not depend on which other cases or modes were evaluated, nor on their order.

Summaries: :func:`summarize` (mean and percentile-bootstrap 95% CI per group), :func:`compare_modes`
(paired difference between two modes), :func:`per_modality`, :func:`tidy` (long format for plots),
:func:`summary_dict` (for results.json), and published numbers with :func:`published_results` /
:func:`published_comparison`. Figures: :func:`plot_by_mode`, :func:`plot_modality_heatmap`,
:func:`plot_oracle_gap`, :func:`plot_failures`.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils import metrics
from utils.models import CachedPredictor
from utils.prompts import box_from_mask, points_from_mask

__all__ = [
    "AMG_DEFAULTS",
    "BOX_JITTER",
    "MEDSEGBENCH_SETS",
    "MODES",
    "MULTIMASK",
    "NSD_TOLERANCE_PX",
    "POINT_PROMPTS",
    "PROMPT_MODES",
    "benchmark_cases",
    "bootstrap_ci",
    "case_dataset",
    "compare_modes",
    "describe_cases",
    "evaluate",
    "make_prompt",
    "oracle_gap",
    "per_modality",
    "plot_by_mode",
    "plot_failures",
    "plot_modality_heatmap",
    "plot_oracle_gap",
    "published_comparison",
    "published_results",
    "spread_cases",
    "summarize",
    "summary_dict",
    "tidy",
]

MODES: tuple[str, ...] = (
    "point_center",
    "point_random",
    "points_3",
    "points_5",
    "box",
    "box_jitter_5",
    "box_jitter_10",
    "box_jitter_20",
    "everything",
)
PROMPT_MODES: tuple[str, ...] = MODES[:-1]

#: Point modes: (number of positive points, utils.prompts strategy).
POINT_PROMPTS: dict[str, tuple[int, str]] = {
    "point_center": (1, "center"),
    "point_random": (1, "random"),
    "points_3": (3, "center"),
    "points_5": (5, "center"),
}
#: Box modes: jitter as a fraction of the box's width/height (see utils.prompts.box_from_mask).
BOX_JITTER: dict[str, float] = {"box": 0.0, "box_jitter_5": 0.05, "box_jitter_10": 0.10, "box_jitter_20": 0.20}
#: Whether each prompt mode asks for SAM's three masks (see the module docstring for why).
MULTIMASK: dict[str, bool] = {mode: mode in ("point_center", "point_random") for mode in PROMPT_MODES}
#: Automatic-mask-generator settings that differ from segment-anything's defaults.
AMG_DEFAULTS: dict[str, Any] = {"points_per_side": 16}
NSD_TOLERANCE_PX = 2.0

COLUMNS = (
    "model",
    "case",
    "dataset",
    "modality",
    "mode",
    "multimask",
    "choice",
    "chosen_index",
    "n_candidates",
    "dice",
    "iou",
    "hd95",
    "nsd",
    "iou_pred",
    "dice_oracle",
    "iou_oracle",
    "oracle_index",
    "n_points",
    "gt_area",
    "pred_area",
    "prompt_box",
    "prompt_points",
    "prompt_labels",
)
METRICS = ("dice", "iou", "hd95", "nsd", "dice_oracle", "iou_oracle")


# --------------------------------------------------------------------------------------------------
# evaluate
# --------------------------------------------------------------------------------------------------


@dataclass
class _Answer:
    """What the model returned for one prompt: candidate masks, their predicted IoUs, the prompt."""

    masks: np.ndarray  # (K, H, W) bool, K >= 0
    scores: np.ndarray  # (K,) predicted IoU
    choice: str  # "single" | "iou_head" | "best_match"
    multimask: bool
    n_points: int
    box: tuple[float, ...] | None = None
    points: tuple[tuple[float, float], ...] | None = None
    labels: tuple[int, ...] | None = None


def evaluate(
    predictor: Any,
    cases: Sequence[Any],
    modes: Sequence[str] = MODES,
    seed: int = 0,
    progress: bool = True,
    amg_kwargs: Mapping[str, Any] | None = None,
    *,
    multimask: Mapping[str, bool] | None = None,
    nsd_tolerance_px: float = NSD_TOLERANCE_PX,
    keep_masks: bool = False,
) -> pd.DataFrame:
    """Score ``predictor`` on every case × mode; one row each (see the module docstring for columns).

    ``predictor`` is a ``SamPredictor``-like object: ``set_image(image)`` and
    ``predict(point_coords=, point_labels=, box=, multimask_output=)`` returning ``(masks (K, H, W),
    scores (K,), logits)``; ``everything`` also needs ``predictor.model`` (a segment-anything
    ``Sam``). ``cases`` are :class:`utils.datasets.Case` objects (non-empty masks). ``set_image``
    runs once per case whatever the number of modes. ``keep_masks=True`` adds the reported mask of
    each row in a ``mask`` column (for galleries).
    """
    modes = _check_modes(modes)
    cases = _check_cases(cases)
    seed = _check_seed(seed)
    policy = _multimask_policy(multimask)
    tolerance_px = float(nsd_tolerance_px)
    if not np.isfinite(tolerance_px) or tolerance_px < 0:
        raise ValueError(f"nsd_tolerance_px must be a number of pixels >= 0, e.g. 2.0; got {nsd_tolerance_px!r}.")
    for name in ("set_image", "predict"):
        if not callable(getattr(predictor, name, None)):
            raise ValueError(
                f"predictor has no {name}(); pass a SamPredictor, e.g. utils.models.load_predictor('litemedsam')."
            )
    generator = _mask_generator(predictor, amg_kwargs) if "everything" in modes else None
    if generator is not None and not isinstance(predictor, CachedPredictor):
        predictor = CachedPredictor(predictor, max_items=1)  # the mask generator re-sets the same image
    model_name = str(getattr(predictor, "name", "") or type(predictor).__name__)
    calls_before = getattr(predictor, "encoder_calls", None)

    from tqdm.auto import tqdm

    rows = []
    for case in tqdm(cases, desc=f"{model_name}: {len(modes)} modes", unit="case", disable=not progress):
        predictor.set_image(case.image)  # the one encoder call for this image
        answers = {mode: _prompt(predictor, case, mode, seed, policy[mode]) for mode in modes if mode != "everything"}
        if generator is not None:  # last: with crops it may replace the predictor's embedding
            answers["everything"] = _everything(generator, predictor, case)
        for mode in modes:
            rows.append(_score(case, mode, answers[mode], model_name, tolerance_px, keep_masks))
    table = pd.DataFrame(rows, columns=[*COLUMNS, "mask"] if keep_masks else list(COLUMNS))
    calls_after = getattr(predictor, "encoder_calls", None)
    table.attrs.update(
        encoder_calls=None if calls_before is None else int(calls_after - calls_before),
        seed=seed,
        modes=list(modes),
        multimask={mode: policy[mode] for mode in modes if mode != "everything"},
        amg_kwargs=None if generator is None else _amg_settings(amg_kwargs),
    )
    return table


def make_prompt(case: Any, mode: str, seed: int = 0) -> dict[str, Any]:
    """The prompt ``evaluate`` gives for ``case`` in prompt mode ``mode`` with ``seed``.

    Returns ``{"point_coords": (N, 2) array or None, "point_labels": (N,) array or None, "box": (4,)
    array or None}``, ready for ``predictor.predict(**prompt)``. Deterministic in ``(seed, case.name,
    mode)``.
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"{mode!r} is not a prompt mode; choose from {', '.join(PROMPT_MODES)}.")
    seed = _check_seed(seed)
    rng = _prompt_rng(seed, case.name, mode)
    if mode in POINT_PROMPTS:
        wanted, strategy = POINT_PROMPTS[mode]
        n_pos = int(min(wanted, np.count_nonzero(case.mask)))  # a tiny mask cannot hold 5 distinct points
        coords, labels = points_from_mask(case.mask, n_pos=n_pos, strategy=strategy, rng=rng)
        return {"point_coords": coords, "point_labels": labels, "box": None}
    box = box_from_mask(case.mask, jitter=BOX_JITTER[mode], rng=rng)
    return {"point_coords": None, "point_labels": None, "box": box}


def _prompt(predictor: Any, case: Any, mode: str, seed: int, multimask: bool) -> _Answer:
    prompt = make_prompt(case, mode, seed)
    masks, scores, _ = predictor.predict(**prompt, multimask_output=multimask)
    masks, scores = _as_candidates(masks, scores, case.mask.shape)
    coords, labels, box = prompt["point_coords"], prompt["point_labels"], prompt["box"]
    return _Answer(
        masks,
        scores,
        choice="iou_head" if multimask else "single",
        multimask=multimask,
        n_points=0 if coords is None else len(coords),
        box=None if box is None else tuple(float(v) for v in box),
        points=None if coords is None else tuple((float(x), float(y)) for x, y in coords),
        labels=None if labels is None else tuple(int(v) for v in labels),
    )


def _as_candidates(masks: Any, scores: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks)
    scores = np.asarray(scores, dtype=float).reshape(-1)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.ndim != 3 or masks.shape[1:] != tuple(shape) or len(masks) != len(scores) or len(masks) == 0:
        raise ValueError(
            f"predictor.predict returned masks of shape {masks.shape} and {scores.size} scores; expected "
            f"(K, {shape[0]}, {shape[1]}) masks with K >= 1 and one score per mask (SamPredictor's output)."
        )
    return masks.astype(bool), scores


def _score(case: Any, mode: str, answer: _Answer, model: str, tolerance_px: float, keep_mask: bool) -> dict:
    gt = case.mask
    dices = [metrics.dice(m, gt) for m in answer.masks]
    ious = [metrics.iou(m, gt) for m in answer.masks]
    if dices:
        oracle = int(np.argmax(dices))  # the first of equally good candidates
        chosen = {"single": 0, "iou_head": int(np.argmax(answer.scores)), "best_match": oracle}[answer.choice]
        pred = answer.masks[chosen]
        iou_pred = float(answer.scores[chosen])
    else:  # everything mode kept no mask: the answer is "nothing"
        oracle = chosen = -1
        pred = np.zeros_like(gt)
        iou_pred = float("nan")
    dice = dices[chosen] if dices else metrics.dice(pred, gt)
    iou = ious[chosen] if ious else metrics.iou(pred, gt)
    row = {
        "model": model,
        "case": case.name,
        "dataset": case_dataset(case),
        "modality": case.modality,
        "mode": mode,
        "multimask": answer.multimask,
        "choice": answer.choice,
        "chosen_index": chosen,
        "n_candidates": len(dices),
        "dice": dice,
        "iou": iou,
        "hd95": metrics.hd95(pred, gt, spacing=case.spacing),
        "nsd": metrics.nsd(pred, gt, tolerance=tolerance_px * max(case.spacing), spacing=case.spacing),
        "iou_pred": iou_pred,
        "dice_oracle": dices[oracle] if dices else dice,
        "iou_oracle": ious[oracle] if ious else iou,
        "oracle_index": oracle,
        "n_points": answer.n_points,
        "gt_area": int(gt.sum()),
        "pred_area": int(pred.sum()),
        "prompt_box": answer.box,
        "prompt_points": answer.points,
        "prompt_labels": answer.labels,
    }
    if keep_mask:
        row["mask"] = pred
    return row


def _prompt_rng(seed: int, case_name: str, mode: str) -> np.random.Generator:
    # crc32 is stable across runs and machines (Python's hash() of a str is salted per process).
    return np.random.default_rng([seed, zlib.crc32(case_name.encode()), zlib.crc32(mode.encode())])


# ------------------------------------------------------------------------------------ everything mode


def _amg_settings(amg_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    return {**AMG_DEFAULTS, **dict(amg_kwargs or {})}


def _mask_generator(predictor: Any, amg_kwargs: Mapping[str, Any] | None):
    from segment_anything import SamAutomaticMaskGenerator
    from segment_anything.modeling import Sam

    if not isinstance(getattr(predictor, "model", None), Sam):
        raise ValueError(
            "Mode 'everything' runs segment_anything's SamAutomaticMaskGenerator on predictor.model, so it "
            "needs a SamPredictor (utils.models.load_predictor); leave 'everything' out of modes for other predictors."
        )
    settings = _amg_settings(amg_kwargs)
    allowed = set(inspect.signature(SamAutomaticMaskGenerator).parameters) - {"model"}
    unknown = sorted(set(settings) - allowed)
    if unknown:
        raise ValueError(f"Unknown amg_kwargs {unknown}; SamAutomaticMaskGenerator accepts {sorted(allowed)}.")
    if settings.get("output_mode", "binary_mask") != "binary_mask":
        raise ValueError("amg_kwargs output_mode must stay 'binary_mask': masks are scored as arrays.")
    area = settings.get("min_mask_region_area", 0)
    if area and area > 0:
        # segment_anything removes small regions and holes with OpenCV, imported only when this is on;
        # the course does not install it (Colab has it): say what to install, not just "No module named cv2".
        try:
            import cv2  # noqa: F401
        except ImportError as missing:
            raise ImportError(
                f"amg_kwargs min_mask_region_area={area} needs OpenCV: SamAutomaticMaskGenerator removes "
                "small regions and holes with cv2, which is not installed here. Install it with "
                "`pip install opencv-python-headless`, or leave min_mask_region_area at 0."
            ) from missing
    return SamAutomaticMaskGenerator(predictor.model, **settings)


def _everything(generator: Any, predictor: Any, case: Any) -> _Answer:
    import torch

    generator.predictor = predictor  # a CachedPredictor: setting the case's image again restores it
    try:
        with torch.inference_mode():
            records = generator.generate(case.image)
    except IndexError:
        # segment-anything 1.0 cannot merge crops when no crop kept a mask (box_area of an empty
        # tensor): that outcome is "no mask", which is what we record.
        if not generator.crop_n_layers:
            raise
        records = []
    height, width = case.mask.shape
    masks = np.stack([r["segmentation"] for r in records]) if records else np.zeros((0, height, width), bool)
    scores = np.array([r["predicted_iou"] for r in records], dtype=float)
    n_grid = int(sum(len(grid) for grid in generator.point_grids[:1]))
    return _Answer(masks.astype(bool), scores, choice="best_match", multimask=True, n_points=n_grid)


# ------------------------------------------------------------------------------------------- checks


def _check_modes(modes: Sequence[str] | str) -> tuple[str, ...]:
    if isinstance(modes, str):
        modes = (modes,)
    modes = tuple(modes)
    if not modes:
        raise ValueError(f"modes is empty; pass some of {', '.join(MODES)} (default: all of them).")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"Unknown mode(s) {unknown}; choose from {', '.join(MODES)}.")
    if len(set(modes)) != len(modes):
        raise ValueError(f"modes lists a mode twice: {list(modes)}; each mode gives one row per case.")
    return modes


def _check_cases(cases: Sequence[Any]) -> list[Any]:
    cases = list(cases)
    if not cases:
        raise ValueError("cases is empty; pass a list of utils.datasets.Case (e.g. datasets.offline_cases()).")
    names = [getattr(case, "name", None) for case in cases]
    for case in cases:
        if not all(hasattr(case, attribute) for attribute in ("image", "mask", "name", "modality", "spacing")):
            raise ValueError(f"cases must be utils.datasets.Case objects; got {type(case).__name__}.")
        if not np.asarray(case.mask).any():
            raise ValueError(
                f"Case {case.name!r} has an empty mask: prompts are drawn from the mask, so there is nothing to "
                "prompt for. Drop it from cases."
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(
            f"Case names must be unique (they seed the prompts and key the table); repeated: {duplicates}."
        )
    return cases


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _multimask_policy(multimask: Mapping[str, bool] | None) -> dict[str, bool]:
    policy = dict(MULTIMASK)
    for mode, value in dict(multimask or {}).items():
        if mode not in PROMPT_MODES:
            raise ValueError(f"multimask sets {mode!r}, which is not a prompt mode ({', '.join(PROMPT_MODES)}).")
        policy[mode] = bool(value)
    return policy


# --------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------


def bootstrap_ci(values: Iterable[float], n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> tuple:
    """``(mean, ci_low, ci_high)``: the mean and its percentile-bootstrap confidence interval.

    ``n_boot`` resamples of the values with replacement (same size); the CI is the
    ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of their means. NaNs are dropped; no values
    give NaNs; one value gives a zero-width interval.
    """
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    array = array[np.isfinite(array)]
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer (1000 is usual); got {n_boot!r}.")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be between 0 and 1 (0.95 for a 95% interval); got {ci!r}.")
    if array.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(int(n_boot), array.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(array.mean()), float(low), float(high)


def _keys(df: pd.DataFrame, by: str | Sequence[str]) -> list[str]:
    keys = [by] if isinstance(by, str) else list(by)
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"Cannot group by {missing}: the table has columns {list(df.columns)}.")
    if "model" in df.columns and "model" not in keys and df["model"].nunique() > 1:
        raise ValueError(
            f"The table holds several models ({', '.join(map(str, df['model'].unique()))}); averaging across them "
            f"mixes them. Group by ['model', {', '.join(map(repr, keys))}] or filter one model first."
        )
    return keys


def _check_metric(df: pd.DataFrame, metric: str) -> None:
    if metric not in df.columns:
        raise ValueError(f"Unknown metric {metric!r}; the table has {[c for c in METRICS if c in df.columns]}.")


def summarize(
    df: pd.DataFrame, by: str | Sequence[str] = "mode", metric: str = "dice", n_boot: int = 1000, seed: int = 0
) -> pd.DataFrame:
    """Mean of ``metric`` per group with a percentile-bootstrap 95% CI over the group's rows (cases).

    Returns a DataFrame indexed by ``by`` (groups in order of first appearance) with columns
    ``mean, ci_low, ci_high, n``. Each group's resampling is seeded from ``seed`` and the group's
    name, so a group's interval does not depend on the other groups.
    """
    keys = _keys(df, by)
    _check_metric(df, metric)
    rows = []
    for key, group in df.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        group_seed = [seed, zlib.crc32(repr(key).encode())]
        mean, low, high = bootstrap_ci(group[metric].to_numpy(float), n_boot=n_boot, seed=group_seed)
        rows.append((*key, mean, low, high, int(group[metric].notna().sum())))
    out = pd.DataFrame(rows, columns=[*keys, "mean", "ci_low", "ci_high", "n"])
    return out.set_index(keys)


def compare_modes(
    df: pd.DataFrame, a: str = "box", b: str = "point_center", metric: str = "dice", n_boot: int = 1000, seed: int = 0
) -> dict[str, float]:
    """Paired comparison of two modes on the same cases: ``a - b`` per case, mean and bootstrap 95% CI.

    Returns ``{"a", "b", "metric", "mean_diff", "ci_low", "ci_high", "n", "a_wins"}`` where ``a_wins``
    is the fraction of cases in which ``a`` scores strictly higher. One model per table.
    """
    _keys(df, "mode")
    _check_metric(df, metric)
    wide = df.pivot_table(index="case", columns="mode", values=metric, aggfunc="first")
    for mode in (a, b):
        if mode not in wide.columns:
            raise ValueError(f"Mode {mode!r} is not in the table (it has {list(wide.columns)}).")
    paired = wide[[a, b]].dropna()
    diff = (paired[a] - paired[b]).to_numpy(float)
    mean, low, high = bootstrap_ci(diff, n_boot=n_boot, seed=seed)
    wins = float(np.mean(diff > 0)) if diff.size else float("nan")
    return {"a": a, "b": b, "metric": metric, "mean_diff": mean, "ci_low": low, "ci_high": high, "n": int(diff.size),
            "a_wins": wins}  # fmt: skip


def oracle_gap(df: pd.DataFrame, metric: str = "dice") -> pd.DataFrame:
    """For multimask rows (``choice == "iou_head"``), per model and mode: mean reported ``metric``, mean
    oracle ``metric``, their mean ``gap`` and ``wrong_pick`` (fraction of rows where the IoU head did
    not pick the oracle's mask and lost some ``metric`` by it)."""
    _check_metric(df, metric)
    rows = df[df["choice"] == "iou_head"]
    if rows.empty:
        raise ValueError("No multimask rows (choice 'iou_head') in the table: evaluate a single-point mode.")
    rows = rows.assign(gap=rows[f"{metric}_oracle"] - rows[metric])
    rows = rows.assign(wrong_pick=rows["gap"] > 0)
    table = rows.groupby(["model", "mode"], sort=False).agg(
        reported=(metric, "mean"), oracle=(f"{metric}_oracle", "mean"), gap=("gap", "mean"),
        wrong_pick=("wrong_pick", "mean"), n=("gap", "size"),
    )  # fmt: skip
    return table


def per_modality(
    df: pd.DataFrame, metric: str = "dice", by: str | Sequence[str] = "modality", modes: Sequence[str] | None = None
) -> pd.DataFrame:
    """Mean ``metric`` per modality (rows; ``by`` may add e.g. ``"dataset"``) and mode (columns, in
    :data:`MODES` order), plus ``n_cases``. With several models, ``model`` is added to the rows."""
    keys = [by] if isinstance(by, str) else list(by)
    if "model" in df.columns and df["model"].nunique() > 1 and "model" not in keys:
        keys = ["model", *keys]
    keys = _keys(df, keys)
    _check_metric(df, metric)
    table = df.pivot_table(index=keys, columns="mode", values=metric, aggfunc="mean", sort=False)
    order = [m for m in (modes or MODES) if m in table.columns]
    table = table[order]
    table.columns.name = None
    table["n_cases"] = df.groupby(keys, sort=False)["case"].nunique()
    return table


def tidy(df: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Long format for plotting: one row per case × mode × metric with ``metric`` and ``value`` columns."""
    chosen = [m for m in metrics if m in df.columns]
    if not chosen:
        raise ValueError(f"None of {list(metrics)} is a column of the table.")
    ids = [c for c in ("model", "case", "dataset", "modality", "mode", "choice") if c in df.columns]
    return df.melt(id_vars=ids, value_vars=chosen, var_name="metric", value_name="value")


def summary_dict(
    df: pd.DataFrame, metrics: Sequence[str] = ("dice", "iou"), n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """``{model: {mode: {metric: {mean, ci_low, ci_high, n}}}}`` for results.json."""
    out: dict[str, Any] = {}
    for metric in metrics:
        table = summarize(df, by=["model", "mode"], metric=metric, n_boot=n_boot, seed=seed)
        for (model, mode), row in table.iterrows():
            out.setdefault(model, {}).setdefault(mode, {})[metric] = {
                "mean": row["mean"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "n": int(row["n"]),
            }
    return out


# --------------------------------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------------------------------

PUBLISHED_CSV = Path(__file__).with_name("data") / "published_sam_results.csv"


def published_results(level: str | None = None) -> pd.DataFrame:
    """Published zero-shot SAM results, one row per number, with its source (``utils/data/published_sam_results.csv``).

    Columns: ``source`` (short), ``citation``, ``model``, ``level`` (``summary``: a paper's headline
    mean; ``task``: one dataset), ``dataset``, ``modality`` (course style names), ``prompt`` (as the
    source names it), ``course_mode`` (the nearest course mode, empty when none), ``choice``
    (``iou_head``, ``oracle`` or empty when the source does not say), ``metric`` (``iou``/``dice``),
    ``value`` (0..1), ``n_tasks`` and ``note``. ``level`` filters.
    """
    table = pd.read_csv(PUBLISHED_CSV, keep_default_na=False, na_values=[""])
    for column in ("course_mode", "choice", "note", "modality"):
        table[column] = table[column].fillna("")
    if level is not None:
        if level not in ("summary", "task"):
            raise ValueError(f"level must be 'summary', 'task' or None; got {level!r}.")
        table = table[table["level"] == level].reset_index(drop=True)
    return table


def published_comparison(df: pd.DataFrame, modes: Sequence[str] | None = None) -> pd.DataFrame:
    """Published headline numbers beside this table's means, one row per course mode (by default the
    modes with a published number).

    Published columns are ``"<source> · <model> · <metric>"`` (``(oracle)`` added for oracle picks);
    this run adds ``"<model> · iou"``, ``"<model> · iou (oracle)"`` and ``"<model> · dice"`` per model
    in ``df``. Published IoU compares with this run's IoU, published Dice with its Dice.
    """
    published = published_results("summary")
    published = published[published["course_mode"] != ""]
    label = published["source"] + " · " + published["model"] + " · " + published["metric"]
    label = label + np.where(published["choice"] == "oracle", " (oracle)", "")
    wide = published.assign(column=label).pivot_table(
        index="course_mode", columns="column", values="value", aggfunc="first", sort=False
    )
    ours = {}
    for model, rows in df.groupby("model", sort=False):
        means = rows.groupby("mode", sort=False)[["iou", "iou_oracle", "dice"]].mean()
        ours[f"{model} · iou"] = means["iou"]
        ours[f"{model} · iou (oracle)"] = means["iou_oracle"]
        ours[f"{model} · dice"] = means["dice"]
    table = wide.join(pd.DataFrame(ours), how="outer")
    order = [m for m in (modes or MODES) if m in table.index and (modes is not None or m in wide.index)]
    table = table.loc[order]
    table.index.name = "mode"
    table.columns.name = None
    return table


# --------------------------------------------------------------------------------------------------
# Cases for the zero-shot benchmark
# --------------------------------------------------------------------------------------------------

#: MedSegBench sets of notebook 03's full mode: one per modality (licences in each Case).
MEDSEGBENCH_SETS = ("busi", "pandental", "chasedb1", "polypgen", "isic2016")


def case_dataset(case: Any) -> str:
    """A short data-source label: the MedSegBench flag, ``phantom``, or the name's prefix (``colin27``...)."""
    meta = getattr(case, "meta", {}) or {}
    if meta.get("flag"):
        return str(meta["flag"])
    if meta.get("style"):
        return "phantom"
    return str(case.name).split("_", 1)[0]


def benchmark_cases(
    mode: str,
    n_per_source: int | None = None,
    n_phantoms: int | None = None,
    seed: int = 0,
    sets: Sequence[str] = MEDSEGBENCH_SETS,
) -> list[Any]:
    """The cases notebook 03 evaluates in run mode ``mode`` (``full``, ``offline`` or ``smoke``).

    - ``full``: ``n_per_source`` (default 20) test images from each MedSegBench set in ``sets`` (256 px);
      a set that cannot be loaded is skipped with a warning (the others still run).
    - ``offline``: the real scans of :func:`utils.datasets.offline_cases` (``n_per_source`` slices per
      structure, default 2) plus ``n_phantoms`` (default 2) phantoms of each style. Without
      mricron-data, the MNI152 structures only.
    - ``smoke``: a Colin27 thalamus and putamen slice (MNI152 ventricles without mricron-data) and
      ``n_phantoms`` (default 1) ultrasound phantom.
    """
    import warnings

    from utils import datasets, phantoms

    if mode not in ("full", "offline", "smoke"):
        raise ValueError(f"mode must be 'full', 'offline' or 'smoke' (run.mode); got {mode!r}.")
    if mode == "full":
        cases = []
        for flag in sets:
            try:
                cases += datasets.medsegbench(flag, split="test", n=n_per_source or 20, seed=seed)
            except (OSError, ValueError) as problem:  # a download that fails must not sink the others
                warnings.warn(f"MedSegBench {flag} skipped: {problem}", stacklevel=2)
        if not cases:
            raise ValueError("No MedSegBench set could be loaded; run in offline mode (MODE='offline').")
        return cases
    if mode == "offline":
        try:
            real = datasets.offline_cases(n_per_structure=n_per_source or 2)
        except FileNotFoundError as missing:
            warnings.warn(f"{missing} Using MNI152 structures only.", stacklevel=2)
            real = datasets.mni152_cases(("brain", "ventricles"), n_slices=n_per_source or 2)
        count = 2 if n_phantoms is None else n_phantoms
        return real + [phantoms.make_phantom(s, seed=seed + i) for s in phantoms.STYLES for i in range(count)]
    try:
        real = datasets.colin27_cases(("thalamus", "putamen"), n_slices=1)
    except FileNotFoundError:
        real = datasets.mni152_cases(("ventricles",), n_slices=1)
    count = 1 if n_phantoms is None else n_phantoms
    return real + [phantoms.make_phantom("ultrasound", seed=seed + i) for i in range(count)]


def describe_cases(cases: Sequence[Any]) -> pd.DataFrame:
    """One row per data source: modality, number of cases, licence and source (for the data table)."""
    rows = [
        {
            "dataset": case_dataset(c),
            "modality": c.modality,
            "license": c.license,
            "source": c.source.split(";")[0],
        }
        for c in cases
    ]
    table = pd.DataFrame(rows)
    grouped = table.groupby("dataset", sort=False).agg(
        modality=("modality", lambda s: ", ".join(dict.fromkeys(s))),
        n_cases=("modality", "size"),
        license=("license", "first"),
        source=("source", "first"),
    )
    return grouped


def spread_cases(cases: Sequence[Any], k: int) -> list[Any]:
    """Up to ``k`` cases taken round-robin across data sources (and modalities), in a stable order."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ValueError(f"k must be a whole number >= 0; got {k!r}.")
    groups: dict[tuple[str, str], list[Any]] = {}
    for case in cases:
        groups.setdefault((case_dataset(case), case.modality), []).append(case)
    picked: list[Any] = []
    depth = 0
    while len(picked) < k and any(depth < len(g) for g in groups.values()):
        picked += [g[depth] for g in groups.values() if depth < len(g)][: k - len(picked)]
        depth += 1
    return picked


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def _models(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"])) if "model" in df.columns else [""]


def plot_by_mode(df: pd.DataFrame, metric: str = "dice", modes: Sequence[str] | None = None):
    """Box plot per mode with every case as a dot (one panel per model); the mean is a white diamond."""
    import matplotlib.pyplot as plt

    from utils.viz import course_palette

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


def plot_modality_heatmap(df: pd.DataFrame, metric: str = "dice", by: str | Sequence[str] = ("dataset", "modality")):
    """Mean ``metric`` per data source/modality (rows) × mode (columns), one panel per model, values written in."""
    import matplotlib.pyplot as plt

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


def plot_oracle_gap(df: pd.DataFrame, metric: str = "dice"):
    """Reported (IoU-head) vs oracle ``metric`` for every multimask row: dots below the diagonal are
    cases where the IoU head picked a worse mask than the best of SAM's three."""
    import matplotlib.pyplot as plt

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
):
    """The ``n`` worst cases of ``mode`` by ``metric``: image, ground-truth outline, the reported mask
    and the prompt (box or points). ``zoom`` crops each view to the target, mask and prompt (plus a
    margin) so that small structures stay visible. Needs ``evaluate(..., keep_masks=True)``."""
    import matplotlib.pyplot as plt

    from utils.viz import add_legend, show_case

    if "mask" not in df.columns:
        raise ValueError("The table has no masks: run evaluate(..., keep_masks=True) to draw a failure gallery.")
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
            _zoom_to(ax, case.mask | row["mask"], row["prompt_box"], row["prompt_points"])
    entries = ["ground_truth", "prediction", "box" if rows["prompt_box"].notna().any() else "positive"]
    add_legend(fig, entries)
    return fig


def _zoom_to(ax: Any, region: np.ndarray, box: Any, points: Any, margin: float = 0.35, minimum: int = 32) -> None:
    """Limit ``ax`` to the bounding box of ``region``, ``box`` and ``points``, grown by ``margin`` of its size."""
    rows, cols = np.nonzero(region)
    xs, ys = list(cols), list(rows)
    if box is not None:
        xs += [box[0], box[2]]
        ys += [box[1], box[3]]
    for x, y in points or ():
        xs.append(x)
        ys.append(y)
    height, width = region.shape
    half = max(max(xs) - min(xs), max(ys) - min(ys), minimum) * (0.5 + margin)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    ax.set_xlim(max(cx - half, -0.5), min(cx + half, width - 0.5))
    ax.set_ylim(min(cy + half, height - 0.5), max(cy - half, -0.5))

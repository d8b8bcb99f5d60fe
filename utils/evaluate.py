"""Zero-shot evaluation: cases × prompt modes → one table, with the image encoder run once per image.

``evaluate(predictor, cases, modes)`` embeds each case's image once (``predictor.set_image``), then
asks for a mask with every prompt mode, scores it against the ground truth and returns a pandas
DataFrame with one row per case × mode. Prompts are simulated from the ground-truth mask (the
"oracle annotator" protocol of the zero-shot SAM studies) with :mod:`utils.prompts`.

Modes (:data:`MODES`) and how the reported mask is picked
---------------------------------------------------------

The ``multimask`` and ``choice`` columns below are SAM's convention (a model trained to return three
masks for an ambiguous prompt). A model trained with one output mask asks for one mask in every mode
(next section).

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

Each model is asked with the output convention it was trained with (:func:`multimask_policy`), read
from its model card by the predictor's ``name`` (:func:`utils.models.trained_multimask`):
LiteMedSAM (and MedSAM) were trained with ``multimask_output=False``, so their output tokens 1-3 were
never trained; asking them for three masks would mix "this prompt is new to the model" with "these
outputs were never trained". For such a model every prompt mode asks for one mask (``choice`` is
``single``, so it has no IoU-head-vs-oracle gap), and everything mode's point grid asks for one mask per
point too. A predictor whose name is not a known model follows SAM's convention;
``trained_multimask=`` says it explicitly, and ``multimask=`` overrides the policy per mode (e.g.
``{"box": True}`` to study the IoU head on boxes).

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
``multimask`` (the policy per prompt mode), ``trained_multimask`` and ``amg_kwargs``.

Reproducibility: each prompt (:func:`utils.prompts.make_prompt`) has its random generator seeded from
``(seed, case name, mode)``, so a row does not depend on which other cases or modes were evaluated,
nor on their order.

Summaries: :func:`summarize` (mean and percentile-bootstrap 95% CI per group), :func:`compare_modes`
(paired difference between two modes), :func:`per_modality`, :func:`tidy` (long format for plots),
:func:`summary_dict` (for results.json). Elsewhere: which cases to run on, :mod:`utils.cases`; published
numbers beside this table, :mod:`utils.published`; its figures, :func:`utils.viz.plot_by_mode`,
:func:`utils.viz.plot_modality_heatmap`, :func:`utils.viz.plot_oracle_gap` and :func:`utils.viz.plot_failures`.
"""

from __future__ import annotations

import inspect
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from utils import metrics, models
from utils.cases import case_dataset
from utils.checks import whole_number
from utils.models import CachedPredictor
from utils.prompts import PROMPT_MODES, make_prompt

__all__ = [
    "AMG_DEFAULTS",
    "MODES",
    "MULTIMASK",
    "NSD_TOLERANCE_PX",
    "compare_modes",
    "evaluate",
    "multimask_policy",
    "oracle_gap",
    "per_modality",
    "summarize",
    "summary_dict",
    "tidy",
]

#: The prompt modes (utils.prompts.PROMPT_MODES: their prompts come from utils.prompts.make_prompt) and
#: "everything", SAM's automatic mask generator.
MODES: tuple[str, ...] = (*PROMPT_MODES, "everything")
#: Whether each prompt mode asks SAM for its three masks (see the module docstring for why); a model
#: trained with one output mask asks for one in every mode (:func:`multimask_policy`).
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
    trained_multimask: bool | None = None,
) -> pd.DataFrame:
    """Score ``predictor`` on every case × mode; one row each (see the module docstring for columns).

    ``predictor`` is a ``SamPredictor``-like object: ``set_image(image)`` and
    ``predict(point_coords=, point_labels=, box=, multimask_output=)`` returning ``(masks (K, H, W),
    scores (K,), logits)``; ``everything`` also needs ``predictor.model`` (a segment-anything
    ``Sam``). ``cases`` are :class:`utils.datasets.Case` objects (non-empty masks). ``set_image``
    runs once per case whatever the number of modes. ``keep_masks=True`` adds the reported mask of
    each row in a ``mask`` column (for galleries).

    ``trained_multimask``: the output convention the model was trained with (``True``: SAM's three masks
    for a single point; ``False``: one mask always). ``None`` reads it from the model card of
    ``predictor.name`` (:func:`utils.models.trained_multimask`; unknown names: ``True``).
    """
    modes = _check_modes(modes)
    cases = _check_cases(cases)
    seed = whole_number(seed, "seed")
    if trained_multimask is None:
        trained_multimask = _trained_multimask_of(predictor)
    elif not isinstance(trained_multimask, (bool, np.bool_)):
        raise ValueError(f"trained_multimask must be True, False or None (read the card); got {trained_multimask!r}.")
    trained_multimask = bool(trained_multimask)
    policy = multimask_policy(trained_multimask, multimask)
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
            answers["everything"] = _everything(generator, predictor, case, trained_multimask)
        for mode in modes:
            rows.append(_score(case, mode, answers[mode], model_name, tolerance_px, keep_masks))
    table = pd.DataFrame(rows, columns=[*COLUMNS, "mask"] if keep_masks else list(COLUMNS))
    calls_after = getattr(predictor, "encoder_calls", None)
    table.attrs.update(
        encoder_calls=None if calls_before is None else int(calls_after - calls_before),
        seed=seed,
        modes=list(modes),
        multimask={mode: policy[mode] for mode in modes if mode != "everything"},
        trained_multimask=trained_multimask,
        amg_kwargs=None if generator is None else _amg_settings(amg_kwargs),
    )
    return table


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


class _OneMaskPerPoint:
    """The predictor as the mask generator sees it, for a model trained with one output mask: the generator
    asks for three masks per grid point (``multimask_output=True`` is fixed in segment-anything 1.0);
    this asks for the one mask the model was trained to give."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor

    def predict_torch(self, *args: Any, **kwargs: Any):
        kwargs["multimask_output"] = False
        return self._predictor.predict_torch(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        if name == "_predictor":
            raise AttributeError(name)
        return getattr(self._predictor, name)


def _everything(generator: Any, predictor: Any, case: Any, trained_multimask: bool = True) -> _Answer:
    import torch

    # a CachedPredictor: setting the case's image again restores it
    generator.predictor = predictor if trained_multimask else _OneMaskPerPoint(predictor)
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
    return _Answer(masks.astype(bool), scores, choice="best_match", multimask=trained_multimask, n_points=n_grid)


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


def _trained_multimask_of(predictor: Any) -> bool:
    name = getattr(predictor, "name", "")
    return models.trained_multimask(name) if isinstance(name, str) and name else True


def multimask_policy(
    trained_multimask: bool = True, multimask: Mapping[str, bool] | None = None
) -> dict[str, bool]:
    """Per prompt mode, whether to ask for three masks: :data:`MULTIMASK` (single points only) for a model
    trained with SAM's three outputs, no mode for a model trained with one (``trained_multimask=False``);
    then the per-mode overrides in ``multimask``."""
    policy = {mode: bool(trained_multimask) and value for mode, value in MULTIMASK.items()}
    for mode, value in dict(multimask or {}).items():
        if mode not in PROMPT_MODES:
            raise ValueError(f"multimask sets {mode!r}, which is not a prompt mode ({', '.join(PROMPT_MODES)}).")
        policy[mode] = bool(value)
    return policy


# --------------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------------


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
        mean, low, high = metrics.bootstrap_ci(group[metric].to_numpy(float), n_boot=n_boot, seed=group_seed)
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
    mean, low, high = metrics.bootstrap_ci(diff, n_boot=n_boot, seed=seed)
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

"""A matched comparison of adaptation strategies (notebook 05): one split, one budget, five strategies.

Matched means: every strategy of :mod:`utils.peft` starts from a fresh copy of the same pretrained
model and trains on the same :class:`Split` for the same number of steps, with the same seed, so it
sees the same cases in the same order with the same simulated prompts (:func:`utils.training.train`
draws both from the seed alone). Only the learning rate may differ per strategy: methods that train
a few freshly initialised parameters need larger steps than methods that nudge pretrained weights
(MSA, SAMed and MedSAM each tuned their own). Everything is measured by :func:`utils.training.train`
and scored on the held-out cases by :func:`utils.evaluate.evaluate`.

Splits (:data:`SPLITS`, built by :func:`make_split`) say how they were made and what the training
cases share with the test cases, because every split of a single scan leaks something:

==========  =================================================================  =====================
name        train / test                                                       data
==========  =================================================================  =====================
ventricles  MNI152 lateral ventricles: slices from the lower part / the upper   real (offline)
            part of the ventricles, a gap of slices between them
caudate     Colin27 left caudate (AAL): lower slab / upper slab                  real (offline)
microscopy  touching-nuclei phantoms, all nuclei as one mask: seeds / other     phantom (offline)
            seeds
fundus      fundus phantoms, the vessel tree as the mask: seeds / other seeds   phantom (offline)
busi        MedSegBench BUSI (breast ultrasound, CC0): its train / test split   real (full mode)
==========  =================================================================  =====================
"""

from __future__ import annotations

import contextlib
import gc
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from utils import peft
from utils.checks import whole_number
from utils.metrics import bootstrap_ci
from utils.models import load_sam
from utils.training import TrainResult, train

__all__ = [
    "SPLITS",
    "Comparison",
    "Split",
    "architecture",
    "compare_strategies",
    "comparison_table",
    "failed_strategies",
    "gallery_predictions",
    "make_split",
    "plot_gallery",
    "read_comparison",
    "roundtrip_check",
    "strategy_parameters",
    "strategy_record",
]

# Test slabs start this many percentiles above the training slab: a gap of a few slices, so no test
# slice is the direct neighbour of a training slice.
_TRAIN_SLAB = (5.0, 45.0)
_TEST_SLAB = (60.0, 95.0)


@dataclass(frozen=True)
class Split:
    """Training and held-out cases, with how the split was made and what they share."""

    name: str
    train: list
    test: list
    how: str
    leaks: str

    def describe(self) -> pd.DataFrame:
        """One row per case: its part (train/test), name and mask area."""
        rows = [{"part": part, "case": c.name, "mask_px": int(np.count_nonzero(c.mask))}
                for part, cases in (("train", self.train), ("test", self.test)) for c in cases]  # fmt: skip
        return pd.DataFrame(rows)


def _slab_split(name: str, loader: Callable[..., list], structure: str, what: str, n_train: int, n_test: int) -> Split:
    train_cases = loader([structure], n_slices=n_train, percentiles=_TRAIN_SLAB)
    test_cases = loader([structure], n_slices=n_test, percentiles=_TEST_SLAB)
    first, last = (c.meta["slice"] for c in (train_cases[-1], test_cases[0]))
    return Split(
        name,
        train_cases,
        test_cases,
        how=(
            f"{what}, axial slices. Train: {len(train_cases)} slices from the {_TRAIN_SLAB[0]:.0f}th-"
            f"{_TRAIN_SLAB[1]:.0f}th percentile of the slices that contain it (the lower part); test: "
            f"{len(test_cases)} slices from the {_TEST_SLAB[0]:.0f}th-{_TEST_SLAB[1]:.0f}th (the upper part). "
            f"The nearest train and test slices are {last - first} mm apart."
        ),
        leaks=(
            "Everything but the slices: one brain, one scanner, one contrast and one structure, whose shape "
            "changes slowly from slice to slice. It measures adaptation to a task on one scan, not "
            "generalisation to new patients."
        ),
    )


def _phantom_split(name: str, style: str, what: str, n_train: int, n_test: int) -> Split:
    from utils.phantoms import make_phantom

    return Split(
        name,
        [make_phantom(style, seed=k) for k in range(n_train)],
        [make_phantom(style, seed=1000 + k) for k in range(n_test)],
        how=f"{what}. Train: seeds 0-{n_train - 1}; test: seeds 1000-{999 + n_test}.",
        leaks=(
            "No pixel, but the generator: train and test phantoms come from the same program with the same "
            "knobs, so the test set is as close to the training set as data can be. A best case."
        ),
    )


def _ventricles(n_train: int, n_test: int, seed: int) -> Split:
    from utils.datasets import mni152_cases

    what = "MNI152 template, lateral ventricles (a mask derived from its tissue maps)"
    return _slab_split("ventricles", mni152_cases, "ventricles", what, n_train, n_test)


def _caudate(n_train: int, n_test: int, seed: int) -> Split:
    from utils.datasets import colin27_cases

    return _slab_split("caudate", colin27_cases, "caudate", "Colin27, left caudate (AAL atlas)", n_train, n_test)


def _microscopy(n_train: int, n_test: int, seed: int) -> Split:
    what = "Microscopy phantoms: touching nuclei, every nucleus in one mask (one box around them all)"
    return _phantom_split("microscopy", "microscopy", what, n_train, n_test)


def _fundus(n_train: int, n_test: int, seed: int) -> Split:
    what = "Fundus phantoms: the whole vessel tree as one mask (thin, branching)"
    return _phantom_split("fundus", "fundus", what, n_train, n_test)


def _busi(n_train: int, n_test: int, seed: int) -> Split:
    from utils.datasets import medsegbench

    return Split(
        "busi",
        medsegbench("busi", split="train", n=n_train, seed=seed),
        medsegbench("busi", split="test", n=n_test, seed=seed),
        how=f"MedSegBench BUSI (breast ultrasound, CC0): {n_train} images of its train split, {n_test} of its test.",
        leaks="The dataset's own split; BUSI does not publish patient ids, so one patient may appear in both.",
    )


#: name -> builder(n_train, n_test, seed) -> Split.
SPLITS: dict[str, Callable[[int, int, int], Split]] = {
    "ventricles": _ventricles,
    "caudate": _caudate,
    "microscopy": _microscopy,
    "fundus": _fundus,
    "busi": _busi,
}


def make_split(name: str, n_train: int = 8, n_test: int = 5, seed: int = 0) -> Split:
    """Build the split ``name`` (a :data:`SPLITS` key) with up to ``n_train`` / ``n_test`` cases."""
    if name not in SPLITS:
        raise ValueError(f"Unknown split {name!r}; choose one of {', '.join(SPLITS)}.")
    return SPLITS[name](whole_number(n_train, "n_train", minimum=1), whole_number(n_test, "n_test", minimum=1), seed)


def _learning_rate(lr: float | Mapping[str, float], strategy: str) -> float:
    if isinstance(lr, Mapping):
        if strategy not in lr:
            raise ValueError(f"lr has no entry for {strategy!r}; give one per strategy, e.g. {{{strategy!r}: 1e-4}}.")
        return float(lr[strategy])
    return float(lr)


def _check_strategies(strategies: Sequence[str]) -> list[str]:
    strategies = [strategies] if isinstance(strategies, str) else list(strategies)
    unknown = [s for s in strategies if s not in peft.STRATEGIES]
    if unknown or not strategies:
        raise ValueError(f"Unknown or no strategies {unknown}; choose from {', '.join(peft.STRATEGIES)}.")
    return strategies


@dataclass
class Comparison:
    """What :func:`compare_strategies` produced.

    A strategy that ran out of GPU memory has no result, masks or model, only an entry in ``failed``
    (a record whose ``status`` says so, e.g. ``"out of memory at batch 2"``).
    """

    results: dict[str, TrainResult]  # per trained strategy: history, Dice before/after, cost
    masks: dict[str, list[np.ndarray]]  # per model ("zero-shot" first): a mask per gallery case
    models: dict[str, Any]  # the trained models of the strategies named in ``keep``
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)  # per strategy that did not finish: its record
    strategies: list[str] = field(default_factory=list)  # every strategy asked for, in order

    def records(self, n_boot: int = 2000, seed: int = 0) -> dict[str, dict[str, Any]]:
        """One record per strategy, in the order asked: :func:`strategy_record`, or the failure's record."""
        names = self.strategies or [*self.results, *self.failed]
        return {name: strategy_record(self.results[name], n_boot=n_boot, seed=seed) if name in self.results
                else dict(self.failed[name]) for name in names}  # fmt: skip


def _out_of_memory_record(lr: float, steps: int, options: Mapping[str, Any]) -> dict[str, Any]:
    """The record of a strategy whose training or gallery ran out of GPU memory."""
    defaults = inspect.signature(train).parameters  # the batch train() used when none was given
    batch = options.get("batch_size", defaults["batch_size"].default)
    accumulate = options.get("accumulate", defaults["accumulate"].default)
    status = f"out of memory at batch {batch}" + (f", accumulating {accumulate}" if accumulate > 1 else "")
    return {"status": status, "batch_size": batch, "accumulate": accumulate, "lr": lr, "steps": steps}


def _free_memory() -> None:
    gc.collect()  # the next model reuses this memory
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # hand the failed run's cached blocks back, so the next run can grow


def compare_strategies(
    model: str,
    split: Split,
    strategies: Sequence[str] = tuple(peft.STRATEGIES),
    *,
    steps: int,
    lr: float | Mapping[str, float],
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    gallery: Sequence[Any] = (),
    keep: Sequence[str] = (),
    **train_options: Any,
) -> Comparison:
    """Train a fresh ``model`` (a :data:`utils.models.REGISTRY` name) with each strategy on ``split``.

    Every run gets the same split, ``steps``, ``seed`` and ``train_options`` (``batch_size``,
    ``eval_every``, ``prompt``, ...: see :func:`utils.training.train`); ``lr`` is one number or one per
    strategy. The returned :class:`Comparison` holds a :class:`~utils.training.TrainResult` per
    strategy, the box-prompted masks each trained model predicts for the ``gallery`` cases
    (``"zero-shot"``: the pretrained model's) and the trained models named in ``keep``; the others
    are dropped after their run, so memory holds one model at a time.

    A strategy that raises ``torch.cuda.OutOfMemoryError`` (in training or in its gallery predictions)
    is recorded in ``Comparison.failed`` (status ``"out of memory at batch N"``), its memory is freed
    and the next strategy runs; any other error propagates.
    """
    from tqdm.auto import tqdm

    strategies = _check_strategies(strategies)
    rates = {s: _learning_rate(lr, s) for s in strategies}  # checked before any training starts
    masks = {"zero-shot": gallery_predictions(load_sam(model, device=device), gallery)} if gallery else {}
    out = Comparison(results={}, masks=masks, models={}, strategies=strategies)
    for strategy in tqdm(strategies, desc="strategies", unit="strategy", disable=not progress):
        sam = load_sam(model, device=device)
        try:
            result = train(
                sam, split.train, split.test, strategy_name=strategy, steps=steps, lr=rates[strategy], seed=seed,
                progress=progress, **train_options,
            )  # fmt: skip
            predicted = gallery_predictions(sam, gallery) if gallery else None
        except torch.cuda.OutOfMemoryError:
            # Only the record is kept: leaving this block drops the traceback and with it the failed
            # run's activations, gradients and optimiser state.
            out.failed[strategy] = _out_of_memory_record(rates[strategy], steps, train_options)
            if progress:
                print(f"{strategy}: {out.failed[strategy]['status']}; going on with the next strategy.")
        else:
            out.results[strategy] = result
            if predicted is not None:
                out.masks[strategy] = predicted
            if strategy in keep:
                out.models[strategy] = sam
        del sam
        _free_memory()
    return out


def failed_strategies(records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Strategy -> status for every record that did not train (e.g. ``"out of memory at batch 2"``)."""
    return {s: r["status"] for s, r in records.items() if r.get("status", "ok") != "ok"}


def strategy_parameters(model: str, strategies: Sequence[str] = tuple(peft.STRATEGIES)) -> pd.DataFrame:
    """Trainable parameters per component under each strategy (default options), without any weights.

    Models with a downloadable checkpoint (SAM ViT-B/L/H) are built on the ``meta`` device: shapes
    only, so this costs no download and no memory.
    """
    import torch

    from utils.models import model_spec

    strategies = _check_strategies(strategies)
    meta = model_spec(model).url is not None
    rows = {}
    for strategy in strategies:
        with torch.device("meta") if meta else contextlib.nullcontext():
            sam = peft.STRATEGIES[strategy](architecture(model))
        table = peft.parameter_table(sam)
        rows[strategy] = {**table["trainable"].to_dict(), "share_%": 100 * table.loc["all", "share"]}
    return pd.DataFrame(rows).T


def _box_answers(sam: Any, cases: Sequence[Any]):
    """(mask, low-res logits) that ``sam`` gives each case for its tight ground-truth box (one output)."""
    from utils.models import CoursePredictor
    from utils.prompts import box_from_mask

    predictor = CoursePredictor(sam.eval())
    for case in cases:
        predictor.set_image(case.image)
        masks, _, low_res = predictor.predict(box=box_from_mask(case.mask), multimask_output=False)
        yield masks[0], np.asarray(low_res, dtype=np.float64)


def gallery_predictions(sam: Any, cases: Sequence[Any]) -> list[np.ndarray]:
    """The mask ``sam`` predicts for each case from its tight ground-truth box (single-mask output)."""
    return [mask for mask, _ in _box_answers(sam, cases)]


def _paired(result: TrainResult) -> tuple[np.ndarray, np.ndarray]:
    if result.val_before is None or result.val_after is None:
        raise ValueError(f"The {result.strategy!r} run has no held-out cases; give train() val_cases.")
    mode = result.val_before["mode"].iloc[0]
    before = result.val_before[result.val_before["mode"] == mode].set_index("case")["dice"]
    after = result.val_after[result.val_after["mode"] == mode].set_index("case")["dice"]
    return before.to_numpy(float), after.loc[before.index].to_numpy(float)


def strategy_record(result: TrainResult, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """What notebook 05 saves per strategy: parameters, cost and held-out Dice with 95% bootstrap CIs.

    ``gain`` is the paired per-case difference (after - before) on the same held-out cases; its CI
    excluding 0 is the notebook's test for "training helped".
    """
    before, after = _paired(result)
    record: dict[str, Any] = {
        "status": "ok",
        "trainable_params": int(result.trainable),
        "total_params": int(result.total),
        "trainable_percent": 100 * result.share,
        "peak_mem_mb": result.peak_mem_mb,
        "extra_mem_mb": result.extra_mem_mb,
        "memory_metric": result.memory_metric,
        "step_time_s": result.step_time_s,
        "steps": result.steps,
        "lr": result.options["lr"],
        "n_test": int(before.size),
    }
    for name, values in (("dice_before", before), ("dice_after", after), ("gain", after - before)):
        mean, low, high = bootstrap_ci(values, n_boot=n_boot, seed=seed)
        record[name], record[f"{name}_ci"] = float(mean), [float(low), float(high)]
    record["improved"] = bool(record["gain_ci"][0] > 0)
    return record


def comparison_table(records: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """The notebook's table: one row per strategy, CIs written as ``low-high``.

    When a strategy did not train (it ran out of memory), a ``status`` column says so on its row and
    its other cells read ``-``.
    """
    failed = failed_strategies(records)
    rows = {}
    for strategy, r in records.items():
        if strategy in failed:
            rows[strategy] = {"lr": r["lr"]}
            continue
        rows[strategy] = {
            "trainable": f"{r['trainable_params']:,} ({r['trainable_percent']:.2f}%)",
            "lr": r["lr"],
            "step time (s)": round(r["step_time_s"], 3),
            f"peak memory (MB, {r['memory_metric']})": round(r["peak_mem_mb"]),
            "added memory (MB)": round(r["extra_mem_mb"]),
            "Dice before": round(r["dice_before"], 3),
            "Dice after": round(r["dice_after"], 3),
            "Dice after, 95% CI": "{:.2f}-{:.2f}".format(*r["dice_after_ci"]),
            "gain, 95% CI": "{:+.2f} ({:+.2f} to {:+.2f})".format(r["gain"], *r["gain_ci"]),
        }
    if not failed:
        return pd.DataFrame(rows).T
    trained = [row for s, row in rows.items() if s not in failed]
    table = pd.DataFrame(rows).T.reindex(columns=list(trained[0] if trained else ["lr"]))  # the trained rows' order
    table["status"] = [failed.get(s, "ok") for s in table.index]
    return table.fillna("-")


def plot_gallery(cases: Sequence[Any], masks: Mapping[str, Sequence[np.ndarray]], size: float = 2.2):
    """A grid: one row per case, one column per model (zero-shot first), mask over image, GT outline,
    zoomed to the ground truth's neighbourhood."""
    import matplotlib.pyplot as plt

    from utils.metrics import dice
    from utils.viz import show_mask, zoom_to

    columns = list(masks)
    fig, axes = plt.subplots(
        len(cases), len(columns), figsize=(size * len(columns), size * len(cases)), squeeze=False, layout="constrained"
    )
    for row, case in enumerate(cases):
        for col, label in enumerate(columns):
            ax = axes[row][col]
            ax.imshow(case.image, cmap="gray")
            show_mask(ax, masks[label][row])
            ax.contour(case.mask, levels=[0.5], colors="gold", linewidths=0.8)
            ax.set_title(f"{label}\nDice {dice(masks[label][row], case.mask):.2f}", fontsize=8)
            ax.set(xticks=[], yticks=[])
            zoom_to(ax, np.asarray(case.mask, dtype=bool), margin=0.6, minimum=48)
    return fig


def architecture(model: str) -> Any:
    """``model``'s architecture without pretrained weights, for counting (meta device if it downloads)."""
    import torch

    from utils.models import model_spec

    spec = model_spec(model)
    with torch.device("meta") if spec.url is not None else contextlib.nullcontext():
        return spec.builder(None)


def _box_logits(sam: Any, case: Any) -> np.ndarray:
    ((_, logits),) = _box_answers(sam, [case])
    return logits


def roundtrip_check(trained: Any, model: str, path: Any, case: Any) -> dict[str, Any]:
    """Ship an adapted model the small way and prove nothing was lost.

    Saves only ``trained``'s trainable tensors (:func:`utils.peft.save_trainable`), loads them into a
    fresh pretrained ``model`` (:func:`utils.peft.load_trainable`) and, for LoRA, also merges the
    update into plain Linear layers (:func:`utils.peft.merge_lora`). Returns the file size and the
    largest difference of the box-prompted mask logits on ``case`` against ``trained``.
    """
    import copy
    from pathlib import Path

    path = Path(path)
    peft.save_trainable(trained, path)
    device = next(trained.parameters()).device
    reloaded = peft.load_trainable(load_sam(model, device=device), path)
    reference = _box_logits(trained, case)
    report = {
        "strategy": peft.adaptation(trained)["strategy"],
        "file_kb": path.stat().st_size / 1024,
        "saved_values": peft.trainable_parameters(trained)[0],
        "reloaded_max_abs_diff": float(np.abs(_box_logits(reloaded, case) - reference).max()),
    }
    if report["strategy"] == "lora":
        merged = peft.merge_lora(copy.deepcopy(reloaded))
        report["merged_max_abs_diff"] = float(np.abs(_box_logits(merged, case) - reference).max())
    return report


def read_comparison(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The claims notebook 05's prose makes, computed from the records (so a test can check them).

    ``best``: the strategy with the highest Dice after training; ``improved`` / ``not_improved``:
    strategies whose paired gain CI lies above 0 / does not; memory and step time relative to
    ``full`` when it trained; ``failed``: strategy -> status of those that did not train (out of
    memory), which are neither best nor (not) improved; ``sentences``: the same, in words.
    """
    if not records:
        raise ValueError("No records: run compare_strategies first.")
    failed = failed_strategies(records)
    trained = {s: r for s, r in records.items() if s not in failed}
    best = max(trained, key=lambda s: trained[s]["dice_after"]) if trained else None
    improved = [s for s, r in trained.items() if r["improved"]]
    claims: dict[str, Any] = {
        "best": best,
        "zero_shot_dice": float(np.mean([r["dice_before"] for r in trained.values()])) if trained else None,
        "improved": improved,
        "not_improved": [s for s in trained if s not in improved],
        "any_improved": bool(improved),
        "failed": failed,
    }
    sentences = []
    if best is not None:
        best_record = trained[best]
        sentences.append(
            f"Zero-shot Dice on the held-out cases: {claims['zero_shot_dice']:.2f}. Best after training: {best} "
            f"with {best_record['dice_after']:.2f} (gain {best_record['gain']:+.2f}, 95% CI "
            f"{best_record['gain_ci'][0]:+.2f} to {best_record['gain_ci'][1]:+.2f})."
        )
    if improved:
        sentences.append(f"Gain CI above zero (training helped beyond the noise): {', '.join(improved)}.")
    if claims["not_improved"]:
        sentences.append(
            f"No gain beyond the noise with this budget: {', '.join(claims['not_improved'])} (CI includes 0 or "
            "lies below it)."
        )
    if failed:
        stopped = "; ".join(f"{s} ({status})" for s, status in failed.items())
        sentences.append(f"Not trained, so left out of the comparison: {stopped}.")
    if "full" in trained:
        full = trained["full"]
        claims["memory_vs_full"] = {s: r["extra_mem_mb"] / full["extra_mem_mb"] if full["extra_mem_mb"] > 0 else None
                                    for s, r in trained.items()}  # fmt: skip
        claims["step_time_vs_full"] = {s: r["step_time_s"] / full["step_time_s"] for s, r in trained.items()}
        cheaper = [f"{s} {claims['step_time_vs_full'][s]:.2f}x" for s in trained if s != "full"]
        if cheaper:
            sentences.append(f"Step time relative to full fine-tuning: {', '.join(cheaper)}.")
        lighter = [f"{s} {v:.2f}x" for s, v in claims["memory_vs_full"].items() if s != "full" and v is not None]
        if lighter:
            sentences.append(f"Memory added by training, relative to full fine-tuning: {', '.join(lighter)}.")
    claims["sentences"] = sentences
    return claims

"""A matched comparison of adaptation strategies (notebook 05): one split, one budget, five strategies.

Matched means: every strategy of :mod:`utils.peft` starts from a fresh copy of the same pretrained
model and trains on the same :class:`Split` for the same number of steps, with the same seed, so it
sees the same cases in the same order with the same simulated prompts (:func:`utils.training.train`
draws both from the seed alone). Only the learning rate may differ per strategy: methods that train
a few freshly initialised parameters need larger steps than methods that nudge pretrained weights
(MSA, SAMed and MedSAM each tuned their own), so :func:`search_learning_rates` picks each strategy's
from a few candidates on the training cases alone, with the same budget for every strategy.
Everything is measured by :func:`utils.training.train` and scored on the held-out cases by
:func:`utils.evaluate.evaluate`. ``last_blocks=K`` confines every encoder strategy to the encoder's
last K blocks, so the frozen blocks before them run once per image (frozen-feature caching).
:func:`gain_shares` says what share of full fine-tuning's gain each strategy recovers (paired
bootstrap CI) and :func:`plateau` whether each learning curve has flattened.

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
from utils.training import HeadCache, TrainResult, cached_encoder_head, train

__all__ = [
    "SPLITS",
    "LRSearch",
    "Comparison",
    "Split",
    "architecture",
    "compare_strategies",
    "comparison_table",
    "failed_strategies",
    "fold_scores",
    "gain_shares",
    "gallery_predictions",
    "make_split",
    "plateau",
    "plot_gallery",
    "read_comparison",
    "roundtrip_check",
    "search_learning_rates",
    "share_sentence",
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
    last_blocks: int | None = None,
    head_cache: HeadCache | None = None,
    **train_options: Any,
) -> Comparison:
    """Train a fresh ``model`` (a :data:`utils.models.REGISTRY` name) with each strategy on ``split``.

    Every run gets the same split, ``steps``, ``seed`` and ``train_options`` (``batch_size``,
    ``eval_every``, ``prompt``, ...: see :func:`utils.training.train`); ``lr`` is one number or one per
    strategy. The returned :class:`Comparison` holds a :class:`~utils.training.TrainResult` per
    strategy, the box-prompted masks each trained model predicts for the ``gallery`` cases
    (``"zero-shot"``: the pretrained model's) and the trained models named in ``keep``; the others
    are dropped after their run, so memory holds one model at a time.

    ``last_blocks=K`` puts every encoder strategy's trainable parameters in the encoder's last K
    blocks (``full``: from those blocks on, plus prompt encoder and decoder; ``decoder_only`` is
    unchanged), so training computes the frozen blocks before them once per image
    (:func:`utils.training.cached_encoder_head`), once for all strategies (``head_cache``: a
    :class:`~utils.training.HeadCache` to share with other runs). ``None``: the whole encoder, every step.

    A strategy that raises ``torch.cuda.OutOfMemoryError`` (in training or in its gallery predictions)
    is recorded in ``Comparison.failed`` (status ``"out of memory at batch N"``), its memory is freed
    and the next strategy runs; any other error propagates.
    """
    from tqdm.auto import tqdm

    strategies = _check_strategies(strategies)
    rates = {s: _learning_rate(lr, s) for s in strategies}  # checked before any training starts
    head_cache = HeadCache(last_blocks) if head_cache is None else head_cache
    masks = {"zero-shot": _gallery(load_sam(model, device=device), gallery, last_blocks, head_cache)} if gallery else {}
    out = Comparison(results={}, masks=masks, models={}, strategies=strategies)
    for strategy in tqdm(strategies, desc="strategies", unit="strategy", disable=not progress):
        sam = load_sam(model, device=device)
        try:
            result = train(
                sam, split.train, split.test, strategy_name=strategy, steps=steps, lr=rates[strategy], seed=seed,
                progress=progress, strategy_options=_placement(strategy, last_blocks), head_cache=head_cache,
                **train_options,
            )  # fmt: skip
            predicted = _gallery(sam, gallery, last_blocks, head_cache) if gallery else None
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


def _gallery(sam: Any, cases: Sequence[Any], last_blocks: int | None, head_cache: HeadCache) -> list[np.ndarray]:
    """:func:`gallery_predictions`, reusing the frozen head's cached activations when the blocks are placed last."""
    if last_blocks is None:
        return gallery_predictions(sam, cases)
    with cached_encoder_head(sam, last_blocks, head_cache, inference=True):  # the pretrained head in every strategy
        return gallery_predictions(sam, cases)


def _placement(strategy: str, last_blocks: int | None) -> dict[str, int]:
    """Strategy options that put the trainable encoder parameters in the last K blocks (none for decoder_only)."""
    return {} if last_blocks is None or strategy == "decoder_only" else {"last_blocks": int(last_blocks)}


@dataclass
class LRSearch:
    """What :func:`search_learning_rates` tried: each candidate's validation loss and Dice, and the pick."""

    candidates: dict[str, list[float]]
    val_dice: dict[str, list[float]]  # per strategy, one per candidate (mean over the fold's validation cases)
    chosen: dict[str, float]
    steps: int
    n_fit: int
    n_val: int
    val_loss: dict[str, list[float]] = field(default_factory=dict)  # what decides: the lowest wins

    def table(self) -> pd.DataFrame:
        """One row per strategy and candidate: lr, validation loss and Dice, whether it was chosen."""
        rows = [{"strategy": s, "lr": lr, "val_loss": loss, "val_dice": dice, "chosen": lr == self.chosen[s]}
                for s in self.candidates
                for lr, loss, dice in zip(self.candidates[s], self.val_loss[s], self.val_dice[s])]  # fmt: skip
        return pd.DataFrame(rows)

    def record(self) -> dict[str, Any]:
        """Plain values for results.json."""
        return {"candidates": self.candidates, "val_dice": self.val_dice, "val_loss": self.val_loss,
                "chosen": self.chosen, "steps": self.steps, "n_fit": self.n_fit, "n_val": self.n_val}  # fmt: skip


def search_learning_rates(
    model: str,
    split: Split,
    candidates: Mapping[str, Sequence[float]],
    *,
    steps: int,
    n_val: int | None = None,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    last_blocks: int | None = None,
    head_cache: HeadCache | None = None,
    **train_options: Any,
) -> LRSearch:
    """Pick each strategy's learning rate on the TRAINING cases only: fit on some, score on the rest.

    The training cases are cut into a fit fold (the first ones) and a validation fold (the last
    ``n_val``, default a quarter, at least 1); the held-out test cases are never touched. Every
    candidate of every strategy trains a fresh model for the same ``steps`` with the same seed and
    options (the same search budget for every strategy, when each has as many candidates); the
    candidate with the lowest mean validation loss after the last step wins (the training loss,
    Dice + BCE, on the validation fold's tight-box logits: continuous, so a short search that leaves
    every candidate at Dice 0 still ranks them), the first listed on a tie. Its box-prompt Dice is
    recorded beside it. A candidate that runs out of GPU memory scores NaN and cannot win.
    ``head_cache`` (see :func:`compare_strategies`) shares the frozen head's
    activations with later runs.
    """
    strategies = _check_strategies(list(candidates))
    grids = {s: [float(lr) for lr in candidates[s]] for s in strategies}
    if any(not grid or min(grid) <= 0 for grid in grids.values()):
        raise ValueError(f"Every strategy needs at least one positive candidate learning rate; got {grids}.")
    n_val = max(1, len(split.train) // 4) if n_val is None else whole_number(n_val, "n_val", minimum=1)
    if n_val >= len(split.train):
        raise ValueError(f"n_val={n_val} leaves no training case to fit on ({len(split.train)} training cases).")
    fit, val = split.train[:-n_val], split.train[-n_val:]
    options = {**train_options, "eval_every": None}  # only the last step's score decides
    head_cache = HeadCache(last_blocks) if head_cache is None else head_cache
    dices: dict[str, list[float]] = {}
    losses: dict[str, list[float]] = {}
    for strategy in strategies:
        dices[strategy], losses[strategy] = [], []
        for lr in grids[strategy]:
            sam = load_sam(model, device=device)
            try:
                train(sam, fit, [], strategy_name=strategy, steps=steps, lr=lr, seed=seed, progress=False,
                      strategy_options=_placement(strategy, last_blocks), head_cache=head_cache,
                      **options)  # fmt: skip
                dice, loss = fold_scores(sam, val, seed=seed, last_blocks=last_blocks, head_cache=head_cache)
            except torch.cuda.OutOfMemoryError:  # scored as missing; the comparison will say so for the strategy
                dice = loss = float("nan")
            dices[strategy].append(dice)
            losses[strategy].append(loss)
            if progress:
                print(f"  {strategy:>12}  lr {lr:.0e}: validation loss {loss:.3f}, Dice {dice:.3f}")
            del sam
            _free_memory()
    chosen = {s: grids[s][_lowest(losses[s])] for s in strategies}
    return LRSearch(grids, dices, chosen, steps, len(fit), len(val), val_loss=losses)


def fold_scores(
    sam: Any, cases: Sequence[Any], seed: int = 0, last_blocks: int | None = None, head_cache: HeadCache | None = None
) -> tuple[float, float]:
    """(mean Dice, mean loss) of ``sam`` on ``cases`` for :func:`utils.evaluate.evaluate`'s box prompt.

    The loss is the training loss (:func:`utils.training.make_loss`) of the one-output low-resolution
    logits against :func:`utils.training.mask_target`. With ``last_blocks`` the frozen head's cached
    activations are reused (``head_cache``), as in :func:`compare_strategies`.
    """
    from utils.metrics import dice
    from utils.models import CoursePredictor
    from utils.prompts import make_prompt
    from utils.training import make_loss, mask_target

    cases = list(cases or [])
    if not cases or not all(hasattr(c, "image") and hasattr(c, "mask") for c in cases):
        raise ValueError(f"fold_scores needs a non-empty list of Case objects (the validation fold); got {cases!r}.")
    loss_fn, dices, losses = make_loss(), [], []
    cache = head_cache if head_cache is not None else HeadCache(last_blocks)
    placed = contextlib.nullcontext() if last_blocks is None else cached_encoder_head(
        sam, last_blocks, cache, inference=True)  # fmt: skip
    with placed, torch.no_grad():
        predictor = CoursePredictor(sam.eval())
        for case in cases:
            predictor.set_image(case.image)
            masks, _, low_res = predictor.predict(**make_prompt(case, "box", seed), multimask_output=False)
            logits = torch.as_tensor(np.asarray(low_res), dtype=torch.float32)[None]
            target = mask_target(case, predictor, loss_size=logits.shape[-1]).to(logits.device)
            dices.append(dice(masks[0], case.mask))
            losses.append(float(loss_fn(logits, target)))
    return float(np.mean(dices)), float(np.mean(losses))


def _lowest(scores: Sequence[float]) -> int:
    """Index of the lowest score, the first on a tie; NaN (out of memory) never wins unless all are NaN."""
    values = np.asarray(scores, dtype=float)
    return int(np.nanargmin(values)) if np.isfinite(values).any() else 0


def _per_case(result: TrainResult, table: pd.DataFrame) -> pd.Series:
    mode = table["mode"].iloc[0]
    return table[table["mode"] == mode].set_index("case")["dice"]


def gain_shares(
    results: Mapping[str, TrainResult], reference: str = "full", n_boot: int = 2000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Each strategy's share of ``reference``'s gain, ``(after_s - before) / (after_ref - before)``, with a CI.

    Means over the same held-out cases; the 95% CI comes from a paired bootstrap: the cases are
    resampled together (one draw serves before, the strategy and the reference), and resamples where
    the reference gained nothing (denominator <= 0) are dropped and counted (``dropped``). Every run
    must start from the same model (the same per-case Dice before training).
    """
    if reference not in results:
        raise ValueError(f"No {reference!r} run to measure shares against; train it in the comparison.")
    ref = results[reference]
    before = _per_case(ref, ref.val_before)
    ref_after = _per_case(ref, ref.val_after).loc[before.index].to_numpy(float)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(before), size=(int(n_boot), len(before)))
    base = before.to_numpy(float)
    denominator = ref_after[draws].mean(1) - base[draws].mean(1)
    kept = denominator > 0
    out = {}
    for strategy, result in results.items():
        if not np.allclose(_per_case(result, result.val_before).loc[before.index], before):
            raise ValueError(f"{strategy!r} did not start from the same held-out Dice as {reference!r}.")
        after = _per_case(result, result.val_after).loc[before.index].to_numpy(float)
        gain, ref_gain = after.mean() - base.mean(), ref_after.mean() - base.mean()
        ratios = (after[draws].mean(1) - base[draws].mean(1))[kept] / denominator[kept]
        low, high = np.quantile(ratios, [0.025, 0.975]) if ratios.size else (float("nan"),) * 2
        out[strategy] = {"share": float(gain / ref_gain) if ref_gain > 0 else float("nan"),
                         "share_ci": [float(low), float(high)], "gain": float(gain), "reference_gain": float(ref_gain),
                         "dropped": int((~kept).sum()), "n_boot": int(n_boot)}  # fmt: skip
    return out


def share_sentence(shares: Mapping[str, Mapping[str, Any]], reference: str = "full", steps: int | None = None) -> str:
    """The sentence notebook 05 prints: what share of ``reference``'s gain each strategy recovered."""
    if not shares or reference not in shares:
        return f"No share of {reference} fine-tuning's gain to report: it did not train."
    ref_gain = shares[reference]["reference_gain"]
    if not ref_gain > 0:
        return f"{reference} fine-tuning did not gain on the held-out cases ({ref_gain:+.3f}), so shares are undefined."
    parts = [f"{s} {100 * r['share']:.0f}% [95% CI {100 * r['share_ci'][0]:.0f} to {100 * r['share_ci'][1]:.0f}%]"
             for s, r in shares.items() if s != reference]  # fmt: skip
    budget = f" at {steps} steps each" if steps else ""
    return (f"Share of {reference} fine-tuning's held-out Dice gain ({ref_gain:+.3f}){budget}: " + "; ".join(parts) +
            ".")  # fmt: skip


def plateau(result: TrainResult, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Did held-out Dice stop moving? The paired change over the last quarter of training, against the CI.

    ``change``: mean per-case Dice at the last step minus at the last evaluation at or before 3/4 of
    the steps (so the interval covers at least the last quarter), paired, with a bootstrap
    ``change_ci``; ``half_width``: half the 95% CI of the final Dice; ``flat``:
    ``|change| < half_width`` (the curve moved less than its own uncertainty).
    """
    steps = sorted(result.val_tables)
    if len(steps) < 2:
        raise ValueError(f"The {result.strategy!r} run was evaluated {len(steps)} time(s); set eval_every.")
    last = steps[-1]
    start = max(s for s in steps[:-1] if s <= 0.75 * last)  # step 0 always qualifies
    final = _per_case(result, result.val_tables[last])
    earlier = _per_case(result, result.val_tables[start]).loc[final.index]
    change, low, high = bootstrap_ci(final.to_numpy(float) - earlier.to_numpy(float), n_boot=n_boot, seed=seed)
    _, dice_low, dice_high = bootstrap_ci(final.to_numpy(float), n_boot=n_boot, seed=seed)
    half_width = (dice_high - dice_low) / 2
    return {"from_step": int(start), "to_step": int(last), "change": float(change),
            "change_ci": [float(low), float(high)], "half_width": float(half_width),
            "flat": bool(abs(change) < half_width)}  # fmt: skip


def failed_strategies(records: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Strategy -> status for every record that did not train (e.g. ``"out of memory at batch 2"``)."""
    return {s: r["status"] for s, r in records.items() if r.get("status", "ok") != "ok"}


def strategy_parameters(
    model: str, strategies: Sequence[str] = tuple(peft.STRATEGIES), last_blocks: int | None = None
) -> pd.DataFrame:
    """Trainable parameters per component under each strategy (default options), without any weights.

    ``last_blocks``: as :func:`compare_strategies` places them (``None``: every block).

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
            sam = peft.STRATEGIES[strategy](architecture(model), **_placement(strategy, last_blocks))
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
    if trained:
        claims["cheapest_per_step"] = min(trained, key=lambda s: trained[s]["step_time_s"])
        cheapest = trained[claims["cheapest_per_step"]]
        sentences.append(f"Cheapest per step: {claims['cheapest_per_step']} ({cheapest['step_time_s']:.3f} s).")
        efficient = {s: r["trainable_percent"] for s, r in trained.items()
                     if s in ("adapter", "lora", "svd") and "trainable_percent" in r}  # fmt: skip
        claims["peft_max_trainable_percent"] = max(efficient.values()) if efficient else None
        if efficient:
            sentences.append(
                f"Adapter/LoRA/SVD train at most {claims['peft_max_trainable_percent']:.3f}% of the parameters."
            )
    claims["sentences"] = sentences
    return claims

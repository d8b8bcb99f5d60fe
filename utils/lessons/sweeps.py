"""Why SAM fails, one factor at a time: phantom sweeps with the prompt held fixed.

A *sweep* moves one knob of :func:`utils.phantoms.make_phantom` through a list of values, keeps
everything else (anatomy, seed, noise draw, prompt protocol) fixed, and scores the model at every
value with :func:`utils.evaluate.evaluate` (one encoder call per image). The prompt is the tight box
around the target (``mode="box"``: LiteMedSAM was trained with boxes only); for the touching-nuclei
sweep the target is the single nucleus nearest the image centre, so the box is drawn around one
instance while its neighbours press against it.

>>> spec = SWEEPS["contrast"]
>>> spec.style, spec.knob, spec.values
('mri', 'contrast', (0.0, 0.05, 0.1, 0.25, 1.0))

Functions: :func:`sweep_case` (one phantom of a sweep), :func:`sweep` (a factor → DataFrame with
``factor``, ``value``, ``value_index``, ``value_label`` and ``seed`` columns added to
``evaluate``'s), :func:`curves` (mean Dice and bootstrap CI per value, for results.json),
:func:`trend` (does Dice fall as the factor gets harder?), :func:`easiest_hardest`,
:func:`taxonomy_table` and the figures :func:`plot_curves` and :func:`plot_easiest_hardest`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "SWEEPS",
    "EXPECTATIONS",
    "TAXONOMY",
    "Sweep",
    "curves",
    "describe_sweeps",
    "easiest_hardest",
    "expectations",
    "mode_duel",
    "plot_curves",
    "plot_easiest_hardest",
    "pick_values",
    "sweep",
    "sweep_case",
    "sweep_cases",
    "taxonomy_table",
    "trend",
]


def _same(value: Any) -> Any:
    return value


def _window_of_width_400(level: float) -> tuple[float, float]:
    return (float(level), 400.0)


#: Area of the ring lesion's outer disc (fraction of the image), the same for every hole size.
RING_DISC_AREA = 0.025


def _ring_outer_disc_fixed(hole: float) -> dict[str, Any]:
    # the phantom's target_area is the annulus itself: shrink it with the hole so the disc stays put
    return {"target_area": RING_DISC_AREA * (1.0 - float(hole))}


@dataclass(frozen=True)
class Sweep:
    """One factor: the phantom ``style`` and ``knob`` it moves, the ``values`` (in axis order) and how to read them.

    ``harder`` says which end of the axis is the harder one (``"lower"`` or ``"higher"``), so that a
    curve can be read as "Dice as the factor gets harder". ``to_knob`` turns an axis value into the
    knob's value (e.g. a CT window level into ``(level, width)``); ``coupled`` returns other knobs
    that must move with the value to keep the rest of the picture fixed (the ring's outer disc);
    ``instance`` makes the target one nucleus (microscopy) instead of all of them. ``degrade`` makes a
    factor that is not a phantom knob: ``degrade(image, value)`` changes the finished phantom's uint8 RGB
    image (the mask stays), e.g. a bias field or motion blur (``knob`` is then just the axis's name).
    """

    style: str
    knob: str
    values: tuple[Any, ...]
    label: str
    harder: str
    what: str
    to_knob: Callable[[Any], Any] = _same
    coupled: Callable[[Any], dict[str, Any]] | None = None
    instance: bool = False
    degrade: Callable[[np.ndarray, Any], np.ndarray] | None = None

    def knob_value(self, value: Any) -> Any:
        return self.to_knob(value)


#: The factors of notebook 04, in the order it shows them. Values are sorted along the axis.
SWEEPS: dict[str, Sweep] = {
    "contrast": Sweep(
        style="mri", knob="contrast", values=(0.0, 0.05, 0.1, 0.25, 1.0), harder="lower",
        label="lesion contrast (0 = same as tissue)",
        what="a FLAIR-like white-matter lesion fades into the white matter",
    ),
    "noise": Sweep(
        style="ultrasound", knob="noise", values=(0.0, 1.0, 2.0, 4.0, 8.0), harder="higher",
        label="speckle strength (x typical)",
        what="Rayleigh speckle over a hypoechoic lesion",
    ),
    "blur": Sweep(
        style="ct", knob="blur", values=(0.0, 2.0, 4.0, 8.0, 12.0), harder="higher",
        label="boundary blur sigma (px)",
        what="a liver lesion whose edge is smeared (the mask stays sharp)",
    ),
    "target_size": Sweep(
        style="mri", knob="target_area", values=(0.0005, 0.001, 0.003, 0.01, 0.03), harder="lower",
        label="target area (fraction of image)",
        what="a white-matter lesion from a few pixels (6 px across) to a large plaque",
    ),
    "thin_structures": Sweep(
        style="fundus", knob="thickness", values=(1.0, 2.0, 4.0, 8.0), harder="lower",
        label="widest vessel (px)",
        what="the retinal vessel tree, one box around the whole tree",
    ),
    "ring": Sweep(
        style="mri", knob="ring", values=(0.0, 0.3, 0.5, 0.7, 0.9), harder="higher",
        label="hole fraction of a ring-shaped lesion", coupled=_ring_outer_disc_fixed,
        what="a ring-shaped lesion (same outer disc) whose hole is not target",
    ),
    "touching": Sweep(
        style="microscopy", knob="n_instances", values=(5, 15, 30, 60, 120), harder="higher",
        label="nuclei in the image", instance=True,
        what="one nucleus (box around it) among touching neighbours; more nuclei are also smaller",
    ),
    "distractors": Sweep(
        style="dermoscopy", knob="distractors", values=(0, 5, 20), harder="higher",
        label="look-alike blobs",
        what="a pigmented lesion among look-alike spots outside the mask",
    ),
    "ct_window": Sweep(
        style="ct", knob="window", values=(40.0, 120.0, 200.0, 300.0, 400.0), harder="higher",
        label="CT window level (HU), width 400", to_knob=_window_of_width_400,
        what="the same HU image through a 400-HU window moved up from soft tissue (liver ~95 HU)",
    ),
}  # fmt: skip


def pick_values(factor: str, n_values: int | None) -> tuple[Any, ...]:
    """``n_values`` values of ``factor``'s axis to sweep: both ends and evenly spaced values between them
    (all of them when ``n_values`` is None or not smaller than the axis). A notebook passes its budget,
    e.g. ``pick_values(factor, run.budget(full=None, offline=4, smoke=2))``."""
    spec = _spec(factor)
    whole = isinstance(n_values, (int, np.integer)) and not isinstance(n_values, bool)
    if n_values is not None and not (whole and n_values >= 2):
        raise ValueError(f"n_values must be a whole number >= 2 (the axis's two ends) or None (all); got {n_values!r}.")
    if n_values is None or n_values >= len(spec.values):
        return spec.values
    index = np.round(np.linspace(0, len(spec.values) - 1, n_values)).astype(int)
    return tuple(spec.values[i] for i in index)


def describe_sweeps(factors: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per factor: phantom style, knob, values, which end is harder, and what the sweep shows."""
    rows = []
    for factor in factors or SWEEPS:
        spec = _spec(factor)
        values = ", ".join(_value_label(v) for v in spec.values)
        rows.append({"factor": factor, "style": spec.style, "knob": spec.knob, "values": values,
                     "harder": spec.harder, "what it shows": spec.what})  # fmt: skip
    return pd.DataFrame(rows).set_index("factor")


# --------------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------------


def _spec(factor: str) -> Sweep:
    if factor not in SWEEPS:
        raise ValueError(f"Unknown factor {factor!r}; choose one of {', '.join(SWEEPS)}.")
    return SWEEPS[factor]


def _central_instance(instances: np.ndarray) -> np.ndarray:
    """Mask of the labelled instance whose centroid is nearest the image centre."""
    from scipy import ndimage as ndi

    labels = np.unique(instances)
    labels = labels[labels > 0]
    centres = np.array(ndi.center_of_mass(np.ones_like(instances), instances, labels))
    middle = (np.array(instances.shape) - 1) / 2.0
    nearest = labels[int(np.argmin(((centres - middle) ** 2).sum(axis=1)))]
    return instances == nearest


def _value_label(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    return str(value)


def sweep_case(factor: str, value: Any, seed: int = 0, size: int = 256, spec: Sweep | None = None) -> Any:
    """The phantom of ``factor`` at ``value`` (a :class:`~utils.datasets.Case` with a unique name).

    ``meta["sweep"]`` records ``factor``, ``value``, ``knob``, ``knob_value`` and ``coupled`` (other
    knobs moved with it). Deterministic: the same arguments give the same arrays (so a table row can
    be redrawn later). ``spec`` runs a factor that is not in :data:`SWEEPS` (named ``factor``), e.g. one
    with a ``degrade`` function.
    """
    from utils.phantoms import make_phantom

    spec = _spec(factor) if spec is None else spec
    knob_value = spec.knob_value(value)
    others = spec.coupled(value) if spec.coupled is not None else {}
    if spec.degrade is None:
        case = make_phantom(spec.style, seed=seed, size=size, **{spec.knob: knob_value}, **others)
    else:  # the finished phantom, then the factor's own change of its pixels
        case = make_phantom(spec.style, seed=seed, size=size, **others)
        case = dataclasses.replace(case, image=_degraded(spec.degrade, case.image, value))
    mask = _central_instance(case.meta["instances"]) if spec.instance else case.mask
    sweep_meta = {"factor": factor, "value": value, "knob": spec.knob, "knob_value": knob_value, "coupled": others}
    meta = {**case.meta, "sweep": sweep_meta}
    name = f"{factor}={_value_label(value)}_{spec.style}_seed{seed}"
    return dataclasses.replace(case, mask=mask, name=name, meta=meta)


def sweep_cases(
    factor: str,
    values: Sequence[Any] | None = None,
    seeds: Sequence[int] = (0, 1),
    size: int = 256,
    spec: Sweep | None = None,
):
    """Every case of a sweep: each value × each seed (values outer, seeds inner)."""
    spec = _spec(factor) if spec is None else spec
    values = _check_values(spec, values)
    seeds = _check_seeds(seeds)
    return [sweep_case(factor, v, s, size, spec) for v in values for s in seeds]


def _degraded(degrade: Callable[[np.ndarray, Any], np.ndarray], image: np.ndarray, value: Any) -> np.ndarray:
    """``degrade(image, value)``, checked: the same shape, uint8 (a copy goes in, so the phantom is untouched)."""
    out = np.asarray(degrade(image.copy(), value))
    if out.shape != image.shape:
        raise ValueError(f"degrade(image, {value!r}) returned shape {out.shape}; it must keep {image.shape}.")
    if out.dtype != np.uint8:
        raise ValueError(
            f"degrade(image, {value!r}) returned {out.dtype}; return uint8 (np.clip(...).astype(np.uint8))."
        )
    return out


def _check_values(spec: Sweep, values: Sequence[Any] | None) -> tuple[Any, ...]:
    values = spec.values if values is None else tuple(values)
    if not values:
        raise ValueError(f"values is empty; pass some values of {spec.knob!r}, e.g. {spec.values}.")
    if len(set(map(_value_label, values))) != len(values):
        raise ValueError(f"values repeats an entry: {list(values)}; each value is one point of the curve.")
    return values


def _check_seeds(seeds: Sequence[int]) -> tuple[int, ...]:
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("seeds is empty; pass at least one phantom seed, e.g. (0, 1).")
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seeds must be non-negative integers; got {seed!r}.")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds repeats an entry: {list(seeds)}.")
    return tuple(int(s) for s in seeds)


# --------------------------------------------------------------------------------------------------
# Running a sweep
# --------------------------------------------------------------------------------------------------


def sweep(
    predictor: Any,
    factor: str,
    values: Sequence[Any] | None = None,
    seeds: Sequence[int] = (0, 1),
    size: int = 256,
    mode: str = "box",
    progress: bool = True,
    keep_masks: bool = True,
    spec: Sweep | None = None,
    modes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Score ``predictor`` on the sweep of ``factor`` with one fixed prompt ``mode`` (default the box).

    Returns :func:`utils.evaluate.evaluate`'s table (one row per value × seed) with the columns
    ``factor``, ``style``, ``knob``, ``value``, ``value_index`` (position in ``values``),
    ``value_label``, ``seed``, ``size``, ``harder`` and ``label`` in front. ``keep_masks`` keeps each
    predicted mask (for :func:`plot_easiest_hardest`). ``df.attrs["encoder_calls"]`` counts the images
    embedded. ``spec`` sweeps a factor of your own (a :class:`Sweep`, e.g. with ``degrade``) under the
    name ``factor``. ``modes`` scores several prompt modes on the same embeddings (one row per value ×
    seed × mode: compare them with :func:`mode_duel`; :func:`curves` wants one mode).
    """
    from utils.evaluate import evaluate

    spec = _spec(factor) if spec is None else spec
    values = _check_values(spec, values)
    seeds = _check_seeds(seeds)
    cases = sweep_cases(factor, values, seeds, size, spec)
    modes = (mode,) if modes is None else tuple(modes)
    table = evaluate(predictor, cases, modes=modes, progress=progress, keep_masks=keep_masks)
    by_name = {c.name: (i // len(seeds), c.meta["seed"]) for i, c in enumerate(cases)}
    index = table["case"].map(lambda name: by_name[name][0])
    front = pd.DataFrame(
        {
            "factor": factor,
            "style": spec.style,
            "knob": spec.knob,
            "value": [values[i] for i in index],
            "value_index": index.to_numpy(),
            "value_label": [_value_label(values[i]) for i in index],
            "seed": table["case"].map(lambda name: by_name[name][1]).to_numpy(),
            "size": size,
            "harder": spec.harder,
            "label": spec.label,
        },
        index=table.index,
    )
    out = pd.concat([front, table], axis=1)
    out.attrs = dict(table.attrs)
    return out


def curves(df: pd.DataFrame, metric: str = "dice", n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per factor: ``{"values", "value_labels", "label", "harder", "dice_mean", "dice_ci", "n"}`` (JSON-ready).

    ``dice_ci`` is the percentile-bootstrap 95% CI over the seeds at each value
    (:func:`utils.evaluate.summarize`); with one seed it has zero width. Keys follow ``metric``.
    Numeric values are listed in increasing order whatever order they were swept in.
    """
    from utils.evaluate import summarize

    _check_sweep_table(df)
    if "mode" in df.columns and df.groupby("factor")["mode"].nunique().max() > 1:
        raise ValueError("A curve is one prompt mode: pass df[df['mode'] == ...] (mode_duel compares modes).")
    out: dict[str, dict[str, Any]] = {}
    for factor, rows in df.groupby("factor", sort=False):
        label, harder = _reading(rows)
        table = summarize(rows, by="value_index", metric=metric, n_boot=n_boot, seed=seed).sort_index()
        first = rows.drop_duplicates("value_index").set_index("value_index").loc[table.index]
        positions, numeric = _axis_positions(list(first["value"]))
        if numeric:  # along the axis, so that "harder" reads from one end to the other
            order = np.argsort(positions, kind="stable")
            table, first = table.iloc[order], first.iloc[order]
        out[str(factor)] = {
            "values": [_jsonable_value(v) for v in first["value"]],
            "value_labels": list(first["value_label"]),
            "label": label,
            "harder": harder,
            f"{metric}_mean": [float(v) for v in table["mean"]],
            f"{metric}_ci": [[float(lo), float(hi)] for lo, hi in zip(table["ci_low"], table["ci_high"])],
            "n": [int(v) for v in table["n"]],
        }
    return out


def _reading(rows: pd.DataFrame) -> tuple[str, str]:
    """A factor's axis label and harder end: from the table (any factor), else from :data:`SWEEPS`."""
    if {"label", "harder"} <= set(rows.columns):
        return str(rows["label"].iloc[0]), str(rows["harder"].iloc[0])
    spec = _spec(str(rows["factor"].iloc[0]))
    return spec.label, spec.harder


def _jsonable_value(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return [_jsonable_value(v) for v in value]
    return value


def _check_sweep_table(df: pd.DataFrame) -> None:
    needed = {"factor", "value", "value_index", "value_label", "seed", "dice"}
    missing = sorted(needed - set(df.columns))
    if missing:
        raise ValueError(f"Not a sweep table (missing {missing}); make it with utils.lessons.sweeps.sweep(...).")
    if df.empty:
        raise ValueError("The sweep table is empty.")


def trend(curve: Mapping[str, Any], metric: str = "dice") -> dict[str, Any]:
    """Read one curve from its easy end to its hard end.

    Returns ``easy_value``/``hard_value`` (the axis ends), ``easy``/``hard`` (mean Dice there),
    ``drop`` (easy - hard), ``spearman`` (rank correlation of Dice with "harder": +1 = Dice falls
    steadily as the factor gets harder) and ``falls`` (``drop > 0`` and ``spearman > 0``).
    """
    from scipy.stats import spearmanr

    means = np.asarray(curve[f"{metric}_mean"], dtype=float)
    if means.size < 2:
        raise ValueError("A trend needs at least two values on the curve.")
    if curve["harder"] not in ("lower", "higher"):
        raise ValueError(f"curve['harder'] must be 'lower' or 'higher'; got {curve['harder']!r}.")
    hardness = np.arange(means.size) if curve["harder"] == "higher" else np.arange(means.size)[::-1]
    easy_i, hard_i = int(np.argmin(hardness)), int(np.argmax(hardness))
    rho = spearmanr(hardness, -means).statistic if np.ptp(means) > 0 else 0.0
    drop = float(means[easy_i] - means[hard_i])
    return {
        "easy_value": curve["values"][easy_i],
        "hard_value": curve["values"][hard_i],
        "easy": float(means[easy_i]),
        "hard": float(means[hard_i]),
        "drop": drop,
        "spearman": float(rho),
        "falls": bool(drop > 0 and rho > 0),
    }


def mode_duel(df: pd.DataFrame, metric: str = "dice") -> dict[str, Any]:
    """Which prompt mode scored best on one factor's phantoms (a :func:`sweep` with several ``modes``)?

    Returns ``{"factor", "modes", "mean"}`` (mode → mean ``metric`` over every value and seed), ``"by_value"``
    (mode → mean per value label), ``"winner"`` (the best mode; the first listed on a tie) and ``"margin"``
    (its lead over the runner-up), JSON-ready.
    """
    _check_sweep_table(df)
    if df["factor"].nunique() != 1 or df["mode"].nunique() < 2:
        raise ValueError("mode_duel wants one factor scored with at least two modes: sweep(..., modes=(...)).")
    modes = list(dict.fromkeys(df["mode"]))
    means = {mode: float(df.loc[df["mode"] == mode, metric].mean()) for mode in modes}
    ranked = sorted(modes, key=lambda mode: -means[mode])  # stable: ties keep the listed order
    by_value = {mode: {str(k): float(v) for k, v in rows.groupby("value_label", sort=False)[metric].mean().items()}
                for mode, rows in df.groupby("mode", sort=False)}  # fmt: skip
    return {
        "factor": str(df["factor"].iloc[0]),
        "modes": modes,
        "mean": means,
        "by_value": by_value,
        "winner": ranked[0],
        "margin": means[ranked[0]] - means[ranked[1]],
    }


#: What each factor is expected to do to Dice with a tight box prompt, and the rule that checks it on a
#: curve's :func:`trend` (plus the curve itself): factor → (expectation, rule). :func:`expectations`
#: prints whether each held in this run, so the notebook's prose never asserts a result it did not measure.
EXPECTATIONS: dict[str, tuple[str, Callable[[Mapping[str, Any], Mapping[str, Any]], bool]]] = {
    "contrast": ("Dice falls as the lesion fades, but stays above 0.2 (the box prior)",
                 lambda t, c: t["falls"] and t["hard"] > 0.2),
    "noise": ("Dice falls as the speckle grows", lambda t, c: t["falls"]),
    "blur": ("Dice falls as the edge blurs", lambda t, c: t["falls"]),
    "target_size": ("the smallest targets score lowest", lambda t, c: t["falls"]),
    "thin_structures": ("Dice stays below 0.5 at every vessel width", lambda t, c: max(c["dice_mean"]) < 0.5),
    "ring": ("Dice falls as the hole grows", lambda t, c: t["falls"]),
    "touching": ("Dice falls as the nuclei crowd (and shrink)", lambda t, c: t["falls"]),
    "distractors": ("look-alikes outside the box change Dice by less than 0.15", lambda t, c: abs(t["drop"]) < 0.15),
    "ct_window": ("Dice falls as the window moves up from soft tissue", lambda t, c: t["falls"]),
}  # fmt: skip


def expectations(curve_dict: Mapping[str, Mapping[str, Any]], metric: str = "dice") -> pd.DataFrame:
    """Each swept factor's expectation (:data:`EXPECTATIONS`), what this run measured and whether it held.

    One row per factor of ``curve_dict`` that has an expectation: ``expectation``, ``measured`` (Dice at
    the easy and the hard end, the range over the axis and the Spearman correlation) and ``held`` (bool).
    """
    rows = []
    for factor, curve in curve_dict.items():
        if factor not in EXPECTATIONS:
            continue
        text, rule = EXPECTATIONS[factor]
        measured = trend(curve, metric)
        means = curve[f"{metric}_mean"]
        rows.append({
            "factor": factor, "expectation": text,
            "measured": f"{measured['easy']:.2f} (easy) -> {measured['hard']:.2f} (hard); range "
                        f"{min(means):.2f}-{max(means):.2f}; Spearman {measured['spearman']:+.2f}",
            "held": bool(rule(measured, curve)),
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["factor", "expectation", "measured", "held"]).set_index("factor")


def easiest_hardest(df: pd.DataFrame, metric: str = "dice") -> tuple[pd.Series, pd.Series]:
    """The rows (cases) with the highest and the lowest ``metric`` in one factor's table.

    Ties go to the first row (the smaller value, then the smaller seed).
    """
    _check_sweep_table(df)
    if df["factor"].nunique() != 1:
        raise ValueError(f"Pass one factor's rows (df[df.factor == ...]); got {sorted(df['factor'].unique())}.")
    scores = df[metric].to_numpy(float)
    if not np.isfinite(scores).any():
        raise ValueError(f"No finite {metric} in the table.")
    return df.iloc[int(np.nanargmax(scores))], df.iloc[int(np.nanargmin(scores))]


# --------------------------------------------------------------------------------------------------
# The failure taxonomy
# --------------------------------------------------------------------------------------------------

#: failure → (factor measured here or None, why SAM struggles, what addresses it and where in the course).
TAXONOMY: dict[str, tuple[str | None, str, str]] = {
    "low contrast": (
        "contrast",
        "SA-1B objects differ from their surroundings in colour and texture; a lesion a few grey levels "
        "from its tissue gives the encoder almost no edge to follow",
        "adapt the encoder to the modality: adapters / LoRA / SVD (05); medical pre-training as in "
        "MedSAM / LiteMedSAM (06)",
    ),
    "speckle and noise": (
        "noise",
        "ultrasound speckle and low-dose noise are textures the photo-trained encoder never saw",
        "adapters or LoRA in the encoder learn modality-specific texture (05); medical foundation models (06)",
    ),
    "blurred boundaries": (
        "blur",
        "the decoder snaps to the sharpest nearby edge; a smeared edge gives no single answer",
        "fine-tune the decoder with Dice + BCE on real boundaries (05); uncertainty from multimask "
        "disagreement / test-time augmentation flags the doubt (06)",
    ),
    "small targets": (
        "target_size",
        "the encoder's 64x64 token grid (16 px per token at SAM's 1024-px input, 4 px at LiteMedSAM's 256) "
        "blurs targets a few pixels wide",
        "decoder-only or full fine-tuning on small structures (05); feed a crop around the box (higher "
        "effective resolution)",
    ),
    "thin structures": (
        "thin_structures",
        "one box around a vessel tree covers mostly background; the 64x64 token grid cannot follow 1-2 px vessels",
        "full fine-tuning or adapters with a dedicated loss (05); these are segmentation, not prompting, problems",
    ),
    "rings and holes": (
        "ring",
        "SAM's object prior favours filled, compact blobs: it fills the hole",
        "decoder-only fine-tuning teaches the target's topology (05)",
    ),
    "touching instances": (
        "touching",
        "neighbours inside the box share the same texture and edges, so the mask leaks into them",
        "one tight box per instance (02); fine-tuning on instance masks (05)",
    ),
    "look-alike distractors": (
        "distractors",
        "a box excludes look-alikes that lie outside it; points and 'everything' mode do not",
        "use box prompts (02-03); fine-tuning teaches which blob is the class (05)",
    ),
    "CT window": (
        "ct_window",
        "SAM sees 8-bit pixels, not HU: the window decides which contrasts survive",
        "fix windowing / normalisation in preprocessing (07); train adapters on that choice (05)",
    ),
    "domain gap": (
        None,
        "medical images sit apart from photos in SAM's embedding space (section 2 of this notebook)",
        "parameter-efficient adaptation (05); medical foundation models (06)",
    ),
}


def taxonomy_table(curve_dict: Mapping[str, Mapping[str, Any]] | None = None) -> pd.DataFrame:
    """The failure taxonomy as a table; with ``curve_dict`` (from :func:`curves`) it adds the measured
    Dice at the easy and hard end of each factor's sweep."""
    rows = []
    for failure, (factor, why, remedy) in TAXONOMY.items():
        row = {
            "failure": failure,
            "sweep": factor or "-",
            "why SAM struggles": why,
            "what addresses it (notebook)": remedy,
        }
        if curve_dict is not None:
            measured = trend(curve_dict[factor]) if factor in curve_dict else None
            row["Dice easy -> hard"] = (
                f"{measured['easy']:.2f} -> {measured['hard']:.2f}" if measured is not None else "-"
            )
        rows.append(row)
    return pd.DataFrame(rows).set_index("failure")


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def _axis_positions(values: Sequence[Any]) -> tuple[np.ndarray, bool]:
    """Numeric axis values when every value is a number, else positions 0..n-1."""
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in values)
    return (np.asarray(values, dtype=float), True) if numeric else (np.arange(len(values), dtype=float), False)


def plot_curves(curve_dict: Mapping[str, Mapping[str, Any]], metric: str = "dice", ncols: int = 3):
    """One panel per factor: mean ``metric`` (line) with its 95% CI (band) against the factor's value."""
    import matplotlib.pyplot as plt

    from utils.viz import course_palette

    if not curve_dict:
        raise ValueError("curve_dict is empty; pass utils.lessons.sweeps.curves(df).")
    n = len(curve_dict)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.4 * ncols, 2.7 * nrows), squeeze=False, layout="constrained")
    colour = course_palette["prediction"]
    for ax, (factor, curve) in zip(axes.flat, curve_dict.items()):
        x, numeric = _axis_positions(curve["values"])
        mean = np.asarray(curve[f"{metric}_mean"], dtype=float)
        ci = np.asarray(curve[f"{metric}_ci"], dtype=float)
        ax.fill_between(x, ci[:, 0], ci[:, 1], color=colour, alpha=0.2, linewidth=0)
        ax.plot(x, mean, marker="o", color=colour)
        spread = x[x > 0]
        if numeric and spread.size >= 2 and spread.max() / spread.min() >= 20:  # decades apart: log axis
            ax.set_xscale("symlog", linthresh=spread.min())
        ax.set_xticks(x, curve["value_labels"], fontsize=7)
        ax.minorticks_off()
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{factor} (harder: {curve['harder']})", fontsize=9)
        ax.set_xlabel(curve["label"], fontsize=8)
        ax.grid(alpha=0.3)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{metric} (box prompt)")
    return fig


def plot_easiest_hardest(df: pd.DataFrame, factors: Sequence[str] | None = None, ncols: int = 3, size: float = 2.2):
    """For each factor, its easiest and hardest case side by side: image, ground truth (gold), the
    predicted mask (blue) and the box prompt. Cases are redrawn with :func:`sweep_case`; needs
    ``sweep(..., keep_masks=True)``."""
    import matplotlib.pyplot as plt

    from utils.viz import add_legend, show_case

    _check_sweep_table(df)
    if "mask" not in df.columns:
        raise ValueError("The table has no masks: run sweep(..., keep_masks=True).")
    factors = list(dict.fromkeys(df["factor"])) if factors is None else list(factors)
    ncols = min(ncols, len(factors))
    nrows = int(np.ceil(len(factors) / ncols))
    fig, axes = plt.subplots(nrows, 2 * ncols, figsize=(2 * ncols * size, nrows * (size + 0.5)), squeeze=False,
                             layout="constrained")  # fmt: skip
    for i, factor in enumerate(factors):
        rows = df[df["factor"] == factor]
        for j, (kind, row) in enumerate(zip(("easiest", "hardest"), easiest_hardest(rows))):
            ax = axes[i // ncols, 2 * (i % ncols) + j]
            case = sweep_case(factor, row["value"], int(row["seed"]), int(row["size"]))
            show_case(case, ax=ax, pred=row["mask"], box=row["prompt_box"], legend=False, dice=row["dice"],
                      title=f"{factor} {kind}\n{SWEEPS[factor].knob}={row['value_label']}")  # fmt: skip
            ax.title.set_fontsize(7)
    for ax in axes.flat[2 * len(factors) :]:
        ax.set_visible(False)
    add_legend(fig, ["ground_truth", "prediction", "box"])
    return fig

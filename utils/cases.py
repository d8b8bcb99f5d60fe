"""Which cases a lesson runs on: the one place that selects a notebook's case sets.

A :class:`utils.datasets.Case` is one image with its mask; :mod:`utils.datasets` and
:mod:`utils.phantoms` load and make them. This module picks *which* of them a lesson uses:

- :func:`zero_shot_cases`: notebooks 03 and 06's benchmark (MedSegBench sets in full mode, brain
  scans and phantoms offline);
- :func:`autoprompt_cases`: notebook 08's automatic-prompt study, with each case's polarity;
- :func:`case_dataset` (a short source label), :func:`describe_cases` (the data table) and
  :func:`spread_cases` (a few cases spread over the sources, for galleries and costly modes).

The run's mode chooses *what* data is loaded (``full``: downloads; ``offline``/``smoke``: installed
scans and phantoms); every *size* is an argument, so a notebook's budget (``run.budget(...)``) decides
how much runs and ``MODE="full", BUDGET="smoke"`` loads the full data at the smallest sizes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from utils.checks import whole_number

__all__ = [
    "MEDSEGBENCH_SETS",
    "autoprompt_cases",
    "case_dataset",
    "describe_cases",
    "spread_cases",
    "zero_shot_cases",
]

#: MedSegBench sets of the zero-shot benchmark's full mode: one per modality (licences in each Case).
MEDSEGBENCH_SETS = ("busi", "pandental", "chasedb1", "polypgen", "isic2016")
_MODES = ("full", "offline", "smoke")


def _check_mode(mode: Any) -> str:
    if mode not in _MODES:
        raise ValueError(f"mode must be 'full', 'offline' or 'smoke' (run.mode); got {mode!r}.")
    return mode


_SIZE_HINT = "pass run.budget(...)"


def case_dataset(case: Any) -> str:
    """A short data-source label: the MedSegBench flag, ``phantom``, or the name's prefix (``colin27``...)."""
    meta = getattr(case, "meta", {}) or {}
    if meta.get("flag"):
        return str(meta["flag"])
    if meta.get("style"):
        return "phantom"
    return str(case.name).split("_", 1)[0]


def zero_shot_cases(
    mode: str, n_per_source: int, n_phantoms: int, seed: int = 0, sets: Sequence[str] = MEDSEGBENCH_SETS
) -> list[Any]:
    """The cases of the zero-shot benchmark (notebooks 03 and 06); ``mode`` (``run.mode``) picks the data.

    - ``full``: ``n_per_source`` test images from each MedSegBench set in ``sets`` (256 px); a set
      that cannot be loaded is skipped with a warning (the others still run). No phantoms.
    - ``offline``: the real scans of :func:`utils.datasets.offline_cases` (``n_per_source`` slices per
      structure) plus ``n_phantoms`` phantoms of each style. Without mricron-data, the MNI152
      structures only.
    - ``smoke``: ``n_per_source`` Colin27 thalamus and putamen slices (MNI152 ventricles without
      mricron-data) and ``n_phantoms`` ultrasound phantoms.
    """
    from utils import datasets, phantoms

    mode = _check_mode(mode)
    n_per_source = whole_number(n_per_source, "n_per_source", minimum=1, hint=_SIZE_HINT)
    n_phantoms = whole_number(n_phantoms, "n_phantoms", hint=_SIZE_HINT)
    if mode == "full":
        cases = []
        for flag in sets:
            try:
                cases += datasets.medsegbench(flag, split="test", n=n_per_source, seed=seed)
            except (OSError, ValueError) as problem:  # a download that fails must not sink the others
                warnings.warn(f"MedSegBench {flag} skipped: {problem}", stacklevel=2)
        if not cases:
            raise ValueError("No MedSegBench set could be loaded; run in offline mode (MODE='offline').")
        return cases
    if mode == "offline":
        try:
            real = datasets.offline_cases(n_per_structure=n_per_source)
        except FileNotFoundError as missing:
            warnings.warn(f"{missing} Using MNI152 structures only.", stacklevel=2)
            real = datasets.mni152_cases(("brain", "ventricles"), n_slices=n_per_source)
        return real + [phantoms.make_phantom(s, seed=seed + i) for s in phantoms.STYLES for i in range(n_phantoms)]
    try:
        real = datasets.colin27_cases(("thalamus", "putamen"), n_slices=n_per_source)
    except FileNotFoundError:
        real = datasets.mni152_cases(("ventricles",), n_slices=n_per_source)
    return real + [phantoms.make_phantom("ultrasound", seed=seed + i) for i in range(n_phantoms)]


def autoprompt_cases(mode: str, n_per_source: int, seed: int = 0) -> tuple[list[Any], list[str]]:
    """The cases notebook 08 runs the automatic prompt on, and each case's polarity: ``"bright"`` (the
    target is brighter than its surroundings) or ``"dark"`` (see :data:`utils.lessons.autoprompt.SOURCES`).

    ``n_per_source`` images of every source: axial slices of the Colin27 brain (skipped without
    mricron-data) and of the MNI152 brain, and dermoscopy, ultrasound and CT phantoms. ``mode``
    (``run.mode``) picks the data: ``full`` adds MedSegBench isic2016 and busi test images (a set that
    cannot be downloaded is skipped with a warning); ``smoke`` takes the brain from Colin27 only
    (MNI152 when Colin27 is missing).
    """
    from utils import datasets, phantoms

    mode = _check_mode(mode)
    n = whole_number(n_per_source, "n_per_source", minimum=1, hint=_SIZE_HINT)
    cases: list[Any] = []
    polarities: list[str] = []

    def add(new: list[Any], polarity: str) -> None:
        cases.extend(new)
        polarities.extend([polarity] * len(new))

    if mode == "full":
        for flag in ("isic2016", "busi"):
            try:
                add(datasets.medsegbench(flag, split="test", n=n, seed=seed), "dark")
            except (OSError, ValueError) as problem:  # a failed download must not sink the other sets
                warnings.warn(f"MedSegBench {flag} skipped: {problem}", stacklevel=2)
    try:
        add(datasets.colin27_cases(("brain",), n_slices=n), "bright")
    except FileNotFoundError:  # no mricron-data: nilearn's MNI152 is always there
        pass
    if mode != "smoke" or not cases:
        add(datasets.mni152_cases(("brain",), n_slices=n), "bright")
    for style in ("dermoscopy", "ultrasound", "ct"):
        add([phantoms.make_phantom(style, seed=seed + i) for i in range(n)], "dark")
    return cases, polarities


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

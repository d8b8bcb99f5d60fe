"""Published zero-shot SAM results, and this run's numbers beside them.

:func:`published_results` reads ``utils/data/published_sam_results.csv`` (one row per published
number, each with its source; ``utils/data/README.md`` says how it was built) and
:func:`published_comparison` puts a :func:`utils.evaluate.evaluate` table's means beside the papers'
headline numbers, one row per course prompt mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from utils.evaluate import MODES

__all__ = ["PUBLISHED_CSV", "published_comparison", "published_results"]

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
    in ``df`` (an :func:`utils.evaluate.evaluate` table). Published IoU compares with this run's IoU,
    published Dice with its Dice.
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

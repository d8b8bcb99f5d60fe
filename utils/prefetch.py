"""``make prefetch``: download and hash-check everything the full mode needs, before a workshop.

Run it once where the network is good; then the cache folder (``data/cache`` or
``$SAMCOURSE_CACHE_DIR``) can be copied to every machine in the room, or served to them with
``python -m http.server`` and ``SAMCOURSE_MIRROR``. Every file goes through
:func:`utils.download.fetch`: verified, atomic, never half-written.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FULL_MODE_MEDMNIST", "FULL_MODE_MODELS", "Item", "full_mode_items", "prefetch"]

FULL_MODE_MODELS = ("sam_vit_b",)
# The MedMNIST+ sets the full mode's domain-gap notebook uses: the small ones at 224 px.
FULL_MODE_MEDMNIST = ("breastmnist", "pneumoniamnist", "retinamnist", "dermamnist")


@dataclass(frozen=True)
class Item:
    """One file to prefetch: a name for the summary and the call that fetches (or finds) it."""

    name: str
    fetch: Callable[[], Path]


def full_mode_items(
    models: Sequence[str] = FULL_MODE_MODELS,
    medsegbench_sets: Sequence[str] | None = None,
    medmnist_sets: Sequence[str] = FULL_MODE_MEDMNIST,
    medsegbench_size: int = 256,
    medmnist_size: int = 224,
) -> list[Item]:
    """The checkpoints and datasets the full mode downloads, from the registries (never other URLs)."""
    from . import datasets
    from .models import checkpoint_for

    sets = datasets.TEACHING_SETS if medsegbench_sets is None else medsegbench_sets
    items = [Item(f"model {name}", lambda name=name: checkpoint_for(name)) for name in models]
    items += [
        Item(
            f"MedSegBench {flag} {medsegbench_size}px",
            lambda flag=flag: datasets.download_medsegbench(flag, medsegbench_size),
        )
        for flag in sets
    ]
    items += [
        Item(f"MedMNIST+ {flag} {medmnist_size}px", lambda flag=flag: datasets.download_medmnist(flag, medmnist_size))
        for flag in medmnist_sets
    ]
    return items


def prefetch(items: Sequence[Item], progress: bool = True) -> list[dict]:
    """Fetch every item (each verified by hash); return one summary row per item. Never raises for
    one failed item: the row says what went wrong and the rest still download."""
    from tqdm.auto import tqdm

    rows = []
    for item in tqdm(items, desc="prefetch", unit="file", disable=not progress):
        start = time.perf_counter()
        try:
            path = item.fetch()
            status, detail = "ok", str(path)
            size_mb = path.stat().st_size / 1e6
        except Exception as exc:  # report and go on: one bad file must not stop the others
            status, detail, size_mb = "failed", f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}", 0.0
        rows.append(
            {
                "item": item.name,
                "status": status,
                "size_mb": round(size_mb, 1),
                "seconds": round(time.perf_counter() - start, 1),
                "detail": detail,
            }
        )
    return rows


def format_rows(rows: list[dict]) -> str:
    import pandas as pd

    if not rows:
        return "nothing to prefetch"
    return pd.DataFrame(rows).to_string(index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all-models", action="store_true", help="also SAM ViT-L and ViT-H (1.25 GB + 2.56 GB)")
    args = parser.parse_args(argv)
    models = ("sam_vit_b", "sam_vit_l", "sam_vit_h") if args.all_models else FULL_MODE_MODELS
    rows = prefetch(full_mode_items(models=models))
    print(format_rows(rows))
    failed = [r for r in rows if r["status"] != "ok"]
    total = sum(r["size_mb"] for r in rows)
    print(f"\n{len(rows) - len(failed)} of {len(rows)} files ready and verified ({total:.0f} MB).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

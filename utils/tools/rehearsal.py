"""``make rehearse``: the full mode's whole path, run here with stand-in files instead of downloads.

Students run the course in Colab in ``full`` mode: SAM ViT-B's checkpoint and MedSegBench / MedMNIST+
files downloaded once, hash-checked, loaded and pushed through every notebook. A machine without
that network (CI) cannot download them, so a rehearsal serves *format-faithful stand-ins* at the
real URL paths from a server on 127.0.0.1 (:mod:`utils.tools.mirror`, the instructors' mirror):

- SAM ViT-B: a state dict in the official layout (the same keys and shapes as
  ``sam_vit_b_01ec64.pth``) with seeded random weights, generated here, never downloaded;
- MedSegBench: npz files with the real keys (``{split}_images``, ``{split}_label``), dtypes and
  channels of each set the notebooks use, holding procedural phantoms of the set's modality;
- MedMNIST+: npz files with the real keys (``{split}_images``, ``{split}_labels``) and label range.

Their hashes differ from the registry's, so they are accepted only through an explicit switch,
``$SAMCOURSE_REHEARSAL`` (:func:`utils.machine.rehearsal_manifest`), which names each stand-in's URL,
hash and size; every banner then says so in capitals, and every number is meaningless. Each notebook
runs with ``MODE="full"`` at the smallest budget (``BUDGET="smoke"``, plus :data:`SMOKE_PARAMETERS`);
the executed notebooks and a summary land in ``outputs/rehearsal/``. On a GPU,
``--budget full --cuda-memory-gib 15`` runs the full budgets capped at a T4's memory and writes each
notebook's wall time and peak CUDA memory to ``outputs/rehearsal/gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = [
    "SMOKE_PARAMETERS",
    "STANDIN_SAMPLES",
    "build_standins",
    "rehearse",
    "standin_medmnist",
    "standin_medsegbench",
    "standin_sam_checkpoint",
]

#: Images per split in a stand-in data file: enough for every notebook's smallest budget.
STANDIN_SAMPLES = {"train": 8, "val": 2, "test": 8}

#: What the CPU rehearsal (``BUDGET="smoke"``) passes to single notebooks to stay within 25 minutes on
#: 2 cores, where a SAM ViT-B encoder pass takes 10-25 s. Notebook 05 trains two strategies on ViT-B:
#: decoder-only (frozen encoder, cached embeddings) and LoRA (the encoder's backward pass with
#: checkpointing and accumulation, then the saved-tensors round trip and the merge). Adapter, SVD and
#: full fine-tuning run the same code (``make test`` trains all five on the tiny SAM); each would add
#: about two minutes here. A rehearsal at any other budget (on a GPU) runs everything.
SMOKE_PARAMETERS: dict[str, dict[str, Any]] = {"05_adapting_sam": {"STRATEGIES": ["decoder_only", "lora"]}}


def _style(modality: str) -> str:
    """The phantom style that stands in for a data set of ``modality`` (the styles are named after them)."""
    from utils.phantoms import STYLES

    return modality if modality in STYLES else "ct"


def _save_atomic(path: Path, write) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as stream:
        write(stream)
    partial.replace(path)
    return path


def standin_sam_checkpoint(path: str | Path, variant: str = "vit_b", seed: int = 0) -> Path:
    """Write a SAM checkpoint in the official layout (state dict, same keys and shapes) with seeded
    random weights. Its masks mean nothing; it exists so the full path loads a real-sized file."""
    import torch
    from segment_anything import sam_model_registry

    if variant not in sam_model_registry or variant == "default":
        raise ValueError(f"Unknown SAM variant {variant!r}; choose vit_b, vit_l or vit_h.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        state = sam_model_registry[variant](checkpoint=None).state_dict()
    return _save_atomic(Path(path), lambda stream: torch.save(state, stream))


def _phantoms(style: str, n: int, size: int, seed: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from utils.phantoms import make_phantom

    cases = [make_phantom(style, seed=seed + k, size=size) for k in range(n)]
    images = np.stack([np.asarray(c.image, dtype=np.uint8) for c in cases])
    if channels == 1:  # gray sets store (N, H, W)
        images = images.mean(axis=-1).round().astype(np.uint8) if images.ndim == 4 else images
    elif images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    return images, np.stack([np.asarray(c.mask, dtype=np.uint8) for c in cases])


def standin_medsegbench(path: str | Path, flag: str, size: int = 256, seed: int = 0) -> Path:
    """Write a MedSegBench-format npz for ``flag``: ``{split}_images`` (uint8, the set's channels) and
    ``{split}_label`` (uint8 0/1) for train/val/test, holding phantoms of the set's modality."""
    from utils.datasets import medsegbench_info

    info = medsegbench_info(flag)
    style = _style(info["modality"])
    arrays = {}
    for offset, (split, n) in enumerate(STANDIN_SAMPLES.items()):
        images, masks = _phantoms(style, n, size, seed + 1000 * offset, info["n_channels"])
        arrays[f"{split}_images"], arrays[f"{split}_label"] = images, masks
    return _save_atomic(Path(path), lambda stream: np.savez_compressed(stream, **arrays))


def standin_medmnist(path: str | Path, flag: str, size: int = 224, seed: int = 0) -> Path:
    """Write a MedMNIST-format npz for ``flag``: ``{split}_images`` (uint8, the set's channels) and
    ``{split}_labels`` ((N, 1) uint8, every class of the set present), images from phantoms."""
    from utils.datasets import medmnist_info
    from utils.lessons.domain import MEDMNIST_FLAGS

    info = medmnist_info(flag, size)
    style = _style(MEDMNIST_FLAGS.get(flag, ""))
    n_classes = len(info["label_names"])
    rng = np.random.default_rng(seed)
    arrays = {}
    for offset, (split, n) in enumerate(STANDIN_SAMPLES.items()):
        images, _ = _phantoms(style, n, size, seed + 1000 * offset, info["n_channels"])
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = rng.permutation(np.arange(n) % n_classes).astype(np.uint8)[:, None]
    return _save_atomic(Path(path), lambda stream: np.savez_compressed(stream, **arrays))


# ------------------------------------------------------------------------------------------ the run


def build_standins(folder: str | Path, seed: int = 0) -> dict[str, dict[str, Any]]:
    """A stand-in for every file :func:`utils.tools.prefetch.full_mode_files` lists, written under ``folder``.

    Returns the manifest's ``files``: original URL → ``hash`` (sha256 of the stand-in), ``size``,
    ``path`` and ``label``. Built from the same list the instructors prefetch, so a notebook that
    starts using a file the list lacks fails its rehearsal (the mirror answers 404).
    """
    from utils.download import file_hash
    from utils.tools import prefetch

    folder = Path(folder)
    jobs = [((m,), (), (), lambda path, m=m: standin_sam_checkpoint(path, m.removeprefix("sam_"), seed))
            for m in prefetch.FULL_MODE_MODELS]  # fmt: skip
    jobs += [((), (f,), (), lambda path, f=f: standin_medsegbench(path, f, prefetch.MEDSEGBENCH_SIZE, seed))
             for f in prefetch.FULL_MODE_MEDSEGBENCH]  # fmt: skip
    jobs += [((), (), (f,), lambda path, f=f: standin_medmnist(path, f, prefetch.MEDMNIST_SIZE, seed))
             for f in prefetch.FULL_MODE_MEDMNIST]  # fmt: skip
    files = {}
    for models, medsegbench_sets, medmnist_sets, build in jobs:
        (remote,) = prefetch.full_mode_files(models, medsegbench_sets, medmnist_sets)
        path = build(folder / remote.path.name)
        files[remote.url] = {"hash": f"sha256:{file_hash(path)}", "size": path.stat().st_size, "path": str(path),
                             "label": remote.label}  # fmt: skip
    return files


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the notebooks' kernels, then restore them."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


_SKIPPED = re.compile(r"(MedSegBench|MedMNIST) \S+ skipped")


def _printed(executed: Path) -> str:
    """What the executed notebook's code cells printed (stream outputs: its sentences, not its tables)."""
    import nbformat

    cells = nbformat.read(executed, as_version=4).cells
    return "\n".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")  # fmt: skip


def _problems(executed: Path) -> list[str]:
    """What a notebook that ran may still have got wrong in a rehearsal."""
    problems = []
    results = executed.parent / executed.stem / "results.json"
    models: list[str] = []
    if results.is_file():
        payload = json.loads(results.read_text())
        models = [str(m).lower() for m in payload.get("models") or []]
        if payload.get("mode") != "full" or payload.get("rehearsal") is not True:
            problems.append(f"ran in mode {payload.get('mode')!r}, rehearsal={payload.get('rehearsal')}")
    if executed.is_file():
        text = executed.read_text()
        problems += [f"a data set was skipped ({m.group(0)})" for m in _SKIPPED.finditer(text)]
        # what a full run prints is about the model that ran: no LiteMedSAM sentence unless LiteMedSAM ran too
        if results.is_file() and not any("litemedsam" in m for m in models):
            said = [line.strip() for line in _printed(executed).splitlines() if "litemedsam" in line.lower()]
            problems += [f"printed a LiteMedSAM sentence though only {models} ran: {line[:120]!r}" for line in said]
    return problems


def rehearse(
    out: str | Path | None = None,
    budget: str = "smoke",
    notebooks: Sequence[Path] | None = None,
    cuda_memory_gib: float | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Run ``notebooks`` (default: all) with ``MODE="full"`` and ``BUDGET=budget`` against stand-ins.

    Everything lands in ``out`` (default ``outputs/rehearsal``): the stand-ins, their manifest, a
    fresh download cache (every rehearsal downloads through the mirror again), the executed
    notebooks with their results.json, and ``summary.json``. ``cuda_memory_gib`` caps each kernel's
    CUDA memory (15: a T4) and adds ``gpu.json`` (wall time and peak CUDA memory per notebook).
    Returns the summary; ``summary["ok"]`` is False when a notebook failed or misbehaved.
    """
    from utils.env import BUDGETS
    from utils.machine import CUDA_MEMORY_ENV, REHEARSAL_ENV, output_dir
    from utils.tools import harness
    from utils.tools.mirror import MirrorServer

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {', '.join(BUDGETS)}; got {budget!r}.")
    out = (Path(out) if out else output_dir("rehearsal")).resolve()  # the kernels run in notebooks/
    shutil.rmtree(out / "cache", ignore_errors=True)
    print(f"rehearsal: writing stand-ins to {out / 'standins'} ...", flush=True)
    files = build_standins(out / "standins", seed)
    manifest = out / "manifest.json"
    manifest.write_text(
        json.dumps({"note": "stand-ins of a rehearsal (utils.tools.rehearsal)", "files": files}, indent=2)
    )
    routes = {urlsplit(url).path: Path(entry["path"]) for url, entry in files.items()}
    variables = {
        REHEARSAL_ENV: str(manifest),
        "SAMCOURSE_CACHE_DIR": str(out / "cache"),
        "SAMCOURSE_OFFLINE": None,  # the mirror is on this machine's loopback: nothing leaves it
        CUDA_MEMORY_ENV: None if cuda_memory_gib is None else str(cuda_memory_gib),
    }
    notebooks = list(notebooks) if notebooks else harness.find_notebooks()
    with MirrorServer(routes) as server, _environment({**variables, "SAMCOURSE_MIRROR": server.url}):
        per_notebook = SMOKE_PARAMETERS if budget == "smoke" else {}
        runs = harness.run_course("full", notebooks, out_root=out, parameters={"BUDGET": budget},
                                  per_notebook=per_notebook)  # fmt: skip
        hits = {url: server.hits[urlsplit(url).path] for url in files}
    rows = {}
    for run in runs:
        executed = out / f"{run.notebook}.ipynb"
        problems = [] if run.status != "ok" else _problems(executed)
        results = executed.parent / run.notebook / "results.json"
        timing = json.loads(results.read_text()).get("timing", {}) if results.is_file() else {}
        rows[run.notebook] = {
            "status": run.status if not problems else "wrong",
            "wall_s": round(run.wall_s, 1),
            "error": run.error or "; ".join(problems),
            "peak_cuda_mb": timing.get("peak_cuda_mb"),
        }
    unused = [files[url]["label"] for url, n in hits.items() if n == 0] if len(notebooks) == len(
        harness.find_notebooks()) else []  # fmt: skip
    summary = {"budget": budget, "notebooks": rows, "requests": {files[u]["label"]: n for u, n in hits.items()},
               "unused_standins": unused, "wall_s": round(sum(r["wall_s"] for r in rows.values()), 1),
               "ok": all(r["status"] == "ok" for r in rows.values()) and not unused}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if cuda_memory_gib is not None:
        (out / "gpu.json").write_text(json.dumps(_gpu_record(rows, cuda_memory_gib, budget), indent=2))
    return summary


def _gpu_record(rows: dict[str, dict[str, Any]], cap_gib: float, budget: str) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return {"device": name, "memory_cap_gib": cap_gib, "budget": budget,
            "notebooks": {k: {"wall_s": r["wall_s"], "peak_cuda_mb": r["peak_cuda_mb"], "status": r["status"]}
                          for k, r in rows.items()}}  # fmt: skip


def format_summary(summary: dict[str, Any]) -> str:
    """The rehearsal's table: one line per notebook, then what was requested and the verdict."""
    lines = [f"{'notebook':<32} {'status':<7} {'wall':>8}  problem"]
    for name, row in summary["notebooks"].items():
        lines.append(f"{name:<32} {row['status']:<7} {row['wall_s']:>7.1f}s  {row['error'] or '-'}")
    lines.append(f"total {summary['wall_s']:.0f} s at BUDGET={summary['budget']!r}; downloads through the mirror: "
                 + ", ".join(f"{k} x{n}" for k, n in summary["requests"].items()))  # fmt: skip
    if summary["unused_standins"]:
        lines.append(f"never requested (drop them from utils.tools.prefetch?): {', '.join(summary['unused_standins'])}")
    lines.append("REHEARSAL PASSED" if summary["ok"] else "REHEARSAL FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every notebook in full mode against stand-in files.")
    parser.add_argument("--budget", default="smoke", help="smoke (default, CI), offline or full (on a GPU)")
    parser.add_argument("--cuda-memory-gib", type=float, default=None, help="cap CUDA memory, e.g. 15 (a T4)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default outputs/rehearsal)")
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all, in order)")
    args = parser.parse_args(argv)
    summary = rehearse(args.out, args.budget, args.notebooks or None, args.cuda_memory_gib)
    print(format_summary(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""The run: mode, budget, banner and results.json (machine facts are :mod:`utils.machine`).

Every notebook starts with::

    run = start_run("03_zero_shot_medical", mode=MODE, device=DEVICE, seed=SEED)
    run.banner(models=["litemedsam"], data=["Colin27 + AAL"])
    ...
    run.save_results(dice_box=0.83)

Run modes (design §2) say *what* runs: ``full`` (SAM ViT-B and downloadable data), ``offline``
(LiteMedSAM and installable real scans), ``smoke`` (offline at minimal size with a tiny random SAM
where only the code path matters; numbers meaningless) and ``auto``: ``full`` only with a CUDA GPU
and the SAM ViT-B checkpoint cached or its server answering, else ``offline`` (:func:`explain_mode`
says why). Budgets say *how much* runs: ``run.budget(full=..., offline=..., smoke=...)`` picks a size
by the run's budget, which is the mode's own unless ``BUDGET`` asks for another — ``MODE="full",
BUDGET="smoke"`` runs the full path at the smallest sizes (``make rehearse``). ``run.choose(...)``
picks by the mode (models, data).

The environment variables that shape a run are listed in :mod:`utils.machine`.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.machine import (
    cap_cuda_memory,
    cuda_peak,
    get_device,
    in_colab,
    network_available,
    offline_forced,
    output_dir,
    rehearsal_manifest,
    seed_everything,
    to_jsonable,
    write_json_atomic,
)
from utils.models import REGISTRY

MODES = ("auto", "full", "offline", "smoke")
RESOLVED_MODES = ("full", "offline", "smoke")
BUDGETS = RESOLVED_MODES  # run sizes, named after the mode each was made for

__all__ = ["BUDGETS", "MODES", "RunContext", "explain_mode", "resolve_budget", "resolve_mode", "start_run"]


def _sam_checkpoint_cached() -> bool:
    spec = REGISTRY["sam_vit_b"]
    return spec.checkpoint_path().is_file()


_GPU_HINT = "in Colab: Runtime → Change runtime type → T4 GPU, then run again"


def explain_mode(mode: str = "auto", device=None) -> tuple[str, str]:
    """``(resolved mode, why)`` for a requested ``MODE``; ``device`` is the run's (default: auto).

    ``auto`` is ``full`` only where SAM ViT-B is practical — a CUDA GPU — and its checkpoint is
    cached or its server answers; everywhere else ``offline`` (SAM ViT-B's encoder takes about 23 s per
    image on 2 CPU cores, so notebook 05 would run for hours).
    """
    requested = str(mode).strip().lower()
    if requested not in MODES:
        raise ValueError(f"Unknown MODE {mode!r}: choose one of {', '.join(MODES)}.")
    if requested != "auto":
        return requested, f"MODE={requested!r} was asked for"
    import torch

    device = device if isinstance(device, torch.device) else get_device(device or "auto")
    if device.type != "cuda":
        hint = f"; {_GPU_HINT}" if in_colab() else ""
        return "offline", f"no CUDA GPU ({device.type}): SAM ViT-B would take ~23 s per image here{hint}"
    if _sam_checkpoint_cached():
        return "full", "CUDA GPU and the SAM ViT-B checkpoint is cached"
    if offline_forced():
        return "offline", "SAMCOURSE_OFFLINE is set and the SAM ViT-B checkpoint is not cached"
    if network_available(REGISTRY["sam_vit_b"].url):
        return "full", "CUDA GPU and the SAM ViT-B checkpoint's server answers (downloads once, 375 MB)"
    return "offline", "the SAM ViT-B checkpoint is not cached and its server cannot be reached"


def resolve_mode(mode: str = "auto", device=None) -> str:
    """Turn a requested MODE into one of ``full``, ``offline``, ``smoke`` (see :func:`explain_mode`)."""
    return explain_mode(mode, device)[0]


def resolve_budget(budget: str | None, mode: str) -> str:
    """The run's budget: ``auto``/``None`` is the resolved mode's own; else one of :data:`BUDGETS`."""
    requested = "auto" if budget is None else str(budget).strip().lower()
    if requested == "auto":
        return mode
    if requested not in BUDGETS:
        raise ValueError(f"Unknown BUDGET {budget!r}: choose 'auto' (the mode's own) or one of {', '.join(BUDGETS)}.")
    return requested


@dataclass
class RunContext:
    """What one notebook run is: its name, resolved mode, device and seed, plus the results it records."""

    notebook: str
    mode: str
    device: Any
    seed: int
    requested_mode: str = "auto"
    size: str = ""  # the budget: "full", "offline" or "smoke" (default: the mode's own)
    mode_reason: str = ""
    rehearsal: bool = False
    cuda_memory_cap_gib: float | None = None
    models: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size = self.size or self.mode

    @property
    def smoke(self) -> bool:
        return self.mode == "smoke"

    @property
    def results_path(self) -> Path:
        return output_dir(self.notebook, "results.json")

    def budget(self, *, full, offline, smoke):
        """Pick a size by the run's budget: ``n_cases = run.budget(full=50, offline=12, smoke=2)``."""
        return {"full": full, "offline": offline, "smoke": smoke}[self.size]

    def choose(self, *, full, offline, smoke):
        """Pick what runs (a model, a data set) by the mode: ``run.choose(full="sam_vit_b", ...)``."""
        return {"full": full, "offline": offline, "smoke": smoke}[self.mode]

    def banner(self, models: list[str] | None = None, data: list[str] | None = None) -> str:
        """Print (and return) what runs: mode, device, models and data — so a reader always knows."""
        import torch

        if models is not None:
            self.models = list(models)
        if data is not None:
            self.data = list(data)
        device_name = str(self.device)
        if self.device.type == "cuda":
            device_name += f" ({torch.cuda.get_device_name(self.device)})"
        elif self.device.type == "cpu":
            device_name += f" ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
        notes = {
            "full": "SAM ViT-B + downloadable datasets (Colab-sized budgets)",
            "offline": "no network: LiteMedSAM (real weights) + bundled real scans and phantoms",
            "smoke": "CI-sized run: tiny budgets, numbers are MEANINGLESS",
        }
        if self.cuda_memory_cap_gib is not None:
            device_name += f", memory capped at {self.cuda_memory_cap_gib:g} GiB"
        lines = [
            f"notebook : {self.notebook}",
            f"mode     : {self.mode} (requested {self.requested_mode!r}) — {notes[self.mode]}",
            f"why      : {self.mode_reason or '-'}",
            f"budget   : {self.size}" + ("" if self.size == self.mode else " (smaller than the mode's own sizes)"),
            f"device   : {device_name}",
            f"models   : {', '.join(self.models) if self.models else '-'}",
            f"data     : {', '.join(self.data) if self.data else '-'}",
            f"seed     : {self.seed}",
            f"python   : {platform.python_version()}, torch {torch.__version__}, colab={in_colab()}",
        ]
        if self.rehearsal:
            lines.insert(0, "REHEARSAL: STAND-IN FILES (RANDOM WEIGHTS, SYNTHETIC IMAGES), EVERY NUMBER MEANINGLESS")
        width = max(len(line) for line in lines)
        text = "\n".join(["=" * width, *lines, "=" * width])
        print(text)
        return text

    def save_results(self, **numbers: Any) -> Path:
        """Merge ``numbers`` into this run's results and (re)write ``outputs/<notebook>/results.json``.

        Re-running a cell overwrites its keys rather than appending, so a notebook executed twice in
        one kernel writes the same file.
        """
        self.results.update(numbers)
        return self._write()

    def save_timing(self, **seconds: Any) -> Path:
        """Record wall-clock measurements (latencies, step times) in results.json's ``timing`` section.

        They are kept apart from ``results`` because they change from run to run: the same notebook
        run twice gives identical ``results`` (a test checks it), but not identical timings.
        """
        self.timing.update(seconds)
        return self._write()

    def _write(self) -> Path:
        payload = {
            "notebook": self.notebook,
            "mode": self.mode,
            "requested_mode": self.requested_mode,
            "mode_reason": self.mode_reason,
            "budget": self.size,
            "rehearsal": self.rehearsal,
            "device": str(self.device),
            "seed": self.seed,
            "models": self.models,
            "data": self.data,
            "results": self.results,
            "timing": {**self.timing, **cuda_peak(self.device)},
        }
        write_json_atomic(self.results_path, to_jsonable(payload))
        return self.results_path


def start_run(
    notebook: str, mode: str = "auto", device: str | None = "auto", seed: int = 0, budget: str | None = "auto"
) -> RunContext:
    """Resolve mode, budget and device, seed everything, and return the notebook's :class:`RunContext`."""
    if not notebook or any(sep in notebook for sep in "/\\") or notebook.endswith(".ipynb"):
        raise ValueError(f"notebook must be the notebook's stem, e.g. '00_setup'; got {notebook!r}.")
    torch_device = get_device(device)
    resolved, reason = explain_mode(mode, torch_device)
    size = resolve_budget(budget, resolved)
    cap = cap_cuda_memory(torch_device)
    rehearsal = rehearsal_manifest() is not None
    seed_everything(seed)
    return RunContext(
        notebook=notebook, mode=resolved, device=torch_device, seed=int(seed), requested_mode=mode, size=size,
        mode_reason=reason, rehearsal=rehearsal, cuda_memory_cap_gib=cap,
    )  # fmt: skip

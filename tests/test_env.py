"""utils.env: device, seeding, folders, run-mode resolution, results.json and the banner."""

import json
import time

import numpy as np
import pytest
import torch

from utils import env, machine


def test_resolve_mode(tmp_path, monkeypatch):
    import utils.models  # noqa: F401  (imported up front so the timing below measures the network decision)

    cuda = torch.device("cuda")  # explain_mode only reads the device's type: no GPU needed
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    for mode in ("full", "offline", "smoke"):
        assert env.resolve_mode(mode) == mode
    start = time.perf_counter()
    assert env.resolve_mode("auto", cuda) == "offline"  # nothing cached, network forbidden
    assert time.perf_counter() - start < 1.0
    checkpoint = tmp_path / "models" / "sam_vit_b_01ec64.pth"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"x")
    assert env.resolve_mode("auto", cuda) == "full"  # a cached checkpoint means full (its hash is checked on load)
    with pytest.raises(ValueError, match="Unknown MODE 'fast'"):
        env.resolve_mode("fast")


def test_auto_is_offline_without_cuda_even_with_checkpoint_and_network(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SAMCOURSE_OFFLINE", raising=False)
    monkeypatch.setattr(env, "network_available", lambda *a, **k: True)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    mode, why = env.explain_mode("auto", torch.device("cpu"))
    assert mode == "offline" and "no CUDA GPU" in why and "Runtime" not in why
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")  # in Colab the reason says how to get a GPU
    assert "Runtime → Change runtime type" in env.explain_mode("auto", torch.device("cpu"))[1]
    (tmp_path / "models" / "sam_vit_b_01ec64.pth").unlink()
    assert env.explain_mode("auto", torch.device("cuda")) == (
        "full",
        "CUDA GPU and the SAM ViT-B checkpoint's server answers (downloads once, 375 MB)",
    )
    monkeypatch.setattr(env, "network_available", lambda *a, **k: False)
    mode, why = env.explain_mode("auto", torch.device("cuda"))
    assert mode == "offline" and "cannot be reached" in why
    if not torch.cuda.is_available():  # the real default device here: make course on a CPU runs offline
        assert env.resolve_mode("auto") == "offline"


def test_budget_is_separate_from_the_mode(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path))
    run = env.start_run("99_demo", mode="offline", device="cpu", budget="smoke")
    assert (run.mode, run.size) == ("offline", "smoke")
    assert run.budget(full=100, offline=10, smoke=2) == 2  # sizes follow the budget
    assert run.choose(full="sam_vit_b", offline="litemedsam", smoke="tiny_sam") == "litemedsam"  # models the mode
    assert "budget   : smoke (smaller than the mode's own sizes)" in run.banner()
    assert env.start_run("99_demo", mode="offline", device="cpu").size == "offline"  # auto: the mode's own
    assert json.loads(run.save_results(x=1).read_text())["budget"] == "smoke"
    with pytest.raises(ValueError, match="Unknown BUDGET 'huge'"):
        env.start_run("99_demo", mode="offline", device="cpu", budget="huge")


def test_rehearsal_switch_is_explicit_and_loud(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path))
    monkeypatch.delenv(machine.REHEARSAL_ENV, raising=False)
    assert machine.rehearsal_manifest() is None and not env.start_run("99_demo", mode="smoke").rehearsal
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"files": {"https://x/y.npz": {"hash": "md5:" + "0" * 32, "size": 3}}}))
    monkeypatch.setenv(machine.REHEARSAL_ENV, str(manifest))
    assert machine.rehearsal_manifest() == {"https://x/y.npz": {"hash": "md5:" + "0" * 32, "size": 3}}
    run = env.start_run("99_demo", mode="full", device="cpu", budget="smoke")
    assert run.rehearsal and "REHEARSAL: STAND-IN FILES" in run.banner().splitlines()[1]
    assert json.loads(run.save_results(x=1).read_text())["rehearsal"] is True
    manifest.write_text("{not json")
    with pytest.raises(ValueError, match="rehearsal manifest"):
        machine.rehearsal_manifest()


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

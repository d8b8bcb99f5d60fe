"""Determinism: a smoke run repeated gives identical results; a notebook re-run in one kernel is safe."""

import json

import pytest
from nbclient import NotebookClient
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from utils.machine import output_dir
from utils.tools import harness

STEM = "00_setup"


def _deterministic(payload: dict) -> dict:
    return {k: v for k, v in payload.items() if k != "timing"}  # timings are measurements, not results


@pytest.mark.notebooks
def test_same_smoke_run_twice_gives_identical_results(tmp_path, smoke_run):
    first = smoke_run(STEM)
    assert first.status == "ok", first.error
    path = next(p for p in harness.find_notebooks() if p.stem == STEM)
    again = harness.run_notebook(path, mode="smoke", out_root=tmp_path, parameters={"SOLUTIONS": True})
    assert again.status == "ok", again.error
    a = json.loads((output_dir("smoke") / STEM / "results.json").read_text())
    b = json.loads((tmp_path / STEM / "results.json").read_text())
    assert _deterministic(a) == _deterministic(b)
    assert a["timing"].keys() == b["timing"].keys()


@pytest.mark.notebooks
def test_notebook_rerun_in_the_same_kernel(tmp_path, monkeypatch):
    """Run every cell twice in one kernel (what a student does with Run All, twice)."""
    monkeypatch.setenv("SAMCOURSE_OUTPUT_DIR", str(tmp_path))
    path = next(p for p in harness.find_notebooks() if p.stem == STEM)
    nb = parameterize_notebook(load_notebook_node(str(path)), {"MODE": "smoke"})
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    payloads = []
    with client.setup_kernel():
        for _ in range(2):
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)  # raises CellExecutionError on any failure
            payloads.append(json.loads((tmp_path / STEM / "results.json").read_text()))
    assert _deterministic(payloads[0]) == _deterministic(payloads[1])
    # a fresh predictor each run, not double-counted: one untimed warm-up pass and the timed one
    assert payloads[1]["results"]["first_segmentation"]["encoder_calls"] == 2

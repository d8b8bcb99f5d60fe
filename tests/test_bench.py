"""benchmarks/bench.py runs end to end (quick mode) and writes a report whose numbers hang together."""

import importlib.util
import json
import subprocess
import sys

import torch

from utils.machine import repo_root

BENCH = repo_root() / "benchmarks" / "bench.py"


def test_quick_bench_writes_consistent_report(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "results.json").read_text())
    (row,) = report["models"]
    assert row["model"] == "tiny_sam" and row["encoder_gflop"] > 0 and row["encoder_ms"] > 0
    # measured/floor is the measured time over FLOPs / matmul rate
    floor_ms = row["encoder_gflop"] * 1e9 / (report["floor_tflops"] * 1e12) * 1000
    assert abs(row["floor_ms"] - floor_ms) < 1e-6 * max(1.0, floor_ms)
    assert abs(row["measured_over_floor"] - row["encoder_ms"] / row["floor_ms"]) < 1e-6 * row["measured_over_floor"]
    decoder_floor_s = row["decoder_gflop"] * 1e9 / (report["floor_tflops"] * 1e12)
    assert row["decoder_gflop"] > 0
    decoder_ratio = row["decoder_ms"] / 1000 / decoder_floor_s
    assert abs(row["decoder_over_floor"] - decoder_ratio) < 1e-6 * decoder_ratio
    assert "| tiny_sam |" in (tmp_path / "RESULTS.md").read_text()


def test_unknown_section_is_refused_with_the_choices(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH), "--sections", "models,speed", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and not (tmp_path / "results.json").exists()
    assert "unknown ['speed']" in result.stderr and "models,speedups,evaluate,playground,adaptation" in result.stderr


def test_readme_shows_the_committed_bench_table_with_date_and_device():
    table = (repo_root() / "benchmarks" / "RESULTS.md").read_text().strip()
    assert table.startswith("Measured 20") and " on " in table.splitlines()[0]
    assert table in (repo_root() / "README.md").read_text(), "copy benchmarks/RESULTS.md into README's speed section"


def _bench_module():
    spec = importlib.util.spec_from_file_location("course_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_playground_section_times_both_decoders_on_both_paths_and_reports_them():
    bench = _bench_module()
    row = bench.bench_playground(torch.device("cpu"), model="tiny_sam", rounds=2)
    assert row["model"] == "tiny_sam" and row["rounds"] == 2 and row["first_mask_ms"] > 0
    for key in ("reprompt_ms", "reprompt_predict_ms", "widget_reprompt_ms", "widget_reprompt_predict_ms"):
        assert row[key] > 0, key
    assert row["reprompt_speedup_min"] <= row["reprompt_speedup"] <= row["reprompt_speedup_max"]
    assert row["widget_redraw_ms"] > 0 and row["widget_frontend"] in ("click", "sliders")
    text = bench.markdown({"date": "2026-01-01", "device_name": "CPU", "gpu": False, "floor_tflops": 0.1,
                           "floor_dtype": "float32", "playground": row})  # fmt: skip
    expected = f"re-prompt {row['reprompt_ms']:.0f} ms ({row['reprompt_predict_ms']:.0f} ms with `predictor.predict`"
    assert expected in text
    assert f"paired ratio {row['reprompt_speedup']:.2f}×" in text and "redraw alone" in text

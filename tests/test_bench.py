"""benchmarks/bench.py runs end to end (quick mode) and writes a report whose numbers hang together."""

import json
import subprocess
import sys

from utils.env import repo_root


def test_quick_bench_writes_consistent_report(tmp_path):
    result = subprocess.run(
        [sys.executable, str(repo_root() / "benchmarks" / "bench.py"), "--quick", "--out", str(tmp_path)],
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
    assert "| tiny_sam |" in (tmp_path / "RESULTS.md").read_text()

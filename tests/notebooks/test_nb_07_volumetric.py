"""Notebook 07 (3-D with a 2-D model), run in smoke mode: results.json holds what the prose relies on.

Smoke numbers are meaningless (one structure on a 5-slice slab), so these tests check the structure of
the results and that every printed claim is computed from the per-structure numbers it summarises.
"""

from __future__ import annotations

import numpy as np
import pytest

from utils.lessons.volumetric import STOP_REASONS

pytestmark = pytest.mark.notebooks
METHODS = ("propagation", "in_range", "upper_bound")


@pytest.fixture(scope="module")
def body(smoke_results):
    results = smoke_results("07_volumetric")
    assert results["mode"] == "smoke" and results["models"] == ["litemedsam"]
    return results["results"]


def test_per_structure_3d_scores_for_propagation_and_upper_bound(body):
    structures = body["structures"]
    assert list(structures) == ["thalamus"]  # smoke: one structure
    for report in structures.values():
        for method in METHODS:
            assert 0.0 <= report[f"{method}_dice3d"] <= 1.0
            assert report["hd95_mm"][method] >= 0.0
            assert report["volume_ml"][method] >= 0.0
        assert report["gap"] == pytest.approx(report["upper_bound_dice3d"] - report["propagation_dice3d"])
        assert set(report["stopped_because"]) == {"down", "up"}
        assert set(report["stopped_because"].values()) <= set(STOP_REASONS)
        first, last = report["gt_slices"]
        assert first <= report["start_slice"] <= last
        assert 1 <= report["slices_propagated"] <= 5  # the smoke slab holds 5 slices
        assert report["volume_ml"]["ground_truth"] > 0
        # LiteMedSAM with ground-truth boxes on the thalamus: real weights, a real number (0.85 measured)
        assert report["upper_bound_dice3d"] > 0.5


def test_claims_are_computed_from_the_per_structure_numbers(body):
    structures, claims = body["structures"], body["claims"]
    gaps = {name: r["gap"] for name, r in structures.items()}
    assert claims["mean_gap"] == pytest.approx(np.mean(list(gaps.values())))
    assert claims["largest_gap"] == pytest.approx(max(gaps.values()))
    assert claims["largest_gap_structure"] == max(gaps, key=gaps.get)
    assert claims["propagation_below_upper_bound_everywhere"] == all(g > 0 for g in gaps.values())
    gains = [r["in_range_dice3d"] - r["propagation_dice3d"] for r in structures.values()]
    assert claims["mean_in_range_gain"] == pytest.approx(np.mean(gains))
    assert claims["structures_with_overshoot"] == sum(r["overshoot_slices"] > 0 for r in structures.values())
    headline = body["headline"]
    assert headline["mean_gap"] == pytest.approx(claims["mean_gap"])
    assert headline["mean_upper_bound_dice3d"] == pytest.approx(
        np.mean([r["upper_bound_dice3d"] for r in structures.values()])
    )


def test_normalisation_comparison_holds_both_windows_and_their_difference(body):
    norm = body["normalisation"]
    assert norm["percentiles"] == [1.0, 99.0]
    assert set(norm["structures"]) == {"thalamus"}
    for name, windows in norm["structures"].items():
        assert set(windows) == {"per volume", "per slice"}
        for method in ("propagation", "upper_bound"):
            expected = windows["per slice"][f"{method}_dice3d"] - windows["per volume"][f"{method}_dice3d"]
            assert norm["change"][name][method] == pytest.approx(expected)
    assert norm["grey_level_shift"]["min"] <= norm["grey_level_shift"]["max"]


def test_each_slice_is_encoded_once(body):
    encoder = body["encoder"]
    assert encoder["calls"] == encoder["cache_misses"]
    # smoke: 5 slab slices, plus the 3 central slices again under the per-slice window
    assert encoder["calls"] <= 8 and encoder["cache_hits"] > encoder["calls"]


def test_exercises_pass_with_solutions(body):
    exercises = body["exercises"]
    assert exercises["passed"] == exercises["total"] >= 3
    assert set(exercises["status"]) == {"07.next_box", "07.stop_rule", "07.volume_ml", "07.slice_window"}

"""Notebook 02 (prompting SAM): what its results.json must hold, and the claims its prose makes."""

import json

import pytest

from utils import models
from utils.machine import output_dir

STEM = "02_prompting_sam"


@pytest.fixture(scope="module")
def results(smoke_results):
    return smoke_results(STEM)


@pytest.mark.notebooks
def test_exercises_pass_with_the_reference_solutions(results):
    exercises = results["results"]["exercises"]
    assert exercises["passed"] == exercises["total"] == 4
    assert exercises["kinds"] == {"check": 2, "predict": 1, "build": 1}


@pytest.mark.notebooks
def test_scripted_playground_edits_never_run_the_encoder(results):
    playground = results["results"]["playground"]
    assert playground["n_edits"] >= 5
    assert playground["encoder_calls_after"] == playground["encoder_calls_before"]
    assert playground["case_switch_encoder_calls"] == 1  # a new image once; going back is free
    assert playground["frontend"] in ("click", "sliders")
    assert results["results"]["headline"]["encoder_calls_in_edits"] == 0
    timing = results["timing"]["playground"]  # latencies vary from run to run: kept apart from the results
    assert len(timing["reprompt_ms"]) == playground["n_edits"]
    assert 0 < timing["reprompt_ms_median"] and 0 < timing["first_mask_ms"] and 0 < timing["render_ms_median"]
    assert results["timing"]["encoder_s"] > 0
    assert set(results["timing"]["amg_s"]) == set(results["results"]["amg"]["runs"])


@pytest.mark.notebooks
def test_results_hold_every_number_the_prose_uses(results):
    body = results["results"]
    assert set(body["point_vs_box"]) == {"1 point", "3 points", "box", "n_cases"}
    for prompt in ("1 point", "3 points", "box"):
        assert set(body["prompt_comparison"][prompt]) == {"single", "iou_head", "oracle"}
        row = body["prompt_comparison"][prompt]
        assert row["iou_head"] <= row["oracle"] + 1e-9  # the oracle is the best of the three by definition
    head = body["iou_head_vs_oracle"]
    assert 0 <= head["head_picks_oracle"] <= 1 and head["oracle_gain"] >= 0
    assert len(head["demo_scores"]) == len(head["demo_dice"]) == 3
    assert set(body["mask_prompt"]) == {"box", "previous mask alone", "box + previous mask"}
    assert set(body["amg"]["runs"]) == {"default filters", "filters off"}
    for key in ("box_dice", "box_dice_iou_head", "box_dice_best_of_three", "points_dice"):
        assert 0 <= body["playground"][key] <= 1
    assert body["playground"]["box_dice_best_of_three"] >= body["playground"]["box_dice_iou_head"]
    # the printed spread of the three readings of one box is their range
    readings = [body["playground"][key] for key in ("box_dice", "box_dice_iou_head", "box_dice_best_of_three")]
    assert body["playground"]["spread"] == pytest.approx(max(readings) - min(readings))


@pytest.mark.notebooks
def test_litemedsam_claims_the_prose_prints(results):
    """Smoke runs LiteMedSAM on the offline running example: the sentences printed for it hold there."""
    assert results["models"] == ["litemedsam"]
    assert models.model_card("litemedsam")["multimask"] is False  # → "outputs 1-3 were never trained"
    runs = results["results"]["amg"]["runs"]
    assert runs["default filters"]["n_masks"] == 0  # → "the default filters keep nothing"
    assert runs["filters off"]["n_masks"] > 0  # …while the same grid gives proposals without them


@pytest.mark.notebooks
def test_litemedsam_box_beats_a_point_on_the_running_example(results):
    """Smoke runs LiteMedSAM on the same slice as offline mode, so this number is real (not tiny_sam's)."""
    assert results["models"] == ["litemedsam"]
    demo = results["results"]["demo"]["dice"]
    assert demo["box"] > 0.6 > 0.1 > demo["1 positive point"]  # measured 0.654 and 0.007


def test_offline_run_shows_boxes_beat_points():
    """The prose's claim on the offline run that `make course` wrote (skipped when there is none)."""
    path = output_dir(STEM, "results.json")
    if not path.is_file():
        pytest.skip(f"no offline run of {STEM} yet (make course writes {path})")
    results = json.loads(path.read_text())
    if results["mode"] != "offline":
        pytest.skip(f"{path} is from a {results['mode']} run")
    point_vs_box = results["results"]["point_vs_box"]
    assert point_vs_box["n_cases"] >= 8
    assert point_vs_box["1 point"] < 0.1  # LiteMedSAM was trained with boxes only
    assert point_vs_box["box"] > point_vs_box["1 point"] + 0.4

"""Notebook 01 (SAM's architecture): what its results.json claims, checked after a smoke run.

The parameter counts and ViT-B shapes come from meta-device models, so they are exact in every mode.
Timing in smoke mode is a single encoder pass: only its presence and sign are checked there; the
"decoder much cheaper than encoder" claim is checked on an offline or full run when one exists.
"""

import json

import pytest

from utils.lessons import anatomy
from utils.machine import output_dir

STEM = "01_sam_architecture"


@pytest.fixture(scope="module")
def results(smoke_results):
    payload = smoke_results(STEM)
    assert payload["mode"] == "smoke"
    return payload


@pytest.fixture(scope="module")
def body(results):
    return results["results"]


@pytest.mark.notebooks
def test_parameter_counts_are_live_and_equal_the_published_ones(body):
    counts = body["parameters"]
    assert counts["sam_vit_b"] == {
        "image_encoder": 89_670_912,
        "prompt_encoder": 6_220,
        "mask_decoder": 4_058_340,
        "total": 93_735_472,
    }
    for model, published in anatomy.PUBLISHED_PARAMS.items():
        for component, text in published.items():
            assert anatomy.matches_published(counts[model][component], text), (model, component)
            assert body["published_match"][f"{model}/{component}"] is True
    assert body["params_match_published"] is True
    # the prose: LiteMedSAM keeps SAM's prompt encoder and decoder around a 5.7M-parameter TinyViT
    assert counts["litemedsam"]["mask_decoder"] == 4_058_340 and counts["litemedsam"]["prompt_encoder"] == 6_220
    assert round(counts["litemedsam"]["image_encoder"] / 1e6, 1) == 5.7
    assert body["headline"]["vit_b_params"] == 93_735_472 and body["headline"]["params_match"] is True
    assert body["headline"]["image_embedding"] == "256×64×64"


@pytest.mark.notebooks
def test_vit_b_shapes_from_the_meta_trace(body):
    shapes = body["vit_b_shapes"]
    assert shapes["image_embedding"] == [256, 64, 64]
    assert shapes["sparse_embedding"] == [2, 256]
    assert shapes["dense_embedding"] == [256, 64, 64]
    assert shapes["decoder_tokens"] == [7, 256]
    assert shapes["low_res_masks"] == [3, 256, 256]
    assert shapes["iou_head"] == [4]
    assert body["vit_b_global_blocks"] == [2, 5, 8, 11]
    # the trained model (LiteMedSAM in smoke) hands the decoder the same interface
    trained = body["trained_model_shapes"]
    for key in ("image_embedding", "sparse_embedding", "dense_embedding", "low_res_masks"):
        assert trained[key] == shapes[key], key


@pytest.mark.notebooks
def test_mask_tokens_are_real_outputs(body):
    tokens = body["mask_tokens"]
    assert len(tokens["iou_predictions"]) == len(tokens["dice"]) == 4
    assert tokens["iou_head_pick"] in (1, 2, 3)
    assert max(tokens["dice"]) > 0.5  # LiteMedSAM with a box on a real brain structure (measured 0.83)


@pytest.mark.notebooks
def test_timing_numbers_exist_and_are_positive(results):
    timing = results["timing"]  # measurements live apart from the (deterministic) results
    for key in ("encoder_s", "prompt_encoder_ms", "mask_decoder_ms", "decoder_ms", "speedup"):
        assert timing[key] > 0, key
    assert timing["speedup"] == pytest.approx(1000 * timing["encoder_s"] / timing["decoder_ms"])
    assert timing["n_prompts"] == 5 and timing["repeats"] == 1  # smoke budgets
    assert "timing" not in results["results"] and "encoder_s" not in results["results"]["headline"]


@pytest.mark.notebooks
def test_all_exercises_pass_with_the_reference_solutions(body):
    summary = body["exercises"]
    assert summary["passed"] == summary["total"] == 5
    assert summary["kinds"] == {"check": 3, "predict": 1, "build": 1}


@pytest.mark.notebooks
def test_the_flop_counts_behind_the_prediction(body):
    """Exercise 5's basis: LiteMedSAM (smoke) ~75 GFLOP per image, ~3.6 per box prompt (benchmarks/RESULTS.md)."""
    gflop = body["stage_gflop"]
    assert gflop["model"] == "litemedsam"
    assert gflop["image_encoder"] == pytest.approx(74.9, abs=0.1)
    assert gflop["prompt_to_mask"] == pytest.approx(3.62, abs=0.01)


def test_an_offline_or_full_run_shows_embed_once_pays_off():
    """After `make course` (offline or full), the decoder per prompt must be far cheaper than the encoder."""
    path = output_dir(STEM, "results.json")
    if not path.is_file():
        pytest.skip(f"no {path}: run `make course` (or the harness in offline mode) first")
    payload = json.loads(path.read_text())
    if payload["mode"] == "smoke":
        pytest.skip("only a smoke run is there; its timing is a single pass")
    timing = payload["timing"]
    assert timing["decoder_ms"] < 1000 * timing["encoder_s"] / 5
    assert timing["speedup"] > 5

"""Tests for utils.evaluate: the harness (prompts, choices, oracle, encoder calls, seeds) and its summaries."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from utils import evaluate as ev
from utils import phantoms
from utils.datasets import Case
from utils.prompts import PROMPT_MODES, make_prompt

from fakes import LookupPredictor, blob_case, run_teaching_cells

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def phantom_cases():
    return [phantoms.make_phantom(style, seed=1, size=128) for style in ("ultrasound", "ct", "endoscopy")]


# ----------------------------------------------------------------------------------------- evaluate


def test_a_perfect_predictor_scores_dice_1_and_hd95_0_in_every_prompt_mode():
    cases = [blob_case("a"), blob_case("b", center=(30, 40), radius=6, spacing=(0.5, 0.7))]
    predictor = LookupPredictor(cases)
    df = ev.evaluate(predictor, cases, PROMPT_MODES, progress=False)
    assert len(df) == len(cases) * len(PROMPT_MODES)
    assert list(df.columns[: len(ev.COLUMNS)]) == list(ev.COLUMNS)
    assert (df["dice"] == 1.0).all() and (df["iou"] == 1.0).all()
    assert (df["hd95"] == 0.0).all() and (df["nsd"] == 1.0).all()
    assert (df["dice_oracle"] == 1.0).all()
    assert (df["pred_area"] == df["gt_area"]).all()
    assert df.attrs["encoder_calls"] == predictor.encoder_calls == len(cases)


def test_multimask_policy_choice_and_prompt_columns():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case]), [case], PROMPT_MODES, progress=False).set_index("mode")
    for mode in ("point_center", "point_random"):
        assert df.loc[mode, "multimask"] and df.loc[mode, "choice"] == "iou_head"
        assert df.loc[mode, "n_candidates"] == 3 and df.loc[mode, "chosen_index"] == 0  # highest score
    for mode in ("points_3", "points_5", "box", "box_jitter_5", "box_jitter_10", "box_jitter_20"):
        assert not df.loc[mode, "multimask"] and df.loc[mode, "choice"] == "single"
        assert df.loc[mode, "n_candidates"] == 1 and df.loc[mode, "oracle_index"] == 0
    assert df["n_points"].to_dict() == {
        "point_center": 1, "point_random": 1, "points_3": 3, "points_5": 5,
        "box": 0, "box_jitter_5": 0, "box_jitter_10": 0, "box_jitter_20": 0,
    }  # fmt: skip
    assert df.loc["box", "prompt_box"] == (19.0, 11.0, 37.0, 29.0)  # tight box of the disc, (x0, y0, x1, y1)
    assert df.loc["box", "prompt_points"] is None
    assert len(df.loc["points_5", "prompt_points"]) == 5 and df.loc["points_5", "prompt_labels"] == (1,) * 5
    x, y = df.loc["point_center", "prompt_points"][0]
    assert case.mask[int(y), int(x)]  # the point lies inside the object
    overridden = ev.evaluate(LookupPredictor([case]), [case], ["box"], progress=False, multimask={"box": True})
    assert overridden.loc[0, "choice"] == "iou_head" and overridden.loc[0, "n_candidates"] == 3


@pytest.mark.parametrize("name", ["sam_vit_b", "litemedsam", "medsam_vit_b", "my_predictor"])
def test_each_model_is_asked_with_the_output_convention_it_was_trained_with(name):
    case = blob_case("a")
    predictor = LookupPredictor([case])
    predictor.name = name  # the card of this model name decides (unknown names: SAM's convention)
    asked, predict = [], predictor.predict

    def recording_predict(**prompt):
        asked.append(prompt["multimask_output"])
        return predict(**prompt)

    predictor.predict = recording_predict
    df = ev.evaluate(predictor, [case], PROMPT_MODES, progress=False)
    three_masks = name in ("sam_vit_b", "my_predictor")  # SAM: 3 masks for one point; LiteMedSAM, MedSAM: 1
    expected = [three_masks and mode in ("point_center", "point_random") for mode in PROMPT_MODES]
    assert asked == expected and df["multimask"].tolist() == expected
    assert df["choice"].tolist() == ["iou_head" if e else "single" for e in expected]
    assert df.attrs["trained_multimask"] is three_masks
    if three_masks:
        assert set(ev.oracle_gap(df).index.get_level_values("mode")) == {"point_center", "point_random"}
    else:  # one trained output: nothing to choose, so no IoU-head-vs-oracle rows
        assert (df["n_candidates"] == 1).all() and (df["dice_oracle"] == df["dice"]).all()
        with pytest.raises(ValueError, match="No multimask rows"):
            ev.oracle_gap(df)
    explicit = ev.evaluate(predictor, [case], ["point_center"], progress=False, trained_multimask=not three_masks)
    assert explicit.loc[0, "multimask"] is not three_masks  # the explicit setting wins over the card


def test_multimask_policy_per_convention_and_overrides():
    assert ev.multimask_policy() == ev.MULTIMASK
    assert not any(ev.multimask_policy(trained_multimask=False).values())
    assert ev.multimask_policy(False, {"box": True}) == {**dict.fromkeys(PROMPT_MODES, False), "box": True}
    with pytest.raises(ValueError, match="trained_multimask"):
        ev.evaluate(LookupPredictor([blob_case("a")]), [blob_case("a")], ["box"], trained_multimask="no")


def test_everything_mode_asks_a_single_output_model_for_one_mask_per_grid_point(
    tiny_predictor, phantom_cases, monkeypatch
):
    asked, predict_torch = [], tiny_predictor.predict_torch

    def recording_predict_torch(*args, **kwargs):
        asked.append(kwargs["multimask_output"])
        return predict_torch(*args, **kwargs)

    monkeypatch.setattr(tiny_predictor, "predict_torch", recording_predict_torch)
    amg = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}
    cases = phantom_cases[:1]
    one = ev.evaluate(tiny_predictor, cases, ["everything"], amg_kwargs=amg, progress=False, trained_multimask=False)
    assert asked and not any(asked) and not one.loc[0, "multimask"]
    assert 1 <= one.loc[0, "n_candidates"] <= 4  # at most one mask per grid point
    asked.clear()
    three = ev.evaluate(tiny_predictor, cases, ["everything"], amg_kwargs=amg, progress=False, trained_multimask=True)
    assert asked and all(asked) and three.loc[0, "multimask"] and three.loc[0, "n_candidates"] > 4


def teaching_loop() -> dict:
    """Notebook 03's evaluation loop by hand: its import cell and the cells tagged "teaching", executed."""
    return run_teaching_cells("03_zero_shot_medical", "from utils import", "evaluate")


@pytest.mark.parametrize("trained_multimask", [True, False])
def test_the_notebooks_loop_by_hand_gives_the_harness_scores(tiny_predictor, phantom_cases, trained_multimask):
    by_hand = teaching_loop()["evaluate_by_hand"](tiny_predictor, phantom_cases, PROMPT_MODES, 4, trained_multimask)
    library = ev.evaluate(tiny_predictor, phantom_cases, PROMPT_MODES, seed=4, progress=False,
                          trained_multimask=trained_multimask)  # fmt: skip
    paired = by_hand.merge(library, on=["case", "mode"], suffixes=("_by_hand", ""))
    assert len(paired) == len(library) == len(phantom_cases) * len(PROMPT_MODES)
    for metric in ("dice", "iou"):
        np.testing.assert_allclose(paired[f"{metric}_by_hand"], paired[metric], atol=1e-12)
    assert paired["dice"].nunique() > 1  # the random tiny SAM gives different masks: the comparison has teeth


def test_the_loop_by_hand_reports_the_iou_heads_pick_as_the_harness_does():
    case = blob_case("a")
    predictor = LookupPredictor([case], misrank=True)  # the IoU head ranks an empty mask first
    by_hand = teaching_loop()["evaluate_by_hand"](predictor, [case], ["point_center", "box"], 0, True)
    library = ev.evaluate(predictor, [case], ["point_center", "box"], progress=False)
    assert by_hand["dice"].tolist() == library["dice"].tolist() == [0.0, 1.0]


def test_oracle_beats_a_misranking_iou_head():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case], misrank=True), [case], ["point_center"], progress=False)
    row = df.iloc[0]
    assert row["chosen_index"] == 0 and row["dice"] == 0.0 and row["iou_pred"] == pytest.approx(0.95)
    assert row["oracle_index"] == 1 and row["dice_oracle"] == 1.0 and row["iou_oracle"] == 1.0
    assert row["hd95"] == pytest.approx(np.hypot(*case.mask.shape))  # empty prediction: the image diagonal
    gap = ev.oracle_gap(df)
    assert gap.loc[("lookup", "point_center"), "gap"] == 1.0
    assert gap.loc[("lookup", "point_center"), "wrong_pick"] == 1.0


def test_tiny_sam_oracle_is_never_below_the_iou_head_and_the_encoder_runs_once_per_image(tiny_predictor, phantom_cases):
    before = tiny_predictor.encoder_calls
    df = ev.evaluate(tiny_predictor, phantom_cases, ev.MODES, seed=3, progress=False, amg_kwargs={"points_per_side": 2})
    encoder_calls = tiny_predictor.encoder_calls - before
    assert encoder_calls == len(phantom_cases) == df.attrs["encoder_calls"]  # everything included
    assert len(df) == len(phantom_cases) * len(ev.MODES)
    assert (df["dice_oracle"] >= df["dice"]).all() and (df["iou_oracle"] >= df["iou"]).all()
    single = df["choice"] == "single"
    assert (df.loc[single, "dice_oracle"] == df.loc[single, "dice"]).all()
    every = df[df["mode"] == "everything"]
    assert (every["choice"] == "best_match").all() and (every["n_points"] == 4).all()
    assert (every["chosen_index"] == every["oracle_index"]).all()
    assert df[["dice", "iou", "nsd"]].apply(lambda s: s.between(0, 1)).all().all()
    assert df.attrs["amg_kwargs"] == {"points_per_side": 2}


def test_everything_mode_counts_crop_embeddings_honestly(tiny_predictor, phantom_cases):
    # crop_n_layers=1 adds 4 crops per image; each crop is a real, counted encoder call
    before = tiny_predictor.encoder_calls
    amg = {"points_per_side": 2, "crop_n_layers": 1}
    ev.evaluate(tiny_predictor, phantom_cases[:1], ["everything"], progress=False, amg_kwargs=amg)
    assert tiny_predictor.encoder_calls - before == 1 + 4


def test_results_are_reproducible_and_do_not_depend_on_case_order(tiny_predictor, phantom_cases):
    modes = ["point_random", "box_jitter_10", "box"]
    first = ev.evaluate(tiny_predictor, phantom_cases, modes, seed=5, progress=False)
    again = ev.evaluate(tiny_predictor, phantom_cases, modes, seed=5, progress=False)
    pd.testing.assert_frame_equal(first, again)
    reversed_order = ev.evaluate(tiny_predictor, phantom_cases[::-1], modes, seed=5, progress=False)
    key = ["case", "mode"]
    pd.testing.assert_frame_equal(
        first.sort_values(key).reset_index(drop=True), reversed_order.sort_values(key).reset_index(drop=True)
    )
    other = ev.evaluate(tiny_predictor, phantom_cases, modes, seed=6, progress=False)
    jittered = first["mode"] != "box"
    assert (first.loc[jittered, "prompt_box"].fillna(0) != other.loc[jittered, "prompt_box"].fillna(0)).any()
    assert (first["prompt_box"][~jittered] == other["prompt_box"][~jittered]).all()  # no randomness in "box"


def test_make_prompt_matches_what_evaluate_used():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case]), [case], ["point_random", "box_jitter_20"], seed=2, progress=False)
    prompt = make_prompt(case, "box_jitter_20", seed=2)
    assert tuple(prompt["box"]) == df.loc[1, "prompt_box"] and prompt["point_coords"] is None
    points = make_prompt(case, "point_random", seed=2)
    assert tuple(map(tuple, points["point_coords"])) == df.loc[0, "prompt_points"]


def test_keep_masks_stores_the_reported_mask():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case], misrank=True), [case], ["point_center", "box"], keep_masks=True,
                     progress=False)  # fmt: skip
    assert not df.loc[0, "mask"].any()  # the IoU head's (wrong) pick
    np.testing.assert_array_equal(df.loc[1, "mask"], case.mask)


def test_bad_inputs_raise_with_the_fix():
    case = blob_case("a")
    fake = LookupPredictor([case])
    with pytest.raises(ValueError, match="Unknown mode"):
        ev.evaluate(fake, [case], ["boxx"], progress=False)
    with pytest.raises(ValueError, match="modes is empty"):
        ev.evaluate(fake, [case], [], progress=False)
    with pytest.raises(ValueError, match="cases is empty"):
        ev.evaluate(fake, [], progress=False)
    empty = Case(image=case.image, mask=np.zeros_like(case.mask), name="empty", modality="ct")
    with pytest.raises(ValueError, match="empty mask"):
        ev.evaluate(fake, [empty], ["box"], progress=False)
    with pytest.raises(ValueError, match="unique"):
        ev.evaluate(fake, [case, case], ["box"], progress=False)
    with pytest.raises(ValueError, match="SamPredictor"):
        ev.evaluate(fake, [case], ["everything"], progress=False)
    with pytest.raises(ValueError, match="seed"):
        ev.evaluate(fake, [case], ["box"], seed=-1, progress=False)
    with pytest.raises(ValueError, match="not a prompt mode"):
        ev.evaluate(fake, [case], ["box"], multimask={"everything": True}, progress=False)


def test_unknown_generator_settings_are_named(tiny_predictor, phantom_cases):
    with pytest.raises(ValueError, match="points_per_sid"):
        ev.evaluate(tiny_predictor, phantom_cases[:1], ["everything"], amg_kwargs={"points_per_sid": 4}, progress=False)


# ---------------------------------------------------------------------------------------- summaries


def synthetic_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20):
        for mode, level in (("box", 0.8), ("point_center", 0.3)):
            dice = float(np.clip(level + rng.normal(0, 0.05), 0, 1))
            rows.append({"model": "m", "case": f"c{i}", "dataset": "d" if i < 10 else "e",
                         "modality": "ct" if i < 10 else "mri", "mode": mode, "choice": "single",
                         "dice": dice, "iou": dice / (2 - dice), "hd95": 1.0, "nsd": 0.5,
                         "dice_oracle": dice, "iou_oracle": dice / (2 - dice)})  # fmt: skip
    return pd.DataFrame(rows)


def test_summarize_gives_means_cis_and_counts_per_mode():
    df = synthetic_table()
    summary = ev.summarize(df, by="mode", n_boot=500)
    assert list(summary.index) == ["box", "point_center"]
    assert list(summary.columns) == ["mean", "ci_low", "ci_high", "n"]
    assert summary.loc["box", "mean"] == pytest.approx(df[df["mode"] == "box"]["dice"].mean())
    assert (summary["ci_low"] <= summary["mean"]).all() and (summary["mean"] <= summary["ci_high"]).all()
    assert (summary["n"] == 20).all()
    pd.testing.assert_frame_equal(summary, ev.summarize(df, by="mode", n_boot=500))
    two = pd.concat([df, df.assign(model="other")])
    with pytest.raises(ValueError, match="several models"):
        ev.summarize(two)
    assert len(ev.summarize(two, by=["model", "mode"])) == 4
    with pytest.raises(ValueError, match="Unknown metric"):
        ev.summarize(df, metric="accuracy")


def test_compare_modes_is_paired():
    df = synthetic_table()
    result = ev.compare_modes(df, "box", "point_center", n_boot=500)
    assert result["n"] == 20 and result["a_wins"] == 1.0
    assert result["mean_diff"] == pytest.approx(0.5, abs=0.05) and result["ci_low"] > 0.4
    with pytest.raises(ValueError, match="not in the table"):
        ev.compare_modes(df, "box", "points_5")


def test_per_modality_tidy_and_summary_dict():
    df = synthetic_table()
    table = ev.per_modality(df)
    assert list(table.index) == ["ct", "mri"] and list(table.columns) == ["point_center", "box", "n_cases"]
    assert (table["n_cases"] == 10).all()
    assert list(ev.per_modality(df, by=["dataset", "modality"]).index) == [("d", "ct"), ("e", "mri")]
    long = ev.tidy(df)
    assert len(long) == len(df) * len(ev.METRICS) and set(long["metric"]) == set(ev.METRICS)
    nested = ev.summary_dict(df, n_boot=200)
    assert set(nested["m"]) == {"box", "point_center"}
    assert set(nested["m"]["box"]["dice"]) == {"mean", "ci_low", "ci_high", "n"}


def test_min_mask_region_area_without_opencv_says_what_to_install(tiny_predictor, phantom_cases, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` fails, as where OpenCV is not installed
    amg = {"points_per_side": 2, "min_mask_region_area": 20}
    with pytest.raises(ImportError, match="pip install opencv-python-headless") as info:
        ev.evaluate(tiny_predictor, phantom_cases[:1], ["everything"], amg_kwargs=amg, progress=False)
    assert "min_mask_region_area=20" in str(info.value) and "cv2" in str(info.value)
    without_cleanup = {**amg, "min_mask_region_area": 0}
    assert ev._mask_generator(tiny_predictor, without_cleanup).min_mask_region_area == 0  # needs no cv2
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))  # OpenCV present: the option passes through
    assert ev._mask_generator(tiny_predictor, amg).min_mask_region_area == 20

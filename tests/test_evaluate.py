"""Tests for utils.evaluate: the harness (prompts, choices, oracle, encoder calls, seeds) and its summaries."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

from utils import evaluate as ev
from utils import models, phantoms
from utils.datasets import Case

matplotlib.use("Agg")


def blob_case(name: str, center=(20, 28), radius=9, shape=(48, 64), modality="ct", spacing=(1.0, 1.0)) -> Case:
    """A disc on a gradient background; the image differs per name so a fake predictor can look it up."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    mask = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
    image = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) + 7 * len(name)) % 200
    image = np.where(mask, 230, image).astype(np.uint8)
    return Case(image=image, mask=mask, name=name, modality=modality, spacing=spacing)


class LookupPredictor:
    """A fake predictor that knows the answer: it finds the ground truth by the image it was given.

    ``multimask_output=True`` returns three masks: by default three copies of the truth; with
    ``misrank=True`` an empty mask that the "IoU head" scores highest, then the truth, then a shifted
    truth — so the IoU head's pick is wrong and the oracle's is right.
    """

    def __init__(self, cases, misrank: bool = False):
        self.truth = {c.image.tobytes(): c.mask for c in cases}
        self.misrank = misrank
        self.encoder_calls = 0
        self.name = "lookup"
        self.mask = None

    def set_image(self, image, image_format="RGB"):
        self.encoder_calls += 1
        self.mask = self.truth[np.ascontiguousarray(image).tobytes()]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True, **_):
        if not multimask_output:
            return self.mask[None], np.array([0.9]), None
        if self.misrank:
            masks = np.stack([np.zeros_like(self.mask), self.mask, np.roll(self.mask, 3, axis=1)])
            return masks, np.array([0.95, 0.5, 0.7]), None
        return np.stack([self.mask] * 3), np.array([0.9, 0.8, 0.7]), None


@pytest.fixture(scope="module")
def tiny():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.MeaninglessModelWarning)
        return models.load_predictor("tiny_sam", device="cpu")


@pytest.fixture(scope="module")
def phantom_cases():
    return [phantoms.make_phantom(style, seed=1, size=128) for style in ("ultrasound", "ct", "endoscopy")]


# ----------------------------------------------------------------------------------------- evaluate


def test_a_perfect_predictor_scores_dice_1_and_hd95_0_in_every_prompt_mode():
    cases = [blob_case("a"), blob_case("b", center=(30, 40), radius=6, spacing=(0.5, 0.7))]
    predictor = LookupPredictor(cases)
    df = ev.evaluate(predictor, cases, ev.PROMPT_MODES, progress=False)
    assert len(df) == len(cases) * len(ev.PROMPT_MODES)
    assert list(df.columns[: len(ev.COLUMNS)]) == list(ev.COLUMNS)
    assert (df["dice"] == 1.0).all() and (df["iou"] == 1.0).all()
    assert (df["hd95"] == 0.0).all() and (df["nsd"] == 1.0).all()
    assert (df["dice_oracle"] == 1.0).all()
    assert (df["pred_area"] == df["gt_area"]).all()
    assert df.attrs["encoder_calls"] == predictor.encoder_calls == len(cases)


def test_multimask_policy_choice_and_prompt_columns():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case]), [case], ev.PROMPT_MODES, progress=False).set_index("mode")
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


def test_tiny_sam_oracle_is_never_below_the_iou_head_and_the_encoder_runs_once_per_image(tiny, phantom_cases):
    before = tiny.encoder_calls
    df = ev.evaluate(tiny, phantom_cases, ev.MODES, seed=3, progress=False, amg_kwargs={"points_per_side": 2})
    assert tiny.encoder_calls - before == len(phantom_cases) == df.attrs["encoder_calls"]  # everything included
    assert len(df) == len(phantom_cases) * len(ev.MODES)
    assert (df["dice_oracle"] >= df["dice"]).all() and (df["iou_oracle"] >= df["iou"]).all()
    single = df["choice"] == "single"
    assert (df.loc[single, "dice_oracle"] == df.loc[single, "dice"]).all()
    every = df[df["mode"] == "everything"]
    assert (every["choice"] == "best_match").all() and (every["n_points"] == 4).all()
    assert (every["chosen_index"] == every["oracle_index"]).all()
    assert df[["dice", "iou", "nsd"]].apply(lambda s: s.between(0, 1)).all().all()
    assert df.attrs["amg_kwargs"] == {"points_per_side": 2}


def test_everything_mode_counts_crop_embeddings_honestly(tiny, phantom_cases):
    # crop_n_layers=1 adds 4 crops per image; each crop is a real, counted encoder call
    before = tiny.encoder_calls
    ev.evaluate(
        tiny, phantom_cases[:1], ["everything"], progress=False, amg_kwargs={"points_per_side": 2, "crop_n_layers": 1}
    )
    assert tiny.encoder_calls - before == 1 + 4


def test_results_are_reproducible_and_do_not_depend_on_case_order(tiny, phantom_cases):
    modes = ["point_random", "box_jitter_10", "box"]
    first = ev.evaluate(tiny, phantom_cases, modes, seed=5, progress=False)
    again = ev.evaluate(tiny, phantom_cases, modes, seed=5, progress=False)
    pd.testing.assert_frame_equal(first, again)
    reversed_order = ev.evaluate(tiny, phantom_cases[::-1], modes, seed=5, progress=False)
    key = ["case", "mode"]
    pd.testing.assert_frame_equal(
        first.sort_values(key).reset_index(drop=True), reversed_order.sort_values(key).reset_index(drop=True)
    )
    other = ev.evaluate(tiny, phantom_cases, modes, seed=6, progress=False)
    jittered = first["mode"] != "box"
    assert (first.loc[jittered, "prompt_box"].fillna(0) != other.loc[jittered, "prompt_box"].fillna(0)).any()
    assert (first["prompt_box"][~jittered] == other["prompt_box"][~jittered]).all()  # no randomness in "box"


def test_make_prompt_matches_what_evaluate_used():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case]), [case], ["point_random", "box_jitter_20"], seed=2, progress=False)
    prompt = ev.make_prompt(case, "box_jitter_20", seed=2)
    assert tuple(prompt["box"]) == df.loc[1, "prompt_box"] and prompt["point_coords"] is None
    points = ev.make_prompt(case, "point_random", seed=2)
    assert tuple(map(tuple, points["point_coords"])) == df.loc[0, "prompt_points"]
    with pytest.raises(ValueError, match="not a prompt mode"):
        ev.make_prompt(case, "everything")


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


def test_unknown_generator_settings_are_named(tiny, phantom_cases):
    with pytest.raises(ValueError, match="points_per_sid"):
        ev.evaluate(tiny, phantom_cases[:1], ["everything"], amg_kwargs={"points_per_sid": 4}, progress=False)


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


def test_bootstrap_ci_brackets_the_mean_and_is_reproducible():
    values = np.linspace(0, 1, 21)
    mean, low, high = ev.bootstrap_ci(values, n_boot=2000, seed=1)
    assert mean == pytest.approx(0.5) and low < mean < high
    assert (low, high) == ev.bootstrap_ci(values, n_boot=2000, seed=1)[1:]
    # the standard error of the mean of 21 values spread over [0, 1] is about 0.068: CI about ± 0.13
    assert high - low == pytest.approx(2 * 1.96 * values.std() / np.sqrt(21), rel=0.15)
    assert ev.bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)
    assert all(np.isnan(ev.bootstrap_ci([np.nan])))
    with pytest.raises(ValueError, match="n_boot"):
        ev.bootstrap_ci(values, n_boot=0)


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


# ---------------------------------------------------------------------------------- published numbers


def test_published_numbers_carry_sources_and_match_the_design():
    table = ev.published_results()
    assert table["source"].ne("").all() and table["citation"].str.len().gt(20).all()
    assert table["value"].between(0, 1).all()
    summary = ev.published_results("summary").set_index(["source", "prompt", "choice"])["value"]
    maz = "Mazurowski et al. 2023"
    assert summary[(maz, "1 point at largest object region", "iou_head")] == pytest.approx(0.461, abs=5e-4)
    assert summary[(maz, "1 box at largest object region", "iou_head")] == pytest.approx(0.589, abs=5e-4)
    assert summary[(maz, "1 box at each object region", "iou_head")] == pytest.approx(0.654, abs=5e-4)
    # the summary rows are the unweighted means of the per-task rows
    tasks = ev.published_results("task")
    assert tasks["dataset"].nunique() == 28
    task_means = tasks.groupby(["prompt", "choice"])["value"].mean()
    for (prompt, choice), value in task_means.items():
        assert summary[(maz, prompt, choice)] == pytest.approx(value, abs=1e-3)
    sam_med2d = table[(table["source"] == "SAM-Med2D README") & (table["model"] == "SAM (1024x1024 input)")]
    assert dict(zip(sam_med2d["prompt"], sam_med2d["value"])) == {
        "Bbox": 0.7449, "1 pt": 0.3688, "3 pts": 0.42, "5 pts": 0.4757
    }  # fmt: skip


def test_published_comparison_puts_this_run_beside_the_papers():
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case]), [case], ["point_center", "box"], progress=False)
    table = ev.published_comparison(df)
    assert list(table.index) == ["point_center", "points_3", "points_5", "box"]
    assert table.loc["box", "lookup · dice"] == 1.0
    assert table.loc["box", "Mazurowski et al. 2023 · SAM ViT-H · iou"] == pytest.approx(0.589, abs=5e-4)


# ---------------------------------------------------------------------------------- cases and figures


def test_case_helpers():
    cases = [phantoms.make_phantom(s, seed=i, size=64) for s in ("ct", "mri") for i in range(3)]
    assert ev.case_dataset(cases[0]) == "phantom"
    assert ev.case_dataset(blob_case("colin27_thalamus-left_axial-080")) == "colin27"
    picked = ev.spread_cases(cases, 3)
    assert [c.name for c in picked] == ["phantom_ct_0", "phantom_mri_0", "phantom_ct_1"]
    assert len(ev.spread_cases(cases, 99)) == 6 and ev.spread_cases(cases, 0) == []
    table = ev.describe_cases(cases)
    assert table.loc["phantom", "n_cases"] == 6 and table.loc["phantom", "modality"] == "ct, mri"


def test_benchmark_cases_full_mode_skips_a_set_that_fails(monkeypatch):
    from utils import datasets

    def fake_medsegbench(flag, split, n, seed):
        if flag == "busi":
            raise OSError("no network")
        return [phantoms.make_phantom("xray", seed=i, size=64) for i in range(n)]

    monkeypatch.setattr(datasets, "medsegbench", fake_medsegbench)
    with pytest.warns(UserWarning, match="busi skipped"):
        cases = ev.benchmark_cases("full", n_per_source=2, sets=("busi", "pandental"))
    assert len(cases) == 2
    with pytest.raises(ValueError, match="mode must be"):
        ev.benchmark_cases("auto")


def test_figures_draw(phantom_cases):
    case = blob_case("a")
    df = ev.evaluate(LookupPredictor([case], misrank=True), [case], ["point_center", "box"], keep_masks=True,
                     progress=False)  # fmt: skip
    import matplotlib.pyplot as plt

    for fig in (
        ev.plot_by_mode(df),
        ev.plot_modality_heatmap(df),
        ev.plot_oracle_gap(df),
        ev.plot_failures(df, [case], n=1, mode="point_center"),
    ):
        assert fig.axes
        plt.close(fig)
    with pytest.raises(ValueError, match="keep_masks"):
        ev.plot_failures(df.drop(columns="mask"), [case])


def test_min_mask_region_area_without_opencv_says_what_to_install(tiny, phantom_cases, monkeypatch):
    import sys
    import types

    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` fails, as where OpenCV is not installed
    amg = {"points_per_side": 2, "min_mask_region_area": 20}
    with pytest.raises(ImportError, match="pip install opencv-python-headless") as info:
        ev.evaluate(tiny, phantom_cases[:1], ["everything"], amg_kwargs=amg, progress=False)
    assert "min_mask_region_area=20" in str(info.value) and "cv2" in str(info.value)
    assert ev._mask_generator(tiny, {**amg, "min_mask_region_area": 0}).min_mask_region_area == 0  # needs no cv2
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))  # OpenCV present: the option passes through
    assert ev._mask_generator(tiny, amg).min_mask_region_area == 20

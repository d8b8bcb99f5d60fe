"""utils.lessons.uncertainty on synthetic data: entropy maps, flips that map back, TTA bookkeeping (and notebook
06's teaching version of the TTA loop gives the same logits and entropy), intensity TTA, AUROC against
scikit-learn, the error-vs-uncertainty table and the printed reading of the scores."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from utils.lessons import uncertainty as U
from utils.prompts import FLIPS, box_from_mask, box_region, flip_box, jitter_box

matplotlib.use("Agg")


def square_mask(shape=(40, 50), rows=(10, 25), cols=(5, 30)):
    mask = np.zeros(shape, bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


# --------------------------------------------------------------------------------------- entropy maps


def test_binary_entropy_known_values_and_checks():
    values = U.binary_entropy([0.0, 0.5, 1.0, 0.25])
    assert values == pytest.approx([0.0, 1.0, 0.0, 0.8112781245])
    assert not np.isnan(values).any()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        U.binary_entropy([0.2, 1.5])
    with pytest.raises(ValueError, match="NaN"):
        U.binary_entropy([np.nan])


def test_logit_entropy_is_entropy_of_the_sigmoid():
    logits = np.array([[-50.0, -1.0], [0.0, 3.0]])
    expected = U.binary_entropy(1 / (1 + np.exp(-logits)))
    assert U.logit_entropy(logits) == pytest.approx(expected)
    assert U.logit_entropy(np.zeros((2, 2))) == pytest.approx(np.ones((2, 2)))
    assert U.logit_entropy(np.array([60.0]))[0] < 1e-20


def test_multimask_disagreement_votes_entropy_and_variance():
    a = square_mask()
    b = a.copy()
    b[10:25, 25:30] = False  # the third mask drops a strip
    stack = np.stack([a, a, b])
    entropy = U.multimask_disagreement(stack)
    strip = a & ~b
    assert entropy[strip] == pytest.approx(float(U.binary_entropy(2 / 3)))  # 0.918 bits: one of three disagrees
    assert entropy[~strip].max() == 0.0
    variance = U.multimask_disagreement(stack, measure="variance")
    assert variance[strip] == pytest.approx(2 / 9) and variance.max() <= 0.25
    # logits vote at the threshold; soft=True averages probabilities instead
    logits = np.where(stack, 4.0, -4.0)
    assert np.array_equal(U.multimask_disagreement(logits), entropy)
    soft = U.foreground_probability(logits, soft=True)
    assert soft[strip] == pytest.approx((2 / (1 + np.exp(-4.0)) + 1 / (1 + np.exp(4.0))) / 3)
    assert U.foreground_probability(logits, threshold=5.0).max() == 0.0


@pytest.mark.parametrize(
    "outputs, match",
    [(np.zeros((4, 4)), "K >= 2"), (np.zeros((1, 4, 4)), "K >= 2"), (np.full((2, 2, 2), np.nan), "NaN")],
)
def test_multimask_disagreement_rejects_bad_stacks(outputs, match):
    with pytest.raises(ValueError, match=match):
        U.multimask_disagreement(outputs)


def test_unknown_measure_names_the_choices():
    with pytest.raises(ValueError, match="entropy, variance"):
        U.multimask_disagreement(np.zeros((3, 2, 2), bool), measure="std")


# ----------------------------------------------------------------------------------- augmentations


@pytest.mark.parametrize("flip", FLIPS)
def test_flip_is_its_own_inverse_and_moves_the_pixels_as_flip_box_moves_the_box(flip):
    mask = square_mask()
    image = np.random.default_rng(0).integers(0, 255, (*mask.shape, 3), dtype=np.uint8)
    assert np.array_equal(U.flip_array(U.flip_array(image, flip), flip), image)
    flipped = U.flip_array(mask, flip)
    assert np.array_equal(flip_box(box_from_mask(mask), mask.shape, flip), box_from_mask(flipped))


def test_flip_directions_and_checks():
    array = np.arange(6).reshape(2, 3)
    assert U.flip_array(array, "horizontal").tolist() == [[2, 1, 0], [5, 4, 3]]
    assert U.flip_array(array, "vertical").tolist() == [[3, 4, 5], [0, 1, 2]]
    with pytest.raises(ValueError, match="Unknown flip"):
        U.flip_array(array, "diagonal")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        U.flip_array(np.zeros(4), "horizontal")


class ThresholdInBox:
    """A fake predictor: inside the box, the pixels brighter than 128 are foreground (logit +3), the
    rest -3. It depends on the image content and position, so a wrong un-flip would disagree."""

    def __init__(self):
        self.images = []
        self.model = None

    def set_image(self, image):
        self.images.append(image.copy())

    def predict(self, box=None, multimask_output=False, return_logits=False, **_):
        image = self.images[-1][..., 0]
        inside = box_region(box, image.shape)
        logits = np.where(inside & (image > 128), 3.0, -3.0)[None]
        return logits, np.array([1.0]), None


def test_tta_maps_every_answer_back_to_the_original_frame():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    box = np.array([5.0, 10.0, 29.0, 24.0])
    fake = ThresholdInBox()
    result = U.tta_uncertainty(fake, image, box, flips=("horizontal", "vertical", "both"), n_jitter=0)
    truth = box_region(box, image.shape[:2]) & (image[..., 0] > 128)
    assert result.encoder_calls == 4 == len(fake.images)
    assert np.array_equal(fake.images[-1], image)  # the original is encoded last
    assert result.n_predictions == 4 and result.views[0] == "none · box"
    assert np.array_equal(result.base, truth) and np.array_equal(result.prediction, truth)
    assert result.entropy.max() == 0.0  # a correct un-flip: all four views agree


def test_tta_jitter_disagrees_only_near_the_box_edges():
    image = np.full((40, 50, 3), 200, np.uint8)
    box = np.array([10.0, 10.0, 29.0, 29.0])
    result = U.tta_uncertainty(ThresholdInBox(), image, box, flips=(), n_jitter=6, jitter=0.1, rng=0)
    assert result.encoder_calls == 1 and result.n_predictions == 7
    assert result.logits.shape == (7, 40, 50)
    uncertain = result.entropy > 0
    assert uncertain.any()
    core = box_region([14, 14, 25, 25], (40, 50))  # the jitter moves each side by at most 2 pixels
    assert not uncertain[core].any()
    assert np.array_equal(result.uncertainty("variance") > 0, uncertain)
    again = U.tta_uncertainty(ThresholdInBox(), image, box, flips=(), n_jitter=6, jitter=0.1, rng=0)
    assert np.array_equal(again.logits, result.logits)  # seeded


def test_tta_with_a_real_predictor_counts_its_encoder_calls(tiny_predictor):
    predictor = tiny_predictor
    image = np.random.default_rng(2).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    result = U.tta_uncertainty(predictor, image, [10, 12, 50, 40], flips=("horizontal",), n_jitter=2, soft=True)
    assert predictor.encoder_calls == 2 == result.encoder_calls
    assert result.logits.shape == (6, 64, 80) and result.soft
    assert 0 <= result.entropy.min() and result.entropy.max() <= 1
    assert np.array_equal(predictor.original_size, (64, 80))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"flips": (), "n_jitter": 0}, "nothing to compare"),
        ({"flips": ("none",)}, "always used"),
        ({"flips": ("horizontal", "horizontal")}, "duplicates"),
        ({"n_jitter": -1}, "n_jitter"),
        ({"flips": ("sideways",)}, "Unknown flip"),
    ],
)
def test_tta_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        U.tta_uncertainty(ThresholdInBox(), np.zeros((20, 20, 3), np.uint8), [2, 2, 10, 10], **kwargs)


def test_tta_rejects_a_predictor_without_predict():
    with pytest.raises(ValueError, match="predict"):
        U.tta_uncertainty(object(), np.zeros((20, 20, 3), np.uint8), [2, 2, 10, 10])


NOTEBOOK_06 = Path(__file__).resolve().parents[2] / "notebooks" / "06_medical_foundation_models.ipynb"


def teaching_code() -> dict:
    """Notebook 06's cells tagged "teaching" (the TTA loop written out), executed: the functions they define."""
    cells = json.loads(NOTEBOOK_06.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if "teaching" in c["metadata"].get("tags", [])]
    assert len(code) >= 3, "notebook 06 lost its teaching cells"
    namespace = {"np": np, "uncertainty": U}
    exec("\n\n".join(code), namespace)  # noqa: S102 - the course's own notebook code
    return namespace


@pytest.mark.parametrize("flips", [("horizontal",), ("horizontal", "vertical")])
def test_the_notebooks_teaching_tta_equals_the_library(flips, tiny_predictor):
    """The same image, box, jitter seed and flips: the loop written out in 06 and tta_uncertainty agree."""
    taught = teaching_code()
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    box = np.array([6.0, 9.0, 30.0, 27.0])
    for predictor in (ThresholdInBox(), tiny_predictor):
        jitter_rng = np.random.default_rng([0, 0])  # as in the notebook: case i's jitter comes from [SEED, i]
        boxes = [box] + [jitter_box(box, 0.1, jitter_rng, image.shape) for _ in range(2)]
        logits = taught["tta_by_hand"](predictor, image, boxes, flips)
        mean, entropy = taught["tta_map"](logits)
        library = U.tta_uncertainty(predictor, image, box, flips=flips, n_jitter=2, jitter=0.1,
                                    rng=np.random.default_rng([0, 0]), soft=True)  # fmt: skip
        assert logits.shape == library.logits.shape == ((1 + len(flips)) * 3, 40, 50)
        assert np.allclose(logits, library.logits, atol=1e-5)
        assert np.allclose(mean, library.mean, atol=1e-6) and np.allclose(entropy, library.entropy, atol=1e-6)
    assert np.ptp(library.logits) > 0  # the tiny SAM answers something, so the comparison could fail


def test_the_teaching_mirror_box_is_flip_box():
    taught = teaching_code()
    box = np.array([3.0, 5.0, 12.0, 20.0])
    for flip in ("horizontal", "vertical"):
        assert np.array_equal(taught["mirror_box"](box, (30, 40), flip), flip_box(box, (30, 40), flip))
        image = np.arange(30 * 40).reshape(30, 40)
        assert np.array_equal(taught["mirror"](image, flip), U.flip_array(image, flip))


class Bright:
    """A fake predictor whose answer depends on intensity: inside the box, pixels above 128 are foreground."""

    def __init__(self):
        self.images = []

    def set_image(self, image):
        self.images.append(image.copy())

    def predict(self, box=None, multimask_output=False, return_logits=False, **_):
        image = self.images[-1][..., 0].astype(float)
        return np.where(box_region(box, image.shape), (image - 128) / 8, -10.0)[None], np.array([1.0]), None


def ramp_image(shape=(30, 40)):
    values = np.tile(np.linspace(40, 220, shape[1]), (shape[0], 1))
    return np.repeat(values[..., None], 3, axis=2).astype(np.uint8)


def test_intensity_tta_disagrees_where_the_intensity_change_moves_the_answer():
    image, box = ramp_image(), np.array([0.0, 0.0, 39.0, 29.0])
    predictor = Bright()

    def gamma(view, rng):
        return np.round(255 * (view / 255.0) ** rng.uniform(0.6, 1.6)).astype(np.uint8)

    result = U.intensity_tta(predictor, image, box, gamma, n_views=3, rng=0)
    assert result.views == ["none · box", "intensity 1", "intensity 2", "intensity 3"]
    assert result.encoder_calls == 4 == len(predictor.images) and np.array_equal(predictor.images[-1], image)
    assert np.array_equal(result.base, image[..., 0] > 128)  # the plain answer: the original image
    columns = result.entropy.max(axis=0)
    assert columns[0] < 0.05 and columns[-1] < 0.05 and columns.max() > 0.5  # doubt only near intensity 128
    again = U.intensity_tta(Bright(), image, box, gamma, n_views=3, rng=0)
    assert np.array_equal(again.logits, result.logits)  # seeded


@pytest.mark.parametrize(
    "augment, kwargs, match",
    [
        (lambda image, rng: image[:5], {}, "shaped like"),
        (lambda image, rng: image * 2.0, {}, r"\[0, 255\]"),
        (lambda image, rng: image, {"n_views": 0}, "n_views"),
        ("gamma", {}, "function"),
    ],
)
def test_intensity_tta_rejects_bad_augmentations(augment, kwargs, match):
    with pytest.raises(ValueError, match=match):
        U.intensity_tta(Bright(), ramp_image(), [2, 2, 30, 20], augment, **kwargs)


def test_read_uncertainty_says_what_the_numbers_say():
    claims = {"auroc_TTA": 0.82, "auroc_own_probability": 0.9, "auroc_multimask": 0.7, "multimask_trained": False,
              "worst_dice_case": "a", "worst_dice": 0.4, "worst_dice_case_tta_auroc": 0.6,
              "others_mean_tta_auroc": 0.85, "tta_ensemble_dice_gain": -0.01}  # fmt: skip
    text = U.read_uncertainty("litemedsam", claims)
    assert "TTA uncertainty flags the errors (AUROC 0.82" in text and "the free map did at least as well" in text
    assert "untrained outputs 1-3: a confound" in text and "0.60, lower than the others' 0.85" in text
    assert "it did not help" in text
    better = U.read_uncertainty("sam_vit_b", {**claims, "auroc_own_probability": 0.7, "multimask_trained": True,
                                              "worst_dice_case_tta_auroc": 0.9, "tta_ensemble_dice_gain": 0.02})
    assert "TTA beat it" in better and "its trained outputs" in better and "not lower than" in better
    assert "it helped" in better
    alone = U.read_uncertainty("m", {**claims, "others_mean_tta_auroc": float("nan")})  # one uncertainty case
    assert "no other case to compare with" in alone and "nan" not in alone
    assert [U.flag_verdict(v) for v in (0.8, 0.6, 0.5, float("nan"))] == [
        "flags", "weakly flags", "does not flag", "does not flag"]  # fmt: skip


# ---------------------------------------------------------------------------- does it flag errors?


def test_auroc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(5):
        labels = rng.random(500) < 0.3
        scores = np.round(rng.random(500) + 0.5 * labels, 1)  # rounding makes many ties
        assert U.auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert U.auroc([0.1, 0.9], [0, 1]) == 1.0 and U.auroc([0.9, 0.1], [0, 1]) == 0.0
    assert U.auroc([0.3, 0.3], [0, 1]) == 0.5
    assert np.isnan(U.auroc([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="one value per pixel"):
        U.auroc([0.1, 0.2, 0.3], [0, 1])


def test_error_vs_uncertainty_table_and_summary():
    gt = square_mask()
    pred = gt.copy()
    pred[10:25, 25:30] = False  # a band of missed pixels
    uncertainty = np.zeros(gt.shape)
    uncertainty[10:25, 24:31] = 0.9  # the band and one column either side
    table, summary = U.error_vs_uncertainty(uncertainty, pred, gt, n_bins=10, value_range=(0, 1))
    errors = pred != gt
    assert table["pixels"].sum() == gt.size and table["errors"].sum() == errors.sum()
    assert summary["auroc"] == pytest.approx(roc_auc_score(errors.ravel(), uncertainty.ravel()))
    assert summary["auroc"] > 0.99
    busy = table.set_index("bin_low")
    assert busy.loc[0.9, "error_rate"] == pytest.approx(75 / 105)  # 75 missed of the 105 flagged pixels
    assert busy.loc[0.0, "error_rate"] == 0.0 and np.isnan(busy.loc[0.5, "error_rate"])
    assert summary["errors_caught_top"] == 1.0 and summary["error_rate_rest"] == 0.0
    assert table["share_of_errors"].sum() == pytest.approx(1.0)


def test_error_vs_uncertainty_region_and_pooling():
    rng = np.random.default_rng(4)
    maps = [rng.random((20, 30)) for _ in range(3)]
    preds = [rng.random((20, 30)) < 0.5 for _ in range(3)]
    gts = [rng.random((20, 30)) < 0.5 for _ in range(3)]
    regions = [box_region([2, 3, 20, 15], (20, 30)) for _ in range(3)]
    table, summary = U.error_vs_uncertainty(maps, preds, gts, region=regions, n_bins=4)
    flat = [np.concatenate([a[r] for a, r in zip(arrays, regions)]) for arrays in (maps, preds, gts)]
    table_flat, summary_flat = U.error_vs_uncertainty(*flat, n_bins=4)
    pd.testing.assert_frame_equal(table, table_flat)
    assert summary == summary_flat and summary["pixels"] == 3 * regions[0].sum()
    assert 0.4 < summary["auroc"] < 0.6  # random maps flag nothing
    with pytest.raises(ValueError, match="list of 3"):
        U.error_vs_uncertainty(maps, preds[0], gts)


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.zeros((4, 4)), np.zeros((4, 5), bool), np.zeros((4, 4), bool)), {}, "pixel for pixel"),
        ((np.zeros((4, 4)), np.full((4, 4), 0.3), np.zeros((4, 4), bool)), {}, "bool mask"),
        ((np.full((4, 4), np.nan), np.zeros((4, 4), bool), np.zeros((4, 4), bool)), {}, "NaN"),
        (
            (np.zeros((4, 4)), np.zeros((4, 4), bool), np.zeros((4, 4), bool)),
            {"region": np.zeros((4, 4), bool)},
            "selects no pixel",
        ),
        ((np.zeros((4, 4)), np.zeros((4, 4), bool), np.zeros((4, 4), bool)), {"n_bins": 0}, "n_bins"),
        ((np.zeros((4, 4)), np.zeros((4, 4), bool), np.zeros((4, 4), bool)), {"top_fraction": 0}, "top_fraction"),
        ((np.zeros((4, 4)), np.zeros((4, 4), bool), np.zeros((4, 4), bool)), {"value_range": (1, 0)}, "low <= high"),
    ],
)
def test_error_vs_uncertainty_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        U.error_vs_uncertainty(*args, **kwargs)


def test_figures_draw():
    import matplotlib.pyplot as plt

    gt = square_mask()
    pred = np.roll(gt, 2, axis=1)
    image = np.zeros((*gt.shape, 3), np.uint8)
    maps = {"a": np.full(gt.shape, 0.2), "b": (pred != gt).astype(float)}
    fig = U.plot_uncertainty_maps(image, gt, pred, maps, box=box_from_mask(gt), margin=5)
    assert len(fig.axes) >= 4
    table, _ = U.error_vs_uncertainty(maps["b"], pred, gt, value_range=(0, 1))
    ax = U.plot_error_vs_uncertainty({"b": table})
    assert ax.get_legend() is not None
    with pytest.raises(ValueError, match="error_vs_uncertainty"):
        U.plot_error_vs_uncertainty({"bad": pd.DataFrame({"x": [1]})})
    plt.close("all")

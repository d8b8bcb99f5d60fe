"""utils.lessons.autoprompt: a classical coarse mask → box, scored with a stand-in predictor (synthetic images)."""

from __future__ import annotations

import numpy as np
import pytest

from utils.datasets import Case
from utils.lessons import autoprompt


def disk(shape=(64, 80), center=(30, 44), radius=10.0) -> np.ndarray:
    rows, cols = np.indices(shape)
    return (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2


def dark_lesion_image(noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Bright skin, a dark disk (the lesion), a bigger dark frame along the border and a small dark dot."""
    image = np.full((64, 80), 200.0)
    image[disk()] = 60
    image[:, :12] = 40  # a dark band touching the border, larger than the lesion
    image[5:8, 60:63] = 60  # a small dark distractor
    image += np.random.default_rng(seed).normal(0, noise, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def test_the_lesion_not_the_border_band_and_not_the_dot():
    image = dark_lesion_image()
    mask = autoprompt.coarse_mask(image, "dark", sigma=0, opening=0)
    assert np.array_equal(mask, disk())
    kept_border = autoprompt.coarse_mask(image, "dark", sigma=0, opening=0, clear_border=False)
    assert kept_border[:, :12].all() and not kept_border[disk()].any()  # the band is the largest region
    assert not autoprompt.coarse_mask(image, "bright", sigma=0, opening=0).any()  # the skin touches the border


def test_smoothing_and_opening_survive_noise_and_holes_are_filled():
    image = dark_lesion_image(noise=25.0)
    mask = autoprompt.coarse_mask(image, "dark")
    overlap = 2 * (mask & disk()).sum() / (mask.sum() + disk().sum())
    assert overlap > 0.9
    ring = np.full((64, 64), 30, np.uint8)
    ring[disk((64, 64), (32, 32), 20)] = 220
    ring[disk((64, 64), (32, 32), 8)] = 30  # a dark hole inside the bright ring
    filled = autoprompt.coarse_mask(ring, "bright", sigma=0, opening=0)
    assert np.array_equal(filled, disk((64, 64), (32, 32), 20))


def test_auto_box_grows_clips_and_says_when_there_is_none():
    image = dark_lesion_image()
    assert autoprompt.auto_box(image, "dark", sigma=0, opening=0).tolist() == [34, 20, 54, 40]
    assert autoprompt.auto_box(image, "dark", margin=3, sigma=0, opening=0).tolist() == [31, 17, 57, 43]
    near_edge = np.full((40, 40), 200, np.uint8)
    near_edge[1:6, 30:38] = 20
    assert autoprompt.auto_box(near_edge, "dark", margin=5, sigma=0, opening=0).tolist() == [25, 0, 39, 10]
    assert autoprompt.auto_box(np.full((32, 32), 7, np.uint8), "dark") is None  # flat: nothing to threshold


def test_grey_levels():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 30
    assert np.allclose(autoprompt.grey_levels(rgb, sigma=0), 10.0)
    grey = np.arange(64, dtype=float).reshape(8, 8)
    assert np.array_equal(autoprompt.grey_levels(grey, sigma=0), grey)
    assert autoprompt.grey_levels(grey, sigma=1).std() < grey.std()
    with pytest.raises(ValueError, match="NaN"):
        autoprompt.grey_levels(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="sigma"):
        autoprompt.grey_levels(grey, sigma=-1)


def test_bad_options_are_refused():
    image = dark_lesion_image()
    with pytest.raises(ValueError, match="polarity"):
        autoprompt.coarse_mask(image, "darker")
    with pytest.raises(ValueError, match="opening"):
        autoprompt.coarse_mask(image, "dark", opening=1.5)
    with pytest.raises(ValueError, match="margin"):
        autoprompt.auto_box(image, "dark", margin=-2)


class BoxFiller:
    """A stand-in predictor: the mask is the box, filled. Counts set_image calls."""

    def __init__(self) -> None:
        self.encoded = 0
        self.shape = None

    def set_image(self, image):
        self.encoded += 1
        self.shape = image.shape[:2]

    def predict(self, box=None, multimask_output=False):
        x0, y0, x1, y1 = np.asarray(box, dtype=int)
        mask = np.zeros(self.shape, bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
        return mask[None], np.ones(1), np.zeros((1, 256, 256))


def test_compare_prompts_scores_three_masks_with_one_encoder_call_per_case():
    lesion = Case(dark_lesion_image(), disk(), name="lesion", modality="dermoscopy")
    flat = Case(np.full((64, 80), 120, np.uint8), disk(), name="flat", modality="dermoscopy")
    predictor = BoxFiller()
    table = autoprompt.compare_prompts(
        predictor, [lesion, flat], "dark", keep_masks=True, progress=False, sigma=0, opening=0
    )
    assert predictor.encoded == 2
    first, second = table.iloc[0], table.iloc[1]
    assert first["found"] and first["dice_classical"] == 1.0 and first["box_iou"] == 1.0
    assert first["dice_auto_box"] == first["dice_gt_box"] < 1.0  # the same box gives the same filled square
    assert not second["found"] and second["dice_auto_box"] == 0.0 and second["box_iou"] == 0.0
    assert second["auto_box"] is None and second["gt_box"] == [34.0, 20.0, 54.0, 40.0]
    assert {"classical_mask", "auto_mask", "gt_box_mask", "dataset"} <= set(table.columns)
    with pytest.raises(ValueError, match="one polarity per case"):
        autoprompt.compare_prompts(predictor, [lesion], ["dark", "bright"], progress=False)
    with pytest.raises(ValueError, match="empty"):
        autoprompt.compare_prompts(predictor, [], "dark")


def test_compare_prompts_scores_a_box_recipe_of_your_own():
    lesion = Case(dark_lesion_image(), disk(), name="lesion", modality="dermoscopy")
    predictor = BoxFiller()
    seen = []

    def whole_image(image, polarity):
        seen.append(polarity)
        return [0, 0, image.shape[1] - 1, image.shape[0] - 1]

    table = autoprompt.compare_prompts(predictor, [lesion], "dark", boxer=whole_image, progress=False)
    assert seen == ["dark"] and predictor.encoded == 1
    assert table.loc[0, "auto_box"] == [0.0, 0.0, 79.0, 63.0] and table.loc[0, "box_iou"] < 0.1
    assert table.loc[0, "dice_auto_box"] < table.loc[0, "dice_gt_box"]
    assert table.loc[0, "dice_classical"] > 0.9  # the classical column stays the course's recipe
    none = autoprompt.compare_prompts(predictor, [lesion], "dark", boxer=lambda image, p: None, progress=False)
    assert not none.loc[0, "found"] and none.loc[0, "dice_auto_box"] == 0.0
    with pytest.raises(ValueError, match="the box for lesion"):
        autoprompt.compare_prompts(predictor, [lesion], "dark", boxer=lambda image, p: [0, 0, 500, 5], progress=False)


def test_plot_pipeline_draws_three_panels_per_case():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lesion = Case(dark_lesion_image(), disk(), name="lesion", modality="dermoscopy")
    table = autoprompt.compare_prompts(BoxFiller(), [lesion], "dark", keep_masks=True, progress=False)
    fig = autoprompt.plot_pipeline([lesion], table)
    assert len(fig.axes) == 3 and "classical" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="keep_masks=True"):
        autoprompt.plot_pipeline([lesion], table.drop(columns=["auto_mask"]))
    plt.close("all")

"""Tests for utils.lessons.volumetric: propagation logic and stop rules with fake predictors, the embedding cache,
3-D scores, intensity windows and figures (the metrics themselves: tests/test_metrics.py).

Two fake predictors stand in for SAM, so every expected mask is known exactly:

- ``ThresholdPredictor`` segments the bright pixels inside the box (a model that is right whenever the box
  contains the whole structure), to test that the box follows the structure from slice to slice;
- ``ScriptedPredictor`` returns a prepared mask and score per slice (the slice index is written into the
  image's top-left pixel), to trigger each stop rule on a chosen slice.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from scipy import ndimage

from utils import metrics
from utils.lessons import volumetric as V
from utils.models import CachedPredictor
from utils.prompts import box_from_mask, next_box

from fakes import run_teaching_cells

matplotlib.use("Agg")


# --------------------------------------------------------------------------------------------- fakes


class FakeBase:
    """What CachedPredictor saves and restores: features, original_size, input_size, is_image_set."""

    def __init__(self) -> None:
        self.calls = 0
        self.features = None
        self.original_size = None
        self.input_size = None
        self.is_image_set = False

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        self.calls += 1
        self.features = np.array(image, copy=True)
        self.original_size = image.shape[:2]
        self.input_size = image.shape[:2]
        self.is_image_set = True

    @staticmethod
    def box_region(shape, box) -> np.ndarray:
        x0, y0, x1, y1 = np.round(np.asarray(box, dtype=float).reshape(4)).astype(int)
        region = np.zeros(shape[:2], dtype=bool)
        region[y0 : y1 + 1, x0 : x1 + 1] = True
        return region


class ThresholdPredictor(FakeBase):
    def predict(self, box=None, multimask_output=False, **_):
        image = self.features if self.features.ndim == 2 else self.features[..., 0]
        mask = (image > 128) & self.box_region(image.shape, box)
        return mask[None], np.array([0.9]), None


class ScriptedPredictor(FakeBase):
    def __init__(self, masks: np.ndarray, scores: np.ndarray | None = None) -> None:
        super().__init__()
        self.masks = masks
        self.scores = np.full(len(masks), 0.9) if scores is None else scores
        self.boxes: dict[int, np.ndarray] = {}

    def predict(self, box=None, multimask_output=False, **_):
        k = int(self.features[0, 0])  # the slice index written into the image
        self.boxes[k] = np.asarray(box, dtype=float)
        return self.masks[k][None].copy(), np.array([self.scores[k]]), None


def ellipsoid(shape=(21, 48, 56), radii=(9, 14, 18), center=None) -> np.ndarray:
    center = center or tuple(n / 2 - 0.5 for n in shape)
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)) <= 1.0


def bright_volume(mask: np.ndarray) -> np.ndarray:
    volume = np.where(mask, 200, 20).astype(np.uint8)
    volume[:, 0, 0] = np.arange(len(mask))  # no two slices are the same image (the cache keys by content)
    return volume


def indexed_volume(n_slices: int, shape=(32, 32)) -> np.ndarray:
    volume = np.full((n_slices, *shape), 50, dtype=np.uint8)
    volume[:, 0, 0] = np.arange(n_slices)  # every slice is a distinct image with a readable index
    return volume


def square(shape, top, left, size) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + size, left : left + size] = True
    return mask


def steady_script(n_slices=9, shape=(32, 32)) -> np.ndarray:
    """A 10x10 square on every slice, moving one pixel right per slice (adjacent Dice 0.9)."""
    return np.stack([square(shape, 10, 5 + k // 2, 10) for k in range(n_slices)])


NO_JUMP_RULES = V.StopRule(min_area=1, max_area_ratio=None, min_overlap=None)


# --------------------------------------------------------------------------------------------- propagation


def test_propagation_tracks_a_structure_both_ways_and_stops_when_it_vanishes():
    gt = ellipsoid()
    predictor = ThresholdPredictor()
    start = 10
    result = V.propagate(predictor, bright_volume(gt), start, box_from_mask(gt[start]), NO_JUMP_RULES, box_margin=2)
    np.testing.assert_array_equal(result.masks, gt)
    assert result.stopped == {"down": "vanished", "up": "vanished"}
    present = np.flatnonzero(gt.any(axis=(1, 2)))
    assert result.slices == present.tolist()
    # the first empty slice on each side was predicted (and rejected): one encoder call per slice
    assert predictor.calls == present.size + 2
    assert result.stop_details["down"] == {
        "slice": int(present[0] - 1), "area": 0, "previous_area": int(gt[present[0]].sum()), "overlap": 0.0,
        "score": pytest.approx(0.9),
    }  # fmt: skip
    assert metrics.dice(result.masks, gt) == 1.0 and metrics.hd95(result.masks, gt) == 0.0


def test_box_follows_the_previous_mask_with_its_margin():
    script = steady_script()
    predictor = ScriptedPredictor(script)
    result = V.propagate(predictor, indexed_volume(9), 4, box_from_mask(script[4]), NO_JUMP_RULES, box_margin=3)
    assert result.stopped == {"down": "volume_edge", "up": "volume_edge"}
    for k in range(9):
        if k == 4:
            np.testing.assert_array_equal(predictor.boxes[k], box_from_mask(script[4]))
            continue
        previous = script[k + 1] if k < 4 else script[k - 1]
        np.testing.assert_array_equal(predictor.boxes[k], next_box(previous, 3))
        np.testing.assert_array_equal(result.boxes[k], predictor.boxes[k])
    np.testing.assert_array_equal(result.masks, script)
    assert np.isfinite(result.scores).all() and result.n_slices == 9


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: square(m.shape, 10, 18, 10), "overlap_jump"),  # same area, moved away
        (lambda m: ndimage.binary_dilation(m, iterations=5), "area_jump"),  # 100 -> 400 pixels
        (lambda m: square(m.shape, 12, 8, 5), "area_jump"),  # shrinks to a quarter
        (lambda m: square(m.shape, 12, 8, 2), "vanished"),  # 4 pixels < min_area
    ],
)
def test_each_jump_rule_stops_on_the_slice_where_it_fires(change, reason):
    script = steady_script()
    script[7] = change(script[6])
    predictor = ScriptedPredictor(script)
    rule = V.StopRule(min_area=5, max_area_ratio=2.0, min_overlap=0.5)
    result = V.propagate(predictor, indexed_volume(9), 4, box_from_mask(script[4]), rule)
    assert result.stopped == {"down": "volume_edge", "up": reason}
    assert result.slices == list(range(7))  # slice 7 was predicted but rejected, 8 never seen
    assert not result.masks[7:].any() and 8 not in predictor.boxes
    details = result.stop_details["up"]
    assert details["slice"] == 7 and details["area"] == int(script[7].sum()) and details["previous_area"] == 100


def test_low_score_rule_is_off_by_default_and_fires_when_set():
    script = steady_script()
    scores = np.full(9, 0.9)
    scores[2] = 0.2
    volume = indexed_volume(9)
    loose = V.propagate(ScriptedPredictor(script, scores), volume, 4, box_from_mask(script[4]))
    assert loose.stopped["down"] == "volume_edge"
    strict = V.propagate(
        ScriptedPredictor(script, scores), volume, 4, box_from_mask(script[4]), V.StopRule(min_score=0.5)
    )
    assert strict.stopped == {"down": "low_score", "up": "volume_edge"}
    assert strict.slices == [3, 4, 5, 6, 7, 8]


def test_budget_limits_and_directions():
    script = steady_script(15)
    volume = indexed_volume(15)
    box = box_from_mask(script[7])
    budget = V.propagate(ScriptedPredictor(script), volume, 7, box, V.StopRule(max_slices=2))
    assert budget.slices == [5, 6, 7, 8, 9] and budget.stopped == {"down": "max_slices", "up": "max_slices"}
    ranged = V.propagate(ScriptedPredictor(script), volume, 7, box, limits=(6, 11))
    assert ranged.slices == list(range(6, 12)) and ranged.stopped == {"down": "range_end", "up": "range_end"}
    assert ranged.stop_details["down"] == {"slice": 5}
    predictor = ScriptedPredictor(script)
    up_only = V.propagate(predictor, volume, 7, box, directions=("up",))
    assert up_only.slices == list(range(7, 15)) and up_only.stopped == {"up": "volume_edge"}
    assert min(predictor.boxes) == 7


def test_a_vanished_start_mask_propagates_nothing():
    script = np.zeros((5, 32, 32), dtype=bool)
    predictor = ScriptedPredictor(script)
    result = V.propagate(predictor, indexed_volume(5), 2, [4, 4, 20, 20])
    assert result.stopped == {"down": "vanished", "up": "vanished"} and result.slices == []
    assert predictor.calls == 1


def test_upper_bound_uses_ground_truth_boxes_on_slices_with_the_structure_only():
    gt = ellipsoid()
    predictor = ThresholdPredictor()
    bound = V.slicewise_upper_bound(predictor, bright_volume(gt), gt, box_margin=1)
    np.testing.assert_array_equal(bound.masks, gt)
    present = np.flatnonzero(gt.any(axis=(1, 2)))
    assert predictor.calls == present.size and sorted(bound.boxes) == present.tolist()
    assert bound.stopped == {} and bound.start_slice is None
    np.testing.assert_array_equal(bound.boxes[int(present[3])], next_box(gt[present[3]], 1))


def test_propagation_and_upper_bound_share_embeddings_through_the_cache():
    gt = ellipsoid()
    volume = bright_volume(gt)
    predictor = ThresholdPredictor()
    cached = CachedPredictor(predictor)
    V.propagate(cached, volume, 10, box_from_mask(gt[10]), NO_JUMP_RULES, progress=False)
    calls_after_propagation = predictor.calls
    V.slicewise_upper_bound(cached, volume, gt, progress=False)
    assert predictor.calls == calls_after_propagation  # every ground-truth slice was already encoded
    assert cached.misses == calls_after_propagation and cached.hits == np.count_nonzero(gt.any(axis=(1, 2)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_slice": 30}, "start_slice"),
        ({"limits": (12, 15)}, "must contain start_slice"),
        ({"directions": ("left",)}, "directions"),
        ({"volume": np.zeros((4, 8, 8), dtype=np.float32)}, "uint8"),
        ({"volume": np.zeros((8, 8), dtype=np.uint8)}, r"\(S, H, W\)"),
    ],
)
def test_propagate_rejects_bad_input(kwargs, match):
    gt = ellipsoid()
    args = {"volume": bright_volume(gt), "start_slice": 10, "start_box": box_from_mask(gt[10])} | kwargs
    with pytest.raises(ValueError, match=match):
        V.propagate(ThresholdPredictor(), **args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_area": 0}, "min_area"),
        ({"min_score": 1.5}, "min_score"),
        ({"max_area_ratio": 0.5}, "max_area_ratio"),
        ({"min_overlap": -0.1}, "min_overlap"),
        ({"max_slices": -1}, "max_slices"),
    ],
)
def test_stop_rule_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        V.StopRule(**kwargs)


def test_crop_slab_keeps_the_centre_slice():
    volume = indexed_volume(10)
    mask = np.zeros(volume.shape, dtype=bool)
    slab, slab_mask, centre = V.crop_slab(volume, mask, 1, 2)
    assert slab.shape[0] == 4 and centre == 1 and slab[centre, 0, 0] == 1 and slab_mask.shape == slab.shape
    slab, _, centre = V.crop_slab(volume, mask, 5, 2)
    assert slab.shape[0] == 5 and slab[centre, 0, 0] == 5


# --------------------------------------------------------------------------------------------- cache


def test_cached_predictor_restores_a_real_sams_state_exactly(tiny_predictor):
    predictor = tiny_predictor
    rng = np.random.default_rng(0)
    first, second = (rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(2))
    box = np.array([10, 12, 50, 40])
    predictor.set_image(first)
    expected, expected_scores, _ = predictor.predict(box=box, multimask_output=False)

    cached = CachedPredictor(predictor)
    cached.set_image(first)
    cached.set_image(second)
    cached.set_image(first)  # restored, not encoded
    masks, scores, _ = cached.predict(box=box, multimask_output=False)
    np.testing.assert_array_equal(masks, expected)
    np.testing.assert_allclose(scores, expected_scores)
    assert (cached.misses, cached.hits, len(cached)) == (2, 1, 2)
    assert predictor.encoder_calls == 3  # one before the cache, two through it
    assert cached.encoder_calls == 3 and cached.is_image_set  # other attributes reach the predictor
    assert cached.original_size == (64, 80)


def test_cache_keys_images_by_content_and_drops_the_least_recently_used():
    predictor = ThresholdPredictor()
    cached = CachedPredictor(predictor, max_items=2)
    a, b, c = (np.full((8, 8), value, dtype=np.uint8) for value in (1, 2, 3))
    for image in (a, b, a.copy(), c, a, b):
        cached.set_image(image)
    # a, b encoded; a again (hit); c evicts b (a was used more recently); a hit; b encoded again
    assert predictor.calls == 4 and cached.hits == 2 and len(cached) == 2
    assert CachedPredictor.key(a) != CachedPredictor.key(a, "BGR")
    assert CachedPredictor.key(a) != CachedPredictor.key(a.reshape(4, 16))
    cached.clear()
    assert len(cached) == 0
    with pytest.raises(ValueError, match="already a CachedPredictor"):
        CachedPredictor(cached)
    with pytest.raises(ValueError, match="max_items"):
        CachedPredictor(predictor, max_items=0)
    with pytest.raises(ValueError, match="set_image"):
        CachedPredictor(object())


# --------------------------------------------------------------------------------------------- intensities


def test_normalise_slices_windows_each_slice_on_its_own_foreground():
    rng = np.random.default_rng(0)
    volume = np.zeros((3, 20, 20), dtype=np.float32)
    pattern = rng.uniform(1.0, 2.0, (10, 10))
    for k, scale in enumerate((1.0, 10.0, 100.0)):
        volume[k, 5:15, 5:15] = scale * pattern  # a head on a zero background
    windowed = V.normalise_slices(volume, percentiles=(0.0, 100.0))
    assert windowed.dtype == np.uint8
    for k in range(3):  # each slice's own head spans 0..255 whatever its scale
        head = windowed[k, 5:15, 5:15]
        assert head.min() == 0 and head.max() == 255
    np.testing.assert_array_equal(windowed[0], windowed[1])  # the same tissue pattern, scaled: same image
    whole = V.normalise_slices(volume, percentiles=(0.0, 100.0), foreground=False)
    assert whole[0, 5:15, 5:15].min() > 0  # the background (0) now sets the low end
    with pytest.raises(ValueError, match="percentiles"):
        V.normalise_slices(volume, percentiles=(50, 10))


# --------------------------------------------------------------------------------------------- figures


def test_orthogonal_views_and_walk_gallery_draw():
    import matplotlib.pyplot as plt

    gt = ellipsoid()
    volume = bright_volume(gt)
    result = V.propagate(ThresholdPredictor(), volume, 10, box_from_mask(gt[10]), progress=False)
    fig = V.orthogonal_views(volume, gt=gt, pred=result.masks, spacing=(3.0, 1.0, 1.0))
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 3 and [ax.get_title() for ax in axes] == ["axial", "coronal", "sagittal"]
    assert axes[1].get_aspect() == pytest.approx(3.0)  # 3 mm slices drawn three pixels tall
    plt.close(fig)
    fig = V.walk_gallery(volume, gt, result, n=4)
    assert len([ax for ax in fig.axes if ax.images]) >= 4
    plt.close(fig)
    with pytest.raises(ValueError, match="center"):
        V.orthogonal_views(volume, gt=gt, center=(99, 0, 0))
    fig, ax = plt.subplots()
    V.plot_slice_profile(ax, {"propagation": metrics.slice_dice_profile(result.masks, gt)}, gt=gt, start_slice=10)
    plt.close(fig)


# --------------------------------------------------------------------------------------------- structures, reports


def test_structure_middle_slab_and_report():
    gt = ellipsoid()
    structure = V.Structure("blob", bright_volume(gt), gt, (2.0, 1.0, 1.0), "synthetic")
    present = np.flatnonzero(gt.any(axis=(1, 2)))
    assert structure.extent == (present[0], present[-1]) and structure.middle == (present[0] + present[-1]) // 2
    slab = structure.slab(3)
    assert slab.volume.shape[0] == 7 and slab.offset == structure.middle - 3 and slab.middle == 3
    assert slab.middle_case().name == f"blob · slice {structure.middle}"

    # propagation that overshoots by one slice below the structure (a spurious mask) and misses the top
    propagation = V.VolumeResult(masks=gt.copy(), scores=np.where(gt.any(axis=(1, 2)), 0.9, np.nan))
    below, top = present[0] - 1, present[-1]
    propagation.masks[below] = gt[present[0]]
    propagation.masks[top] = False
    propagation.scores[below], propagation.scores[top] = 0.8, np.nan
    propagation.stopped = {"down": "max_slices", "up": "vanished"}
    propagation.stop_details = {"down": {"slice": below - 1}, "up": {"slice": int(top)}}
    bound = V.VolumeResult(masks=gt.copy(), scores=np.full(len(gt), 0.9))
    numbers = V.report(structure, {"propagation": propagation, "upper_bound": bound})
    assert numbers["upper_bound_dice3d"] == 1.0
    assert numbers["gap"] == pytest.approx(1.0 - metrics.dice(propagation.masks, gt))
    assert numbers["overshoot_slices"] == 1 and numbers["slices_propagated"] == propagation.n_slices
    assert numbers["stop_slices"] == {"down": below - 1, "up": int(top)}
    assert numbers["volume_ml"]["ground_truth"] == pytest.approx(gt.sum() * 2.0 / 1000)
    assert numbers["hd95_mm"]["upper_bound"] == 0.0 and numbers["hd95_mm"]["propagation"] >= 2.0
    assert numbers["gt_slices"] == [int(present[0]), int(present[-1])] and "in_range_gap" not in numbers
    with pytest.raises(ValueError, match="upper_bound"):
        V.report(structure, {"propagation": propagation})


MRICRON = Path("/usr/share/mricron/templates/aal.nii.gz")


@pytest.mark.skipif(not MRICRON.is_file(), reason="Debian's mricron-data is not installed")
def test_load_structure_reads_colin27_with_its_spacing():
    thalamus = V.load_structure("thalamus")
    assert thalamus.volume.shape == thalamus.mask.shape == (181, 217, 181)
    assert thalamus.spacing == (1.0, 1.0, 1.0) and thalamus.source == "Colin27 + AAL (left thalamus)"
    assert thalamus.extent == (70, 91) and thalamus.middle == 80
    with pytest.raises(ValueError, match="Unknown structure"):
        V.load_structure("amygdala")


def test_figures_reject_bad_input():
    import matplotlib.pyplot as plt

    gt = ellipsoid()
    volume = bright_volume(gt)
    empty = V.VolumeResult(masks=np.zeros_like(gt), scores=np.full(len(gt), np.nan))
    with pytest.raises(ValueError, match="nothing to show"):
        V.walk_gallery(volume, np.zeros_like(gt), empty)
    with pytest.raises(ValueError, match=r"\(S, H, W\)"):
        V.orthogonal_views(volume[0])
    with pytest.raises(ValueError, match="must match"):
        V.orthogonal_views(volume, gt=gt[:3])
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="mask == k"):
        V.plot_slice_profile(ax, {}, gt=np.full(gt.shape, 2))
    plt.close(fig)


# --------------------------------------------------------------------------------------------- the lesson's own walk


def teaching_walk() -> dict:
    """Notebook 07's walk by hand: its import cell and the cells tagged "teaching", executed."""
    return run_teaching_cells("07_volumetric", "from utils.lessons import volumetric")


def walk_scenarios():
    """(name, predictor, volume, start, box, rule, margin): every way a walk can end, on synthetic volumes."""
    gt = ellipsoid()
    rule = V.StopRule(min_area=5, max_area_ratio=2.0, min_overlap=0.5)
    yield "both ways until it vanishes", ThresholdPredictor(), bright_volume(gt), 10, box_from_mask(gt[10]), rule, 2
    yield "budget", ThresholdPredictor(), bright_volume(gt), 10, box_from_mask(gt[10]), V.StopRule(max_slices=3), 3
    script = steady_script()
    yield "volume edges", ScriptedPredictor(script), indexed_volume(9), 4, box_from_mask(script[4]), rule, 3
    for change in (
        lambda m: square(m.shape, 10, 18, 10),  # overlap jump
        lambda m: ndimage.binary_dilation(m, iterations=5),  # area jump (grows)
        lambda m: square(m.shape, 12, 8, 5),  # area jump (shrinks)
        lambda m: square(m.shape, 12, 8, 2),  # vanished
    ):
        jumped = steady_script()
        jumped[7] = change(jumped[6])
        jumped[1] = change(jumped[2])
        yield "a jump each way", ScriptedPredictor(jumped), indexed_volume(9), 4, box_from_mask(jumped[4]), rule, 3
    empty = np.zeros((5, 32, 32), dtype=bool)
    yield "nothing at the start", ScriptedPredictor(empty), indexed_volume(5), 2, [4, 4, 20, 20], rule, 3


def test_the_notebooks_walk_by_hand_gives_the_librarys_masks_and_stop_reasons():
    by_hand = teaching_walk()["propagate_by_hand"]
    seen = set()
    for name, predictor, volume, start, box, rule, margin in walk_scenarios():
        masks, stopped = by_hand(predictor, volume, start, box, rule, margin)
        library = V.propagate(predictor, volume, start, box, rule=rule, box_margin=margin, progress=False)
        np.testing.assert_array_equal(masks, library.masks, err_msg=name)
        assert stopped == library.stopped, name
        seen.update(stopped.values())
    # the comparison has teeth: every stop reason the notebook's rule can give was reached
    assert seen == {"vanished", "area_jump", "overlap_jump", "max_slices", "volume_edge"}


def test_the_walk_by_hand_differs_when_its_rule_does():
    """A check that the comparison above could fail: a walk whose rule ignores the area gives other masks."""
    namespace = teaching_walk()
    gt = ellipsoid()
    grown = np.array([ndimage.binary_dilation(m, iterations=4) if k >= 13 else m for k, m in enumerate(gt)])
    volume = bright_volume(grown)
    rule = V.StopRule(min_area=5, max_area_ratio=1.3, min_overlap=None)
    library = V.propagate(ThresholdPredictor(), volume, 10, box_from_mask(gt[10]), rule=rule, progress=False)
    namespace["stop_reason"] = lambda mask, previous, rule: "vanished" if mask.sum() < rule.min_area else None
    masks, stopped = namespace["propagate_by_hand"](ThresholdPredictor(), volume, 10, box_from_mask(gt[10]), rule, 3)
    assert library.stopped["up"] == "area_jump" and stopped["up"] == "vanished"
    assert not np.array_equal(masks, library.masks)


# --------------------------------------------------------------------------------------------- rules of your own


def test_any_function_with_the_stop_rule_interface_can_end_a_walk():
    script = steady_script()
    seen = []

    def stop_on_slice_6(mask, previous, score=None, image=None, previous_image=None):
        seen.append((score, int(image[0, 0]), int(previous_image[0, 0])))
        return "my_reason" if image[0, 0] == 6 else None

    box = box_from_mask(script[4])
    result = V.propagate(ScriptedPredictor(script), indexed_volume(9), 4, box, rule=stop_on_slice_6, progress=False)
    assert result.stopped == {"down": "volume_edge", "up": "my_reason"} and result.slices == [0, 1, 2, 3, 4, 5]
    # the rule sees the model's score, this slice and the previous one (by the index written into each)
    assert (0.9, 3, 4) in seen and (0.9, 6, 5) in seen
    # a budget on top of the rule's own: the smaller wins
    budget = V.propagate(ScriptedPredictor(script), indexed_volume(9), 4, box_from_mask(script[4]),
                         rule=V.StopRule(max_slices=3), max_slices=1, progress=False)  # fmt: skip
    assert budget.slices == [3, 4, 5] and budget.stopped == {"down": "max_slices", "up": "max_slices"}
    # a StopRule is such a function itself
    rule = V.StopRule(min_area=5)
    assert rule(script[5], script[4]) is None and rule(square((32, 32), 0, 0, 2), script[4]) == "vanished"


def test_an_empty_mask_ends_a_walk_whatever_the_rule():
    script = steady_script()
    script[6] = False
    result = V.propagate(ScriptedPredictor(script), indexed_volume(9), 4, box_from_mask(script[4]),
                         rule=lambda mask, previous, **_: None, progress=False)  # fmt: skip
    assert result.stopped["up"] == "vanished" and result.slices == [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("rule", "match"),
    [("area", "StopRule or a function"), (lambda mask, previous, **_: True, "non-empty string")],
)
def test_a_rule_must_be_callable_and_return_a_reason_or_none(rule, match):
    script = steady_script()
    with pytest.raises(ValueError, match=match):
        V.propagate(ScriptedPredictor(script), indexed_volume(9), 4, box_from_mask(script[4]), rule=rule,
                    progress=False)  # fmt: skip


def test_compare_rules_runs_each_rule_under_the_same_budget_and_reuses_walks():
    gt = ellipsoid()
    structure = V.Structure("blob", bright_volume(gt), gt, (1.0, 1.0, 1.0), "synthetic")
    predictor = ThresholdPredictor()
    cached = CachedPredictor(predictor)
    never = lambda mask, previous, **_: None  # noqa: E731 - a one-line rule
    table = V.compare_rules(cached, {"blob": structure}, {"course": V.StopRule(), "never": never}, max_slices=30)
    assert table["course"]["blob"]["dice3d"] == 1.0 and table["course"]["blob"]["overshoot_slices"] == 0
    assert table["never"]["blob"] == table["course"]["blob"] | {"stopped_because": "down: vanished, up: vanished"}
    done = V.propagate(cached, structure.volume, structure.middle, next_box(gt[structure.middle], 3), progress=False)
    set_images = cached.hits + cached.misses
    again = V.compare_rules(cached, {"blob": structure}, {"course": V.StopRule()}, done={"course": {"blob": done}})
    assert again["course"] == table["course"] and cached.hits + cached.misses == set_images  # not walked again
    with pytest.raises(ValueError, match="rules is empty"):
        V.compare_rules(cached, {"blob": structure}, {})

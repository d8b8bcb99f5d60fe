"""utils.phantoms: every style builds, is deterministic, and every knob moves what it says it moves."""

import time
from functools import lru_cache

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import euler_number
from skimage.morphology import skeletonize

from utils.datasets import Case
from utils.phantoms import STYLES, default_knobs, make_phantom

BLOB_STYLES = ["ultrasound", "xray", "ct", "mri", "dermoscopy", "endoscopy"]
RING_STYLES = ["ultrasound", "xray", "ct", "mri"]
DISTRACTOR_STYLES = list(STYLES)


@lru_cache(maxsize=256)
def _cached(style, seed, size, items):
    return make_phantom(style, seed=seed, size=size, **dict(items))


def phantom(style, seed=0, size=256, **knobs):
    """make_phantom with a cache (tests must not modify the returned arrays)."""
    return _cached(style, seed, size, tuple(sorted(knobs.items())))


def gray(case):
    return case.image.astype(np.float64).mean(axis=2)


def background(case, margin=4):
    """Pixels in the field of view at least ``margin`` px away from the target."""
    return case.meta["field_of_view"] & ~ndi.binary_dilation(case.mask, iterations=margin)


# +1: the target is brighter than its surroundings, -1: darker
BRIGHTER = {"ultrasound": -1, "xray": 1, "ct": -1, "mri": 1, "dermoscopy": -1, "fundus": -1, "microscopy": -1}


def cnr(case):
    """Signed contrast-to-noise ratio of the target against its surroundings (an annulus 4..16 px away)."""
    g = gray(case)
    near = ndi.binary_dilation(case.mask, iterations=16) & background(case, 4)
    return BRIGHTER[case.modality] * (g[case.mask].mean() - g[near].mean()) / g[near].std()


def strictly_increasing(values):
    return all(b > a for a, b in zip(values, values[1:]))


# --- every style -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_every_style_builds_a_case(style):
    case = phantom(style)
    assert isinstance(case, Case)
    assert case.image.shape == (256, 256, 3) and case.image.dtype == np.uint8
    assert case.mask.shape == (256, 256) and case.mask.dtype == bool
    assert 0.001 < case.mask.mean() < 0.6
    assert case.image.std() > 10  # a picture, not a flat field
    assert case.modality == style and case.name == f"phantom_{style}_0"
    assert case.source == "procedural phantom (utils.phantoms)" and case.license == "CC0 (generated)"
    assert all(s > 0 for s in case.spacing)
    meta = case.meta
    assert meta["style"] == style and meta["seed"] == 0 and meta["size"] == 256
    assert meta["knobs"] == default_knobs(style, 256)
    assert meta["target_area_actual"] == pytest.approx(case.mask.mean())
    assert meta["field_of_view"].shape == (256, 256) and meta["field_of_view"][case.mask].all()
    assert not meta["distractor_mask"].any()  # distractors default to 0


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("size", [64, 160])
def test_other_sizes(style, size):
    case = phantom(style, size=size)
    assert case.image.shape == (size, size, 3) and case.mask.shape == (size, size)
    assert case.mask.any()
    assert case.spacing[0] == pytest.approx(phantom(style).spacing[0] * 256 / size)


@pytest.mark.parametrize("style", STYLES)
def test_deterministic_per_seed(style):
    np.random.seed(1234)  # noqa: NPY002 - checking that the legacy global RNG is left alone
    state = np.random.get_state()[1].copy()  # noqa: NPY002
    first = make_phantom(style, seed=7)
    assert np.array_equal(np.random.get_state()[1], state), "the global RNG must not be used"  # noqa: NPY002
    again = make_phantom(style, seed=7)
    other = phantom(style, seed=8)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.mask, again.mask)
    assert not np.array_equal(first.image, other.image)
    assert not np.array_equal(first.mask, other.mask)


# --- contrast ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["ultrasound", "xray", "ct", "mri", "dermoscopy", "fundus", "microscopy"])
def test_contrast_raises_cnr_monotonically(style):
    values = [cnr(phantom(style, seed=2, contrast=c)) for c in (0.1, 0.3, 0.6, 1.0)]
    assert strictly_increasing(values), values
    assert values[-1] > 2 * values[0]


@pytest.mark.parametrize("style", STYLES)
def test_contrast_changes_only_the_target(style):
    low, high = phantom(style, seed=3, contrast=0.3), phantom(style, seed=3, contrast=0.9)
    np.testing.assert_array_equal(low.mask, high.mask)
    blur = low.meta["knobs"]["blur"]
    far = ndi.distance_transform_edt(~low.mask) > 3 * blur + 3
    np.testing.assert_array_equal(low.image[far], high.image[far])
    assert np.abs(gray(low)[low.mask] - gray(high)[low.mask]).mean() > 5


# --- target_area -------------------------------------------------------------------------------


@pytest.mark.parametrize("style", BLOB_STYLES)
def test_target_area_sets_mask_area(style):
    for area in (0.004, 0.02, 0.08):
        measured = phantom(style, seed=4, target_area=area).mask.mean()
        assert measured == pytest.approx(area, rel=0.25), (area, measured)


@pytest.mark.parametrize("style", ["mri", "dermoscopy"])
def test_large_target_area(style):
    assert phantom(style, seed=4, target_area=0.3).mask.mean() == pytest.approx(0.3, rel=0.25)


# --- noise -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_noise_raises_background_std(style):
    stds = []
    for noise in (0.0, 0.5, 1.0, 2.0):
        case = phantom(style, seed=5, noise=noise)
        stds.append(gray(case)[background(case)].std())
    assert strictly_increasing(stds), stds


def test_zero_noise_ultrasound_has_no_speckle():
    """Speckle is multiplicative Rayleigh noise: noise=0 leaves the smooth echo map."""
    clean, speckled = phantom("ultrasound", seed=5, noise=0), phantom("ultrasound", seed=5, noise=1)
    hp = lambda g: np.abs(g - ndi.uniform_filter(g, 3))  # noqa: E731
    inside = background(clean, 2)
    assert hp(gray(speckled))[inside].mean() > 3 * hp(gray(clean))[inside].mean()


# --- blur --------------------------------------------------------------------------------------


def edge_gradient(case):
    g = ndi.gaussian_filter(gray(case), 0.5)
    grad = np.hypot(ndi.sobel(g, 0), ndi.sobel(g, 1))
    boundary = case.mask ^ ndi.binary_erosion(case.mask)
    return grad[boundary].mean()


@pytest.mark.parametrize("style", ["ultrasound", "xray", "ct", "mri", "dermoscopy"])
def test_blur_widens_the_edge(style):
    grads = [edge_gradient(phantom(style, seed=6, noise=0, blur=b)) for b in (0.0, 1.0, 2.0, 4.0)]
    assert strictly_increasing(grads[::-1]), grads
    assert grads[0] > 2 * grads[-1]


def test_blur_widens_the_polyp_edge():
    """Endoscopy shading varies over the polyp, so measure the colour edge: chromaticity ignores shading."""
    grads = []
    for b in (0.0, 1.0, 2.0, 4.0):
        case = phantom("endoscopy", seed=6, noise=0, specular=0, blur=b)
        rgb = case.image.astype(np.float64) + 1.0
        chroma = ndi.gaussian_filter(rgb[..., 1] / rgb.sum(axis=2), 0.5)
        boundary = case.mask ^ ndi.binary_erosion(case.mask)
        grads.append(np.hypot(ndi.sobel(chroma, 0), ndi.sobel(chroma, 1))[boundary].mean())
    assert strictly_increasing(grads[::-1]), grads


def test_blur_leaves_the_mask_sharp():
    sharp, blurred = phantom("mri", seed=6, blur=0.0), phantom("mri", seed=6, blur=4.0)
    np.testing.assert_array_equal(sharp.mask, blurred.mask)


# --- thickness ---------------------------------------------------------------------------------


def test_thickness_sets_vessel_width():
    # mean width = vessel area / centre-line length; the tree (centre lines) does not depend on thickness
    centre_line = skeletonize(phantom("fundus", seed=1, thickness=1.0).mask).sum()
    widths = [phantom("fundus", seed=1, thickness=t).mask.sum() / centre_line for t in (1.0, 2.0, 4.0, 8.0)]
    assert strictly_increasing(widths), widths
    assert widths[0] < 2.0 and widths[-1] > 1.5 * widths[1]


@pytest.mark.parametrize("thickness", [4.0, 8.0])
def test_thickness_is_the_main_vessel_diameter(thickness):
    case = phantom("fundus", seed=2, thickness=thickness)
    row, col, radius = case.meta["optic_disc"]
    yy, xx = np.mgrid[:256, :256]
    away = np.hypot(yy - row, xx - col) > 2 * radius  # vessels overlap on the disc
    centre = skeletonize(case.mask) & away
    local = 2 * ndi.distance_transform_edt(case.mask)[centre] - 1  # diameter at each centre-line pixel
    assert 0.6 * thickness <= np.percentile(local, 99) <= 1.3 * thickness


def test_thickness_keeps_the_tree():
    thin, thick = phantom("fundus", seed=1, thickness=1.0), phantom("fundus", seed=1, thickness=6.0)
    assert (thin.mask & ~thick.mask).sum() < 0.02 * thin.mask.sum()  # same centre lines, only wider


def test_fundus_vessels_form_a_tree():
    mask = phantom("fundus", seed=2).mask
    labels, count = ndi.label(mask, structure=np.ones((3, 3)))
    largest = np.bincount(labels.ravel())[1:].max()
    assert largest > 0.9 * mask.sum()  # essentially one connected tree


# --- n_instances -------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 7, 25, 80])
def test_n_instances_gives_that_many_connected_nuclei(count):
    case = phantom("microscopy", seed=3, n_instances=count)
    labels = case.meta["instances"]
    assert labels.dtype == np.int32 and labels.shape == case.mask.shape
    assert set(np.unique(labels)) == set(range(count + 1))
    np.testing.assert_array_equal(case.mask, labels > 0)
    for label, sl in enumerate(ndi.find_objects(labels), start=1):
        assert ndi.label(labels[sl] == label)[1] == 1, f"nucleus {label} is split"


def test_nuclei_touch():
    labels = phantom("microscopy", seed=3, n_instances=80).meta["instances"]
    right, down = labels[:, 1:] != labels[:, :-1], labels[1:, :] != labels[:-1, :]
    touching = (right & (labels[:, 1:] > 0) & (labels[:, :-1] > 0)).sum()
    touching += (down & (labels[1:, :] > 0) & (labels[:-1, :] > 0)).sum()
    assert touching > 100  # instances share boundaries ...
    assert ndi.label(labels > 0)[1] < 0.8 * 80  # ... so the union has fewer blobs than nuclei


# --- ring --------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", RING_STYLES)
def test_ring_makes_an_annulus(style):
    solid = phantom(style, seed=2, target_area=0.03).mask
    ring = phantom(style, seed=2, target_area=0.03, ring=True).mask
    assert euler_number(solid, connectivity=2) == 1
    assert euler_number(ring, connectivity=2) == 0  # one component with one hole
    filled = ndi.binary_fill_holes(ring)
    assert filled.sum() > 1.6 * ring.sum()  # hole fraction 0.5
    assert ndi.binary_fill_holes(solid).sum() == solid.sum()
    assert ring.mean() == pytest.approx(0.03, rel=0.25)  # target_area is the annulus' area


def test_ring_hole_fraction():
    ring = phantom("mri", seed=2, target_area=0.03, ring=0.3).mask
    filled = ndi.binary_fill_holes(ring)
    assert (filled.sum() - ring.sum()) / filled.sum() == pytest.approx(0.3, abs=0.06)


# --- distractors -------------------------------------------------------------------------------


def bright_blobs_outside(case, level):
    bright = gray(case) > level
    outside = ~ndi.binary_dilation(case.mask, iterations=3)
    return ndi.label(bright & outside)[1]


def test_distractors_add_bright_blobs_outside_the_mask():
    counts = []
    for count in (0, 2, 5):
        case = phantom("mri", seed=1, distractors=count, noise=0, bias=0, contrast=1.0)
        counts.append(bright_blobs_outside(case, 0.75 * 255))
    assert counts == [0, 2, 5]


@pytest.mark.parametrize("style", DISTRACTOR_STYLES)
def test_distractors_are_not_in_the_mask(style):
    plain, busy = phantom(style, seed=1), phantom(style, seed=1, distractors=4)
    np.testing.assert_array_equal(plain.mask, busy.mask)
    blobs = busy.meta["distractor_mask"]
    assert ndi.label(blobs)[1] >= 3
    assert not (blobs & busy.mask).any()
    changed = np.abs(gray(plain) - gray(busy)) > 10
    assert changed[blobs].mean() > 0.3  # they are drawn where the distractor mask says


def test_more_distractors_keep_the_earlier_ones():
    two, five = phantom("ct", seed=1, distractors=2), phantom("ct", seed=1, distractors=5)
    assert (two.meta["distractor_mask"] & ~five.meta["distractor_mask"]).sum() == 0


# --- CT window ---------------------------------------------------------------------------------


def test_ct_window_maps_hu_linearly():
    case = phantom("ct", seed=0, window=(50.0, 350.0))
    hu = case.meta["hu"]
    expected = np.clip((hu - (50.0 - 175.0)) / 350.0, 0, 1) * 255
    assert np.abs(case.image[..., 0] - expected).max() <= 1.0
    assert (case.image[..., 0][hu > 300] == 255).all() and (case.image[..., 0][hu < -200] == 0).all()


def test_ct_pixel_at_level_maps_to_mid_gray():
    base = phantom("ct", seed=0)
    row, col = 128, 100
    level = float(base.meta["hu"][row, col])
    case = phantom("ct", seed=0, window=(level, 400.0))
    np.testing.assert_array_equal(case.meta["hu"], base.meta["hu"])  # the window only changes the display
    assert abs(int(case.image[row, col, 0]) - 128) <= 1


def test_ct_narrow_window_raises_lesion_contrast():
    wide, narrow = phantom("ct", seed=1, window=(40, 1500)), phantom("ct", seed=1, window=(70, 150))
    assert cnr(narrow) > 2 * cnr(wide)


def test_ct_contrast_is_120_hu_per_unit():
    """contrast=c lowers the lesion by 120 * c HU, and nothing else."""
    zero, half = phantom("ct", seed=1, contrast=0.0, blur=0), phantom("ct", seed=1, contrast=0.5, blur=0)
    delta = zero.meta["hu"] - half.meta["hu"]
    np.testing.assert_allclose(delta[zero.mask], 60.0, atol=1e-3)
    np.testing.assert_allclose(delta[~zero.mask], 0.0, atol=1e-3)


# --- style-specific knobs ----------------------------------------------------------------------


def test_ultrasound_shadow_darkens_below_the_lesion():
    none, strong = phantom("ultrasound", seed=2, shadow=0.0), phantom("ultrasound", seed=2, shadow=1.0)
    rows, cols = np.nonzero(none.mask)
    below = np.zeros_like(none.mask)
    below[rows.max() + 5 : rows.max() + 35, int(np.percentile(cols, 30)) : int(np.percentile(cols, 70))] = True
    below &= none.meta["field_of_view"]
    assert gray(strong)[below].mean() < 0.6 * gray(none)[below].mean()


def test_mri_bias_field_spreads_white_matter_intensity():
    flat, biased = phantom("mri", seed=2, bias=0.0, noise=0), phantom("mri", seed=2, bias=1.0, noise=0)
    brain = flat.meta["field_of_view"] & (np.abs(gray(flat) - 0.36 * 255) < 6)  # white matter
    assert gray(biased)[brain].std() > 3 * gray(flat)[brain].std()


def test_dermoscopy_hair_adds_dark_strands_but_not_to_the_mask():
    bald, hairy = phantom("dermoscopy", seed=3, hair=0), phantom("dermoscopy", seed=3, hair=40)
    np.testing.assert_array_equal(bald.mask, hairy.mask)
    skin = background(bald, 6) & (np.hypot(*np.mgrid[-128:128, -128:128]) < 100)
    dark = lambda case: (gray(case)[skin] < 100).mean()  # noqa: E731
    assert dark(hairy) > dark(bald) + 0.05


def test_endoscopy_specular_adds_saturated_highlights():
    def saturated(case):
        return (case.image.min(axis=2) >= 245).mean()

    values = [saturated(phantom("endoscopy", seed=1, specular=s)) for s in (0.0, 1.0, 2.0)]
    assert values[0] == 0 and strictly_increasing(values), values


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda: make_phantom("pet"), ["Unknown phantom style 'pet'", "ultrasound", "microscopy"]),
        (lambda: make_phantom("xrya"), ["Did you mean 'xray'"]),
        (lambda: make_phantom("mri", constrast=0.5), ["Unknown knob 'constrast'", "Did you mean 'contrast'", "bias"]),
        (lambda: make_phantom("ct", thickness=2), ["'ct' does not use the knob 'thickness'", "window"]),
        (lambda: make_phantom("mri", contrast=1.5), ["contrast=1.5 is out of range", "[0, 1]"]),
        (lambda: make_phantom("mri", noise=-1), ["noise=-1 is out of range"]),
        (lambda: make_phantom("mri", blur=float("nan")), ["blur=nan is out of range"]),
        (lambda: make_phantom("mri", target_area=0.9), ["target_area=0.9 is out of range", "0.5"]),
        (lambda: make_phantom("microscopy", n_instances=0), ["n_instances=0 is out of range", "integer"]),
        (lambda: make_phantom("microscopy", n_instances=2.5), ["n_instances=2.5", "integer"]),
        (lambda: make_phantom("microscopy", size=64, n_instances=300), ["at most 102 nuclei fit in a 64x64 image"]),
        (lambda: make_phantom("mri", ring=0.95), ["ring=0.95 is out of range", "hole fraction"]),
        (lambda: make_phantom("ct", window=(40, -5)), ["window=(40, -5) is out of range", "width"]),
        (lambda: make_phantom("ct", window="soft"), ["(level, width)"]),
        (lambda: make_phantom("ct", distractors=-1), ["distractors=-1 is out of range"]),
        (lambda: make_phantom("ct", contrast="high"), ["contrast='high'"]),
        (lambda: make_phantom("ct", seed=-1), ["seed must be a non-negative integer"]),
        (lambda: make_phantom("ct", size=8), ["size must be an integer in [32, 2048]"]),
    ],
)
def test_bad_input_raises_helpful_value_error(call, words):
    with pytest.raises(ValueError) as info:
        call()
    for word in words:
        assert word in str(info.value), (word, str(info.value))


@pytest.mark.parametrize("style", BLOB_STYLES)
def test_tiny_targets_are_never_empty(style):
    assert phantom(style, seed=33, size=33, target_area=0.0005).mask.any()


def test_ring_accepts_bool_and_fraction():
    assert phantom("ct", ring=True).meta["knobs"]["ring"] == 0.5
    assert phantom("ct", ring=False).meta["knobs"]["ring"] == 0.0
    assert phantom("ct", ring=0.25).meta["knobs"]["ring"] == 0.25


# --- speed -------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_fast_enough(style):
    best = min(_timed(style, seed) for seed in (11, 12))
    assert best < 0.2, f"{style} took {best * 1000:.0f} ms"


def _timed(style, seed):
    start = time.perf_counter()
    make_phantom(style, seed=seed)
    return time.perf_counter() - start

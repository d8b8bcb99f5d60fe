"""Bad input gets one clear error that names the problem and the fix — for every public utils function
that takes an image, mask, prompt, spacing, name or path.

One row of BAD_INPUTS is one test. ``test_every_input_taking_function_is_covered`` fails when a public
function with such a parameter has no row, so new modules join the suite.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

MASK = np.zeros((16, 16), bool)
MASK[4:10, 5:12] = True
EMPTY = np.zeros((16, 16), bool)
IMAGE = np.zeros((16, 16, 3), np.uint8)
TABLE = pd.DataFrame({"model": ["m"], "case": ["c"], "mode": ["box"], "dice": [1.0], "iou": [1.0]})


@lru_cache(maxsize=1)
def _predictor():
    from utils.models import MeaninglessModelWarning, load_predictor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeaninglessModelWarning)
        predictor = load_predictor("tiny_sam", device="cpu")
    predictor.set_image(np.zeros((64, 80, 3), np.uint8))
    return predictor


@lru_cache(maxsize=1)
def _tiny_sam():
    from utils.models import MeaninglessModelWarning, load_sam

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MeaninglessModelWarning)
        return load_sam("tiny_sam", device="cpu")


def _case():
    from utils.datasets import Case

    return Case(IMAGE, MASK, name="x", modality="mri")


def _resolve(value):
    if value is _tiny_sam or value is _case:
        return value()
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def _call(module: str, function: str, *args, **kwargs):
    args = tuple(_resolve(a) for a in args)
    return getattr(importlib.import_module(f"utils.{module}"), function)(*args, **kwargs)


# (id, module, function, args, kwargs, exception, fragments the message must contain)
BAD_INPUTS = [
    # lessons added for issue 15/16: a predict/build exercise's helpers
    ("box tokens before set_image", "lessons.anatomy", "box_tokens", (object(), [0, 0, 5, 5]), {}, ValueError,
     ["set_image"]),  # fmt: skip
    ("unknown device", "lessons.anatomy", "encoder_dtype", ("gpu",), {}, RuntimeError, ["cpu, cuda"]),
    ("shares without full", "lessons.comparison", "gain_shares", ({},), {}, ValueError, ["'full'"]),
    ("fold scores without cases", "lessons.comparison", "fold_scores", (object(), []), {}, ValueError,
     ["non-empty", "Case"]),  # fmt: skip
    ("intensity TTA box outside", "lessons.uncertainty", "intensity_tta", (object(), np.zeros((8, 8), np.uint8),
     [0, 0, 40, 40]), {"augment": lambda image: image}, ValueError, ["outside", "np.clip"]),  # fmt: skip
    # shared checks
    ("whole number from a bool", "checks", "whole_number", (True, "steps"), {"minimum": 1}, ValueError, ["steps", ">= 1"]),
    ("finite number NaN", "checks", "finite_number", (float("nan"), "jitter"), {}, ValueError, ["jitter", "finite"]),
    ("choice unknown", "checks", "one_of", ("cubic", ("linear", "nearest"), "order"), {}, ValueError, ["linear"]),
    # images
    (
        "float image",
        "images",
        "to_rgb_uint8",
        (np.full((8, 8), 300.0),),
        {},
        ValueError,
        ["float64", "rescale_to_uint8"],
    ),
    ("16-bit image", "images", "to_rgb_uint8", (np.zeros((8, 8), np.uint16),), {}, ValueError, ["16-bit"]),
    ("RGBA image", "images", "to_rgb_uint8", (np.zeros((8, 8, 4), np.uint8),), {}, ValueError, ["[..., :3]"]),
    ("NaN image", "images", "to_rgb_uint8", (np.full((8, 8), np.nan),), {}, ValueError, ["NaN"]),
    ("channel-first", "images", "to_rgb_uint8", (np.zeros((3, 8, 8), np.uint8),), {}, ValueError, ["moveaxis"]),
    ("label-map mask", "images", "to_mask", (np.array([[0, 1, 2]]),), {}, ValueError, ["== k"]),
    ("mask shape", "images", "to_mask", (MASK,), {"shape": (8, 8)}, ValueError, ["match"]),
    ("all-NaN rescale", "images", "rescale_to_uint8", (np.full((2, 2), np.nan),), {}, ValueError, ["finite"]),
    ("bool rescale", "images", "rescale_to_uint8", (MASK,), {}, ValueError, ["numeric"]),
    # prompts
    ("box of empty mask", "prompts", "box_from_mask", (EMPTY,), {}, ValueError, ["empty mask"]),
    ("negative jitter", "prompts", "box_from_mask", (MASK,), {"jitter": -0.1}, ValueError, ["jitter"]),
    ("points of empty mask", "prompts", "points_from_mask", (EMPTY,), {}, ValueError, ["empty"]),
    ("unknown strategy", "prompts", "points_from_mask", (MASK,), {"strategy": "edge"}, ValueError, ["strategy"]),
    ("zero points", "prompts", "points_from_mask", (MASK,), {"n_pos": 0, "n_neg": 0}, ValueError, ["n_pos"]),
    ("prompt seed", "prompts", "prompt_rng", (-1, "case", "box"), {}, ValueError, ["seed must be"]),
    ("box outside", "prompts", "check_box", ([0, 0, 40, 10], (16, 16)), {}, ValueError, ["outside", "np.clip"]),
    ("box reversed", "prompts", "check_box", ([10, 0, 2, 10], (16, 16)), {}, ValueError, ["x0 <= x1"]),
    ("box NaN", "prompts", "check_box", ([0, np.nan, 2, 10], (16, 16)), {}, ValueError, ["NaN"]),
    ("point outside", "prompts", "check_points", ([[30, 2]], [1], (16, 16)), {}, ValueError, ["outside"]),
    ("label not 0/1", "prompts", "check_points", ([[3, 2]], [2], (16, 16)), {}, ValueError, ["labels must be 1"]),
    (
        "points/labels length",
        "prompts",
        "check_points",
        ([[3, 2], [4, 4]], [1], (16, 16)),
        {},
        ValueError,
        ["one label"],
    ),
    # metrics
    ("dice shape mismatch", "metrics", "dice", (MASK, MASK[:8]), {}, ValueError, ["shape"]),
    ("iou non-binary", "metrics", "iou", (MASK.astype(int) * 3, MASK), {}, ValueError, ["binary"]),
    ("hd95 bad spacing", "metrics", "hd95", (MASK, MASK), {"spacing": (0.0, 1.0)}, ValueError, ["spacing"]),
    (
        "hd95 3-D with 2-D spacing",
        "metrics",
        "hd95",
        (np.zeros((2, 4, 4), bool),) * 2,
        {"spacing": (1, 1)},
        ValueError,
        ["3 numbers", "slice_mm"],
    ),
    (
        "dice 3-D shapes",
        "metrics",
        "dice",
        (np.zeros((2, 3, 3)), np.zeros((2, 3, 4))),
        {},
        ValueError,
        ["voxel for voxel"],
    ),
    ("nsd negative tolerance", "metrics", "nsd", (MASK, MASK), {"tolerance": -1}, ValueError, ["tolerance"]),
    ("boundary NaN", "metrics", "boundary", (np.full((4, 4), np.nan),), {}, ValueError, ["NaN"]),
    ("boundary 1-D", "metrics", "boundary", (np.zeros(5, bool),), {}, ValueError, ["2-D (H, W) or 3-D"]),
    (
        "volume_ml spacing",
        "metrics",
        "volume_ml",
        (np.zeros((2, 3, 3), bool),),
        {"spacing": (1, -1, 1)},
        ValueError,
        ["positive"],
    ),
    ("volume_ml 2-D", "metrics", "volume_ml", (MASK,), {"spacing": (1, 1, 1)}, ValueError, ["3-D (S, H, W)"]),
    ("slice profile 2-D", "metrics", "slice_dice_profile", (MASK, MASK), {}, ValueError, ["3-D (S, H, W)"]),
    ("bootstrap n_boot 0", "metrics", "bootstrap_ci", ([0.5],), {"n_boot": 0}, ValueError, ["n_boot"]),
    # models
    ("unknown model", "models", "load_sam", ("sam_vit_z",), {}, ValueError, ["Unknown model name", "sam_vit_b"]),
    ("unknown predictor", "models", "load_predictor", ("medsam",), {}, ValueError, ["Available"]),
    ("unknown card", "models", "model_card", ("vit",), {}, ValueError, ["Unknown model name"]),
    ("unknown spec", "models", "model_spec", ("vit",), {}, ValueError, ["Unknown model name", "sam_vit_b"]),
    ("unknown device", "models", "load_sam", ("tiny_sam",), {"device": "tpu"}, ValueError, ["Unknown device"]),
    # env
    ("unknown mode", "env", "resolve_mode", ("fast",), {}, ValueError, ["Unknown MODE", "smoke"]),
    ("unknown mode explained", "env", "explain_mode", ("quick",), {}, ValueError, ["Unknown MODE", "auto"]),
    ("unknown budget resolved", "env", "resolve_budget", ("big", "offline"), {}, ValueError, ["BUDGET"]),
    ("unknown budget", "env", "start_run", ("01_x",), {"mode": "smoke", "budget": "big"}, ValueError, ["BUDGET"]),
    ("bad seed", "machine", "seed_everything", (-3,), {}, ValueError, ["non-negative"]),
    ("notebook path as stem", "env", "start_run", ("notebooks/01.ipynb",), {}, ValueError, ["stem"]),
    ("unknown device name", "machine", "get_device", ("gpu",), {}, ValueError, ["'cpu'"]),
    # download
    ("bad hash format", "download", "fetch", ("http://127.0.0.1:9/x", "/tmp/x", "abc"), {}, ValueError, ["sha256:"]),
    ("unsupported hash", "download", "verify_file", (__file__, "sha1:00"), {}, ValueError, ["Unsupported"]),
    ("missing file", "download", "verify_file", ("/no/such/file", "md5:00"), {}, FileNotFoundError, ["does not exist"]),
    # datasets
    ("unknown flag", "datasets", "medsegbench", ("nosuchset",), {}, ValueError, ["busi"]),
    ("excluded flag", "datasets", "medsegbench_info", ("bkai-igh",), {}, ValueError, ["trailing space"]),
    ("bad size", "datasets", "medsegbench_path", ("busi", 300), {}, ValueError, ["256"]),
    ("unknown medmnist", "datasets", "medmnist_info", ("catmnist",), {}, ValueError, ["pathmnist"]),
    ("medmnist bad size", "datasets", "medmnist_path", ("pathmnist", 100), {}, ValueError, ["224"]),
    ("unknown structure", "datasets", "colin27_cases", (["amygdala"],), {}, ValueError, ["thalamus"]),
    ("bad hemisphere", "datasets", "colin27_volume", ("thalamus", "middle"), {}, ValueError, ["left"]),
    ("unknown MNI structure", "datasets", "mni152_cases", (["csf"],), {}, ValueError, ["ventricles"]),
    ("bad axis", "datasets", "mni152_volume", ("brain", "oblique"), {}, ValueError, ["axial"]),
    ("zero slices", "datasets", "offline_cases", (0,), {}, ValueError, ["n_per_structure"]),
    ("unknown medmnist flag", "datasets", "medmnist_images", ("catmnist",), {}, ValueError, ["pathmnist"]),
    ("download unknown", "datasets", "download_medsegbench", ("nosuchset",), {}, ValueError, ["busi"]),
    ("download medmnist unknown", "datasets", "download_medmnist", ("catmnist",), {}, ValueError, ["pathmnist"]),
    # phantoms
    ("unknown style", "phantoms", "make_phantom", ("pet",), {}, ValueError, ["ultrasound"]),
    ("unknown knob", "phantoms", "make_phantom", ("ct",), {"contrst": 0.5}, ValueError, ["contrast"]),
    ("knob out of range", "phantoms", "make_phantom", ("mri",), {"contrast": 5.0}, ValueError, ["contrast"]),
    ("knobs of unknown style", "phantoms", "default_knobs", ("pet",), {}, ValueError, ["ultrasound"]),
    # peft and training (the shared tiny SAM stays unadapted: each bad call raises before changing it)
    ("adapter seed", "peft", "adapter", (_tiny_sam,), {"seed": -1}, ValueError, ["seed"]),
    ("lora seed", "peft", "lora", (_tiny_sam,), {"seed": 1.5}, ValueError, ["seed"]),
    (
        "prompt of empty mask",
        "prompts",
        "sample_prompt",
        (EMPTY, np.random.default_rng(0)),
        {},
        ValueError,
        ["empty mask"],
    ),
    (
        "train seed",
        "training",
        "train",
        (_tiny_sam, [_case]),
        {"strategy_name": "lora", "seed": -1},
        ValueError,
        ["seed"],
    ),
    (
        "train device",
        "training",
        "train",
        (_tiny_sam, [_case]),
        {"strategy_name": "lora", "device": "tpu"},
        ValueError,
        ["Unknown device"],
    ),
    (
        "embed device",
        "training",
        "precompute_embeddings",
        (_tiny_sam, [_case]),
        {"device": "tpu"},
        ValueError,
        ["Unknown device"],
    ),
    ("held-out mode", "training", "evaluate_dice", (_tiny_sam, [_case]), {"prompt": "boxes"}, ValueError, ["box"]),
    # evaluate
    (
        "evaluate unknown mode",
        "evaluate",
        "evaluate",
        (None, [], ["boxx"]),
        {},
        ValueError,
        ["Unknown mode", "choose from"],
    ),
    ("make_prompt everything", "prompts", "make_prompt", (None, "everything"), {}, ValueError, ["not a prompt mode"]),
    ("zero-shot cases mode", "cases", "zero_shot_cases", ("auto", 1, 1), {}, ValueError, ["mode must be", "run.mode"]),
    ("zero-shot size 0", "cases", "zero_shot_cases", ("smoke", 0, 1), {}, ValueError, ["n_per_source", "run.budget"]),
    ("summarize bad metric", "evaluate", "summarize", (TABLE,), {"metric": "accuracy"}, ValueError, ["Unknown metric"]),
    (
        "compare missing mode",
        "evaluate",
        "compare_modes",
        (TABLE, "box", "points_5"),
        {},
        ValueError,
        ["not in the table"],
    ),
    (
        "summary_dict no model",
        "evaluate",
        "summary_dict",
        (TABLE.drop(columns="model"),),
        {},
        ValueError,
        ["Cannot group by"],
    ),
    ("failures without masks", "viz", "plot_failures", (TABLE, []), {}, ValueError, ["keep_masks"]),
    ("zoom to a 3-D region", "viz", "zoom_to", (None, np.zeros((2, 4, 4), bool)), {}, ValueError, ["2-D mask"]),
    # anatomy, sweeps, domain, volumetric
    ("meta_sam unknown", "models", "meta_sam", ("vit_x",), {}, ValueError, ["Unknown model name"]),
    ("sweep unknown factor", "lessons.sweeps", "sweep", (None, "colour"), {}, ValueError, ["Unknown factor", "contrast"]),
    ("sweep_case unknown", "lessons.sweeps", "sweep_case", ("colour", 0.5), {}, ValueError, ["Unknown factor"]),
    ("unknown volume", "lessons.volumetric", "load_structure", ("amygdala",), {}, ValueError, ["thalamus"]),
    ("next box of nothing", "prompts", "next_box", (np.zeros((4, 4), bool),), {}, ValueError, ["empty mask"]),
    ("probe labels", "lessons.domain", "linear_probe", (np.zeros((4, 3)), np.zeros(5)), {}, ValueError, ["one label per row"]),
    ("resize RGBA", "lessons.domain", "square_resize", (np.zeros((4, 4, 4), np.uint8), 8), {}, ValueError, ["alpha"]),
    # colab
    ("bad repo", "tools.colab", "set_repo", ("not-a-repo",), {}, ValueError, ["owner/name"]),
    # uncertainty and MedSAM (notebook 06)
    (
        "flip_box unknown flip",
        "prompts",
        "flip_box",
        ([1, 1, 5, 5], (16, 16), "diagonal"),
        {},
        ValueError,
        ["Unknown flip", "horizontal"],
    ),
    (
        "jitter_box negative",
        "prompts",
        "jitter_box",
        ([1, 1, 5, 5], -0.1, 0, (16, 16)),
        {},
        ValueError,
        ["jitter must be"],
    ),
    ("box_region outside", "prompts", "box_region", ([0, 0, 40, 5], (16, 16)), {}, ValueError, ["outside"]),
    (
        "tta with one view",
        "lessons.uncertainty",
        "tta_uncertainty",
        (None, IMAGE, [1, 1, 5, 5]),
        {"flips": (), "n_jitter": 0},
        ValueError,
        ["nothing to compare"],
    ),
    ("auroc labels not binary", "lessons.uncertainty", "auroc", ([0.1, 0.2], [0, 2]), {}, ValueError, ["bool or 0/1"]),
    (
        "error map shapes",
        "lessons.uncertainty",
        "error_vs_uncertainty",
        (np.zeros((16, 16)), MASK[:8], MASK),
        {},
        ValueError,
        ["pixel for pixel"],
    ),
    (
        "uncertainty map shape",
        "lessons.uncertainty",
        "plot_uncertainty_maps",
        (IMAGE, MASK, MASK, {"x": np.zeros((4, 4))}),
        {},
        ValueError,
        ["expected (16, 16)"],
    ),
    (
        "medsam checkpoint missing",
        "models",
        "load_medsam",
        ("/no/such/medsam_vit_b.pth",),
        {},
        FileNotFoundError,
        ["does not exist", "medsam_vit_b.pth"],
    ),
    # automatic prompts and the landscape (notebook 08)
    ("grey levels NaN", "lessons.autoprompt", "grey_levels", (np.full((8, 8), np.nan),), {}, ValueError, ["NaN", "nan_to_num"]),
    ("coarse mask polarity", "lessons.autoprompt", "coarse_mask", (IMAGE, "darker"), {}, ValueError, ["polarity", "'dark'"]),
    ("coarse mask RGBA", "lessons.autoprompt", "coarse_mask", (np.zeros((8, 8, 4), np.uint8),), {}, ValueError, ["[..., :3]"]),
    ("auto box margin", "lessons.autoprompt", "auto_box", (IMAGE, "dark"), {"margin": -1}, ValueError, ["margin", ">= 0"]),
    ("box iou corners", "prompts", "box_iou", ([5, 0, 1, 4], [0, 0, 4, 4]), {}, ValueError, ["x0 <= x1"]),
    ("autoprompt mode", "cases", "autoprompt_cases", ("fast", 1), {}, ValueError, ["'full', 'offline' or 'smoke'"]),
    ("resolve missing", "lessons.landscape", "resolve", ("utils.peft.nope",), {}, ValueError, ["'utils.peft'", "'nope'"]),
    # the matched comparison (notebook 05)
    ("split unknown", "lessons.comparison", "make_split", ("brats",), {}, ValueError, ["Unknown split", "ventricles"]),
    ("split size", "lessons.comparison", "make_split", ("microscopy",), {"n_test": 0}, ValueError, ["n_test", ">= 1"]),
    ("split percentiles", "datasets", "mni152_cases", (), {"percentiles": (60, 10)}, ValueError, ["low <= high"]),
    (
        "comparison lr missing",
        "lessons.comparison",
        "compare_strategies",
        ("tiny_sam", None, ("full", "lora")),
        {"steps": 1, "lr": {"full": 1e-4}},
        ValueError,
        ["no entry for 'lora'", "one per strategy"],
    ),
    (
        "comparison strategy",
        "lessons.comparison",
        "compare_strategies",
        ("tiny_sam", None, ("prompt_tuning",)),
        {"steps": 1, "lr": 1e-3},
        ValueError,
        ["prompt_tuning", "decoder_only"],
    ),
    ("comparison empty", "lessons.comparison", "read_comparison", ({},), {}, ValueError, ["No records", "compare_strategies"]),
    # rehearsal stand-ins
    ("stand-in flag", "tools.rehearsal", "standin_medsegbench", ("/tmp/x.npz", "nosuch"), {}, ValueError, ["busi"]),
    ("stand-in medmnist", "tools.rehearsal", "standin_medmnist", ("/tmp/x.npz", "nosuch"), {}, ValueError, ["breastmnist"]),
    ("stand-in variant", "tools.rehearsal", "standin_sam_checkpoint", ("/tmp/x.pth", "b"), {}, ValueError, ["vit_b"]),
    ("rehearsal budget", "tools.rehearsal", "rehearse", (), {"budget": "huge"}, ValueError, ["budget must be", "smoke"]),
]


@pytest.mark.parametrize(
    "module, function, args, kwargs, error, fragments",
    [row[1:] for row in BAD_INPUTS],
    ids=[row[0] for row in BAD_INPUTS],
)
def test_bad_input_raises_one_clear_error(module, function, args, kwargs, error, fragments):
    with pytest.raises(error) as info:
        _call(module, function, *args, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{module}.{function}: {fragment!r} not in {message!r}"


PREDICTOR_CASES = [
    ("set_image 16-bit", "set_image", (np.zeros((8, 8), np.uint16),), {}, ["16-bit"]),
    ("set_image RGBA", "set_image", (np.zeros((8, 8, 4), np.uint8),), {}, ["alpha"]),
    ("set_image NaN", "set_image", (np.full((8, 8), np.nan, np.float32),), {}, ["NaN"]),
    ("predict box outside", "predict", (), {"box": np.array([0, 0, 90, 10])}, ["outside", "width 80"]),
    (
        "predict point outside",
        "predict",
        (),
        {"point_coords": np.array([[5, 70]]), "point_labels": np.array([1])},
        ["outside", "height 64"],
    ),
    ("predict points without labels", "predict", (), {"point_coords": np.array([[5, 5]])}, ["point_labels"]),
]


@pytest.mark.parametrize(
    "method, args, kwargs, fragments", [r[1:] for r in PREDICTOR_CASES], ids=[r[0] for r in PREDICTOR_CASES]
)
def test_predictor_rejects_bad_input_and_keeps_its_state(method, args, kwargs, fragments):
    predictor = _predictor()
    calls = predictor.encoder_calls
    with pytest.raises(ValueError) as info:
        getattr(predictor, method)(*args, **kwargs)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert predictor.encoder_calls == calls and predictor.original_size == (64, 80)  # nothing half-changed


def test_case_record_rejects_bad_spacing_and_mismatched_mask():
    from utils.datasets import Case

    with pytest.raises(ValueError, match="spacing"):
        Case(IMAGE, MASK, name="x", modality="mri", spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="match"):
        Case(IMAGE, MASK[:8], name="x", modality="mri")


# Parameters that carry user input worth hardening.
INPUT_PARAMETERS = {
    "image",
    "mask",
    "pred",
    "gt",
    "box",
    "coords",
    "labels",
    "spacing",
    "name",
    "modality",
    "flag",
    "structure",
    "structures",
    "known_hash",
    "mode",
    "device",
    "seed",
    "repo",
    "notebook",
}
# Functions that take such a parameter but only from trusted code, or where nothing can be bad.
EXEMPT = {
    "machine.network_available",
    "machine.matmul_tflops",
    "machine.cap_cuda_memory",  # reads $SAMCOURSE_CUDA_MEMORY_GIB (tests/test_env.py checks bad values)
    "machine.cuda_peak",
    "tools.harness.run_course",
    "tools.harness.run_notebook",
    "tools.harness.check_student_notebook",
    "tools.colab.badge_url",
    "tools.colab.badge_markdown",
    "download.file_hash",
    "download.mirror_url",
    "viz.show_mask",
    "viz.show_points",
    "viz.show_box",
    "viz.show_case",
    "viz.contour_compare",
    "viz.overlay_grid",
    "images.rescale_to_uint8",
    # figure and timing helpers fed by the course's own objects; their inputs are checked upstream
    "lessons.anatomy.component_timing",
    "lessons.anatomy.fourier_features",
    "lessons.anatomy.mask_token_outputs",
    "lessons.anatomy.plot_fourier_encoding",
    "lessons.anatomy.plot_mask_tokens",
    "lessons.anatomy.trace_shapes",
    "lessons.domain.plot_projection",
    "lessons.domain.medical_set",
    "lessons.sweeps.curves",
    "lessons.sweeps.pick_values",
    "models.encoder_autocast",  # takes the predictor's own device
    "tools.rehearsal.build_standins",  # rehearse's own folder and seed
    "lessons.volumetric.crop_slab",
    "lessons.volumetric.orthogonal_views",
    "lessons.volumetric.plot_slice_profile",
    "lessons.volumetric.report",
    "lessons.volumetric.score",
    "lessons.volumetric.slicewise_upper_bound",
    "lessons.volumetric.walk_gallery",
    "lessons.playground.picture.render_prompts",
    # notebook 05's helpers take the objects compare_strategies returns (checked in tests/lessons/test_comparison.py)
    "lessons.comparison.strategy_record",
    "lessons.comparison.gallery_predictions",
    "lessons.comparison.plot_gallery",
    "lessons.comparison.roundtrip_check",
    "lessons.comparison.strategy_parameters",
    "lessons.comparison.architecture",
    "lessons.comparison.plateau",  # takes a TrainResult from compare_strategies
    "lessons.comparison.search_learning_rates",  # a Split from make_split; its sizes are checked by train()
    "lessons.anatomy.encoder_seconds",  # a predictor and an image set_image checks (images.to_rgb_uint8)
    "lessons.volumetric.compare_rules",  # Structures from load_structure; each rule goes through propagate's checks
    "lessons.volumetric.overshoot_slices",  # a Structure and the VolumeResult propagate returned
    # any name is an answer: a model outside the registry follows SAM's convention (documented)
    "models.trained_multimask",
}


def test_every_input_taking_function_is_covered():
    """A public function with a user-input parameter needs a BAD_INPUTS row (or its module's own tests:
    viz's checks live in tests/test_viz.py)."""
    import pkgutil

    import utils

    covered = {f"{row[1]}.{row[2]}" for row in BAD_INPUTS}
    missing = []
    for info in pkgutil.walk_packages(utils.__path__, "utils."):
        if info.ispkg:
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not inspect.isfunction(obj):
                continue
            params = set(inspect.signature(obj).parameters)
            qualified = f"{info.name.removeprefix('utils.')}.{name}"
            if params & INPUT_PARAMETERS and qualified not in covered and qualified not in EXEMPT:
                missing.append(qualified)
    assert not missing, f"add bad-input rows to tests/test_hardening.py for: {', '.join(sorted(missing))}"

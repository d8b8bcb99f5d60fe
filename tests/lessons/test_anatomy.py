"""utils.lessons.anatomy: live parameter counts, hook traces, Fourier features, PCA, mask tokens and timing.

Official SAMs are built on the meta device (no weights); anything that needs values uses the tiny
random SAM (its outputs mean nothing, but its arithmetic is SAM's own).
"""

import matplotlib

matplotlib.use("Agg")  # headless; must come before pyplot is imported

import functools  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from utils import models  # noqa: E402
from utils.lessons import anatomy

from fakes import load_tiny_sam


@functools.lru_cache(maxsize=1)
def _vit_b():
    return models.meta_sam("sam_vit_b")


def _tiny_predictor(image):
    predictor = models.CoursePredictor(load_tiny_sam(), name="tiny_sam")
    predictor.set_image(image)
    return predictor


def _image(shape=(60, 80), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(*shape, 3), dtype=np.uint8)
    image[15:40, 20:55] += 150  # a bright rectangle
    return image


# ------------------------------------------------------------------------------ parameter counts


def test_parameter_table_matches_the_published_counts():
    table = anatomy.parameter_table()
    assert list(table.index) == ["sam_vit_b", "sam_vit_l", "sam_vit_h"]
    assert table.loc["sam_vit_b", "image_encoder"] == 89_670_912
    assert (table["prompt_encoder"] == 6_220).all()
    assert (table["mask_decoder"] == 4_058_340).all()
    assert (table["total"] == table[list(anatomy.COMPONENTS)].sum(axis=1)).all()
    assert table.loc["sam_vit_h", "total"] == models.REGISTRY["sam_vit_h"].params
    assert 0.95 < table.loc["sam_vit_b", "encoder_share"] < table.loc["sam_vit_h", "encoder_share"] < 1
    comparison = anatomy.compare_with_published(table)
    assert len(comparison) == 12 and comparison["match"].all()


def test_litemedsam_is_counted_on_the_meta_device_too():
    table = anatomy.parameter_table(("litemedsam",))
    assert table.loc["litemedsam", "image_encoder"] == 5_726_740  # TinyViT (design §5: 5.73M)
    assert table.loc["litemedsam", "mask_decoder"] == 4_058_340  # SAM's own decoder
    assert models.is_meta(models.meta_sam("litemedsam"))


def test_meta_models_hold_no_values():
    sam = _vit_b()
    assert models.is_meta(sam) and not models.is_meta(load_tiny_sam())
    assert all(p.device.type == "meta" for p in sam.parameters())


@pytest.mark.parametrize(
    "count, published, expected",
    [
        (93_735_472, "93.7M", True),
        (93_749_999, "93.7M", True),
        (93_760_000, "93.7M", False),
        (89_670_912, "89.67M", True),
        (89_680_000, "89.67M", False),
        (6_220, "6,220", True),
        (6_221, "6,220", False),
        (1_500, "1.5k", True),
    ],
)
def test_matches_published_uses_the_published_precision(count, published, expected):
    assert anatomy.matches_published(count, published) is expected


def test_a_wrong_count_is_flagged():
    table = anatomy.parameter_table(("sam_vit_b",))
    table.loc["sam_vit_b", "mask_decoder"] += 1
    comparison = anatomy.compare_with_published(table).set_index("component")
    assert not comparison.loc["mask_decoder", "match"] and comparison.loc["image_encoder", "match"]


def test_bad_names_and_counts_raise():
    with pytest.raises(ValueError, match="Unknown model name 'sam_vit_x'"):
        anatomy.parameter_table(("sam_vit_x",))
    with pytest.raises(ValueError, match="at least one"):
        anatomy.parameter_table(())
    with pytest.raises(ValueError, match="93.7M"):
        anatomy.matches_published(1, "about 94 million")
    with pytest.raises(ValueError, match="No published counts"):
        anatomy.compare_with_published(anatomy.parameter_table(("tiny_sam",)))


def test_component_breakdown_adds_up_and_splits_the_blocks():
    sam = _vit_b()
    parts = anatomy.component_breakdown(sam)
    totals = parts.groupby("component")["params"].sum()
    for component in anatomy.COMPONENTS:
        assert totals[component] == models.count_parameters(getattr(sam, component))
    assert parts["share"].sum() == pytest.approx(1.0)
    by_part = parts.set_index("part")["params"]
    # 8 windowed and 4 global blocks; global blocks carry larger relative-position tables (2*64-1 rows)
    assert by_part["windowed blocks"] / 8 < by_part["global blocks"] / 4
    assert by_part["IoU head"] == 256 * 256 * 2 + 256 * 2 + 256 * 4 + 4


def test_attention_layout_reads_window_size():
    layout_b = anatomy.attention_layout(_vit_b().image_encoder)
    assert [i for i, kind in enumerate(layout_b) if kind == "global"] == [2, 5, 8, 11]
    assert layout_b[0] == "window 14×14"
    layout_h = anatomy.attention_layout(models.meta_sam("sam_vit_h").image_encoder)
    assert len(layout_h) == 32 and [i for i, k in enumerate(layout_h) if k == "global"] == [7, 15, 23, 31]
    assert anatomy.attention_layout(load_tiny_sam().image_encoder) == ["window 8×8", "global"]
    with pytest.raises(ValueError, match="blocks"):
        anatomy.attention_layout(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------ traces


def test_meta_trace_of_vit_b_gives_sams_shapes():
    trace = anatomy.trace_shapes(_vit_b(), image_size=(480, 640))
    shapes = anatomy.key_shapes(trace)
    assert shapes["input"] == [3, 1024, 1024]
    assert shapes["image_embedding"] == [256, 64, 64]
    assert shapes["sparse_embedding"] == [2, 256]  # a box: two corner tokens
    assert shapes["dense_embedding"] == shapes["image_pe"] == [256, 64, 64]
    assert shapes["decoder_tokens"] == [7, 256]  # 1 IoU + 4 mask tokens + 2 corners
    assert shapes["upscaled_embedding"] == [32, 256, 256]
    assert shapes["iou_head"] == [4]
    assert shapes["low_res_masks"] == [3, 256, 256] and shapes["iou_predictions"] == [3]
    assert shapes["masks"] == [3, 480, 640]
    blocks = trace[trace["module"].str.startswith("blocks.")]
    assert len(blocks) == 12 and list(blocks["shape"].unique()) == [(1, 64, 64, 768)]
    assert (blocks["attention"] == "global").sum() == 4
    assert list(trace["step"]) == list(range(len(trace)))
    assert trace.loc[trace["module"] == "neck", "values"].item() == 256 * 64 * 64


def test_single_mask_trace_and_hooks_are_removed():
    sam = _vit_b()
    shapes = anatomy.key_shapes(anatomy.trace_shapes(sam, multimask_output=False))
    assert shapes["low_res_masks"] == [1, 256, 256] and shapes["masks"] == [1, 1024, 1024]
    assert all(not module._forward_hooks for module in sam.modules())


def test_real_trace_of_the_tiny_sam_matches_its_outputs():
    image = _image()
    trace = anatomy.trace_shapes(load_tiny_sam(), image, box=[20, 15, 55, 40])
    shapes = anatomy.key_shapes(trace)
    assert shapes["image_embedding"] == [64, 16, 16]  # tiny: 64 channels, 256/16 = 16 cells
    assert shapes["low_res_masks"] == [3, 64, 64]
    assert shapes["masks"] == [3, 60, 80]
    assert list(trace[trace["module"].str.startswith("blocks.")]["attention"]) == ["window 8×8", "global"]
    fig = anatomy.plot_shape_flow(trace)
    assert len(fig.axes[0].patches) >= len(trace)
    plt.close(fig)


def test_trace_checks_its_inputs():
    with pytest.raises(ValueError, match="Sam model"):
        anatomy.trace_shapes(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        anatomy.trace_shapes(_vit_b(), box=[1, 2, 3])
    with pytest.raises(ValueError, match="image_size"):
        anatomy.trace_shapes(_vit_b(), image_size=(0, 10))
    with pytest.raises(ValueError, match="trace_shapes"):
        anatomy.plot_shape_flow(anatomy.parameter_table(("sam_vit_b",)))


# ------------------------------------------------------------------------------ Fourier features


def test_fourier_features_follow_sams_formula_and_prompt_encoder():
    encoder = load_tiny_sam().prompt_encoder
    gaussian = encoder.pe_layer.positional_encoding_gaussian_matrix.numpy().astype(np.float64)
    height, width = encoder.input_image_size
    points = np.array([[10.0, 200.0], [128.0, 31.5]])
    xy = (points + 0.5) / [width, height]
    projected = 2 * np.pi * ((2 * xy - 1) @ gaussian)
    expected = np.concatenate([np.sin(projected), np.cos(projected)], axis=1)
    features = anatomy.fourier_features(encoder, points)
    assert features.shape == (2, 2 * gaussian.shape[1])
    np.testing.assert_allclose(features, expected, atol=1e-4)
    # a box token is its corner's Fourier code plus the learned corner embedding
    box = torch.tensor([[10.0, 200.0, 128.0, 31.5]])
    with torch.inference_mode():
        tokens = encoder._embed_boxes(box)[0].numpy()
    np.testing.assert_allclose(
        tokens[0] - encoder.point_embeddings[2].weight[0].detach().numpy(), features[0], atol=1e-4
    )
    np.testing.assert_allclose(anatomy.fourier_features(encoder, points[0]), features[:1], atol=1e-6)


def test_fourier_features_are_local():
    encoder = load_tiny_sam().prompt_encoder
    features = anatomy.fourier_features(encoder, [[100, 100], [102, 101], [230, 20]])
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > 0.9 > 0.5 > abs(unit[0] @ unit[2])


def test_fourier_features_need_values_and_good_coords():
    with pytest.raises(ValueError, match="meta device"):
        anatomy.fourier_features(_vit_b().prompt_encoder, [[1, 2]])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        anatomy.fourier_features(load_tiny_sam().prompt_encoder, [[1, 2, 3]])
    with pytest.raises(ValueError, match="meta device"):
        anatomy.plot_fourier_encoding(_vit_b().prompt_encoder)


def test_plot_fourier_encoding_draws_four_panels():
    fig = anatomy.plot_fourier_encoding(load_tiny_sam().prompt_encoder, point=(50, 60), grid=32)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    plt.close(fig)


# ------------------------------------------------------------------------------ embeddings, tokens


def test_embedding_pca_rgb_separates_regions_and_blacks_out_padding():
    rng = np.random.default_rng(0)
    embedding = rng.normal(0, 0.05, size=(1, 16, 8, 8))
    embedding[0, :, :, :3] += rng.normal(0, 1, size=(16, 1, 1))  # left part: one direction
    embedding[0, :, 6:, :] = 100.0  # "padding" rows with a huge value
    rgb = anatomy.embedding_pca_rgb(torch.as_tensor(embedding), valid_hw=(6, 8))
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb[6:] == 0).all()
    left, right = rgb[:6, :3].mean(axis=(0, 1)), rgb[:6, 4:].mean(axis=(0, 1))
    assert np.abs(left - right).max() > 0.5
    np.testing.assert_array_equal(rgb, anatomy.embedding_pca_rgb(embedding[0], valid_hw=(6, 8)))


def test_embedding_pca_rgb_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\(1, C, H, W\)"):
        anatomy.embedding_pca_rgb(np.zeros((64, 64)))
    with pytest.raises(ValueError, match="valid_hw"):
        anatomy.embedding_pca_rgb(np.zeros((4, 8, 8)), valid_hw=(9, 8))
    with pytest.raises(ValueError, match="NaN"):
        anatomy.embedding_pca_rgb(np.full((4, 8, 8), np.nan))
    with pytest.raises(ValueError, match="meta"):
        anatomy.embedding_pca_rgb(torch.empty(1, 4, 8, 8, device="meta"))


def test_valid_embedding_size():
    assert anatomy.valid_embedding_size(_vit_b(), (480, 640)) == (48, 64)
    assert anatomy.valid_embedding_size(_vit_b(), (1024, 1024, 3)) == (64, 64)
    assert anatomy.valid_embedding_size(load_tiny_sam(), (217, 181)) == (16, 14)  # 181 → 214 px → 13.4 cells
    with pytest.raises(ValueError, match="height, width"):
        anatomy.valid_embedding_size(_vit_b(), (5,))


def test_mask_token_outputs_are_what_predict_returns():
    image = _image()
    predictor = _tiny_predictor(image)
    box = np.array([20, 15, 55, 40], dtype=np.float32)
    masks, iou = anatomy.mask_token_outputs(predictor, box)
    assert masks.shape == (4, 60, 80) and masks.dtype == bool and iou.shape == (4,)
    single, single_iou, _ = predictor.predict(box=box, multimask_output=False)
    multi, multi_iou, _ = predictor.predict(box=box, multimask_output=True)
    np.testing.assert_array_equal(masks[:1], single)
    np.testing.assert_array_equal(masks[1:], multi)
    np.testing.assert_allclose(iou, np.concatenate([single_iou, multi_iou]), atol=1e-5)
    fig = anatomy.plot_mask_tokens(image, masks, iou, box=box, ground_truth=masks[0])
    assert len(fig.axes) == 4 and "Dice" in fig.axes[0].get_title()
    plt.close(fig)


def test_mask_tokens_check_their_inputs():
    with pytest.raises(ValueError, match="set_image"):
        anatomy.mask_token_outputs(models.CoursePredictor(load_tiny_sam()), [0, 0, 5, 5])
    predictor = _tiny_predictor(_image())
    with pytest.raises(ValueError, match="x0, y0, x1, y1"):
        anatomy.mask_token_outputs(predictor, [0, 0, 5])
    with pytest.raises(ValueError, match="mask_token_outputs"):
        anatomy.plot_mask_tokens(_image(), np.zeros((4, 10, 10), bool), [0.5] * 4)


# ------------------------------------------------------------------------------ timing


def test_component_timing_reports_positive_medians():
    image = _image()
    timing = anatomy.component_timing(load_tiny_sam(), image, n_prompts=3, repeats=2)
    assert timing.device == "cpu" and timing.n_prompts == 3 and timing.repeats == 2
    for value in (timing.encoder_s, timing.prompt_encoder_ms, timing.mask_decoder_ms, timing.postprocess_ms):
        assert value > 0
    assert timing.decoder_ms == pytest.approx(timing.prompt_encoder_ms + timing.mask_decoder_ms)
    assert timing.speedup == pytest.approx(1000 * timing.encoder_s / timing.decoder_ms)
    # encoding once is never slower than encoding for every prompt, and equal for one prompt
    assert timing.seconds_for(10) < timing.seconds_for(10, embed_once=False)
    assert timing.seconds_for(1) == pytest.approx(timing.seconds_for(1, embed_once=False))
    record = timing.as_dict()
    assert {"encoder_s", "decoder_ms", "speedup", "per_prompt_ms", "n_prompts"} <= set(record)
    table = timing.table()
    assert len(table) == 5 and table["share"].sum() == pytest.approx(1.0)
    fig = anatomy.plot_embed_once(timing, max_prompts=5)
    assert len(fig.axes) == 2
    plt.close(fig)


def test_component_timing_accepts_a_predictor_and_boxes():
    image = _image()
    predictor = models.CoursePredictor(load_tiny_sam())
    boxes = np.array([[20, 15, 55, 40], [0, 0, 80, 60]], dtype=np.float32)
    timing = anatomy.component_timing(predictor, image, boxes=boxes, repeats=1)
    assert timing.n_prompts == 2


def test_component_timing_checks_its_inputs():
    image = _image()
    with pytest.raises(ValueError, match="meta device"):
        anatomy.component_timing(_vit_b(), image)
    with pytest.raises(ValueError, match="repeats"):
        anatomy.component_timing(load_tiny_sam(), image, repeats=0)
    with pytest.raises(ValueError, match="n_prompts"):
        anatomy.component_timing(load_tiny_sam(), image, n_prompts=0)
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        anatomy.component_timing(load_tiny_sam(), image, boxes=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Sam model"):
        anatomy.component_timing(object(), image)
    with pytest.raises(ValueError, match="ComponentTiming"):
        anatomy.plot_embed_once({"encoder_s": 1.0})


def test_format_shape():
    assert anatomy.format_shape((1, 256, 64, 64)) == "1×256×64×64"


# ------------------------------------------------------------------------------ FLOPs, precision, encoder time


def test_stage_gflop_counts_the_bench_numbers_on_the_meta_device():
    vit_b = anatomy.stage_gflop("sam_vit_b")
    assert vit_b["image_encoder"] == pytest.approx(972.1, abs=0.1)  # benchmarks/RESULTS.md: 972.1
    assert vit_b["prompt_to_mask"] == pytest.approx(3.62, abs=0.01)  # the bench's prompt→mask GFLOP


def test_stage_gflop_equals_a_count_on_real_weights():
    from torch.utils.flop_counter import FlopCounterMode

    sam = load_tiny_sam()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        sam.image_encoder(torch.zeros(1, 3, 256, 256))
    assert anatomy.stage_gflop("tiny_sam")["image_encoder"] == pytest.approx(counter.get_total_flops() / 1e9)
    assert 0 < anatomy.stage_gflop("tiny_sam")["prompt_to_mask"] < anatomy.stage_gflop("tiny_sam")["image_encoder"]


def test_encoder_dtype_follows_the_predictors_autocast():
    assert anatomy.encoder_dtype("cpu") == torch.float32
    if torch.cuda.is_available():
        assert anatomy.encoder_dtype("cuda") == torch.float16


def test_encoder_seconds_times_set_image_after_a_warm_up():
    predictor = models.CoursePredictor(load_tiny_sam(), name="tiny_sam")
    assert anatomy.encoder_seconds(predictor, _image()) > 0 and predictor.encoder_calls == 2
    assert anatomy.encoder_seconds(predictor, _image(), warmup=False) > 0 and predictor.encoder_calls == 3


# ------------------------------------------------------------------------------ a box's tokens, decoded


def test_box_tokens_decode_to_what_predict_returns():
    predictor = _tiny_predictor(_image())
    box = np.array([20, 15, 55, 40], dtype=np.float32)
    tokens = anatomy.box_tokens(predictor, box)
    assert tokens.shape == (2, predictor.model.prompt_encoder.embed_dim)
    mask, logits = anatomy.decode_tokens(predictor, tokens)
    single, _, low_res = predictor.predict(box=box, multimask_output=False)
    np.testing.assert_array_equal(mask, single[0])
    np.testing.assert_allclose(logits, low_res[0], atol=1e-5)
    other = anatomy.box_tokens(predictor, [0, 0, 10, 10])
    assert not np.allclose(other, tokens)  # the tokens carry the box's position
    _, other_logits = anatomy.decode_tokens(predictor, other)
    assert not np.allclose(other_logits, logits)  # and the decoder reads it


def test_box_tokens_and_decode_check_their_inputs():
    with pytest.raises(ValueError, match="set_image"):
        anatomy.box_tokens(models.CoursePredictor(load_tiny_sam()), [0, 0, 5, 5])
    with pytest.raises(ValueError, match="set_image"):
        anatomy.decode_tokens(models.CoursePredictor(load_tiny_sam()), np.zeros((2, 64)))
    with pytest.raises(ValueError, match=r"\(N, 64\)"):
        anatomy.decode_tokens(_tiny_predictor(_image()), np.zeros((2, 63)))

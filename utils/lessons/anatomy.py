"""Look inside a SAM: parameter counts, shapes traced with forward hooks, positional codes, timing.

SAM (Kirillov et al. 2023) has three parts, and this module measures each of them live:

- the **image encoder** (an MAE-pretrained ViT; ViT-B/L/H) turns a 1024×1024 image into a
  256×64×64 *image embedding* — once per image;
- the **prompt encoder** turns points and box corners into 256-d *sparse* tokens (random Fourier
  features of the position plus a learned "what kind of point" vector) and a mask prompt (or the
  learned "no mask" vector) into a 256×64×64 *dense* embedding;
- the **mask decoder** (a two-way transformer over 1 IoU token + 4 mask tokens + the prompt tokens)
  predicts 3+1 low-resolution masks (256×256) and an IoU estimate for each — once per prompt.

Functions:

- :func:`utils.models.meta_sam` builds an official SAM on PyTorch's ``meta`` device: every tensor has a shape
  but no data, so ViT-H's 641M parameters cost no memory and no download.
- :func:`parameter_table` / :func:`compare_with_published` / :func:`component_breakdown`: live
  counts per component, and the published counts (:data:`PUBLISHED_PARAMS`) beside them.
- :func:`trace_shapes` runs one image and one box through a SAM (meta or real) with forward hooks
  and returns the ordered table of module → output shape; :func:`plot_shape_flow` draws it and
  :func:`key_shapes` picks the shapes a reader should remember.
- :func:`fourier_features` / :func:`plot_fourier_encoding`: the prompt encoder's random Fourier
  positional encoding of points and box corners.
- :func:`embedding_pca_rgb`: the three main directions of a 256×64×64 embedding as an RGB picture.
- :func:`mask_token_outputs` / :func:`plot_mask_tokens`: all four mask tokens' masks and IoU guesses.
- :func:`component_timing` / :func:`plot_embed_once`: the encoder's time against the prompt
  encoder's and decoder's per prompt — why "embed once, prompt many" works.
- :func:`stage_gflop` (FLOPs of the encoder and of one box prompt, counted on the meta device),
  :func:`encoder_dtype` and :func:`encoder_seconds`: the arithmetic a device must do, and how long it took.
- :func:`box_tokens` / :func:`decode_tokens`: a box's two sparse tokens, and the mask the decoder makes from
  any such tokens (so a hand-written prompt encoder can be plugged in and measured).

Meta tensors compute shapes, not values: a meta model cannot encode a *point* prompt (the prompt
encoder selects padding points with a boolean mask, whose size depends on data), so
:func:`trace_shapes` prompts a meta model with a box — two corner tokens, the same sparse layout a
point pair would give.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from segment_anything.modeling import Sam
from segment_anything.utils.transforms import ResizeLongestSide

from utils.images import to_mask, to_rgb_uint8
from utils.models import count_parameters, encoder_autocast, is_meta, meta_sam

__all__ = [
    "COMPONENTS",
    "COMPONENT_COLORS",
    "PUBLISHED_PARAMS",
    "PUBLISHED_SOURCE",
    "ComponentTiming",
    "attention_layout",
    "box_tokens",
    "compare_with_published",
    "component_breakdown",
    "component_timing",
    "decode_tokens",
    "embedding_pca_rgb",
    "encoder_dtype",
    "encoder_seconds",
    "fourier_features",
    "format_shape",
    "key_shapes",
    "mask_token_outputs",
    "matches_published",
    "parameter_table",
    "plot_embed_once",
    "plot_fourier_encoding",
    "plot_mask_tokens",
    "plot_shape_flow",
    "stage_gflop",
    "trace_shapes",
    "valid_embedding_size",
]

COMPONENTS = ("image_encoder", "prompt_encoder", "mask_decoder")
COMPONENT_LABELS = {
    "input": "input",
    "image_encoder": "image encoder",
    "prompt_encoder": "prompt encoder",
    "mask_decoder": "mask decoder",
    "output": "output",
}
# One colour per component, used by every figure here (colour-blind safe: Okabe-Ito hues).
COMPONENT_COLORS = {
    "input": "#999999",
    "image_encoder": "#0072B2",
    "prompt_encoder": "#CC79A7",
    "mask_decoder": "#009E73",
    "output": "#F0E442",
}
GLOBAL_BLOCK_COLOR = "#D55E00"

#: Published parameter counts of the official SAM checkpoints, written as published (the precision
#: of each string is the precision of the comparison). Source: :data:`PUBLISHED_SOURCE`.
PUBLISHED_PARAMS: dict[str, dict[str, str]] = {
    "sam_vit_b": {"image_encoder": "89.67M", "prompt_encoder": "6,220", "mask_decoder": "4,058,340", "total": "93.7M"},
    "sam_vit_l": {
        "image_encoder": "308.28M",
        "prompt_encoder": "6,220",
        "mask_decoder": "4,058,340",
        "total": "312.3M",
    },
    "sam_vit_h": {
        "image_encoder": "637.03M",
        "prompt_encoder": "6,220",
        "mask_decoder": "4,058,340",
        "total": "641.1M",
    },
}
PUBLISHED_SOURCE = (
    "Kirillov et al. 2023, Segment Anything (ICCV; github.com/facebookresearch/segment-anything): "
    "parameter counts of the released ViT-B/L/H checkpoints"
)


# --------------------------------------------------------------------------------------------------
# Building and counting
# --------------------------------------------------------------------------------------------------


def _check_sam(sam: Any, what: str = "sam") -> Sam:
    if not isinstance(sam, Sam):
        raise ValueError(
            f"{what} must be a segment_anything Sam model (e.g. utils.models.load_sam('litemedsam') or "
            f"utils.models.meta_sam('sam_vit_b')); got {type(sam).__name__}. "
            "For a predictor pass predictor.model."
        )
    return sam


def parameter_table(names: Sequence[str] = ("sam_vit_b", "sam_vit_l", "sam_vit_h")) -> pd.DataFrame:
    """Live parameter counts per component, one row per model, built on the meta device.

    Columns: ``image_encoder``, ``prompt_encoder``, ``mask_decoder``, ``total`` (ints) and
    ``encoder_share`` (the image encoder's fraction of the total).
    """
    if isinstance(names, str):
        names = (names,)
    if not names:
        raise ValueError("parameter_table needs at least one model name, e.g. ('sam_vit_b', 'sam_vit_h').")
    rows = {}
    for name in names:
        sam = meta_sam(name)
        counts = {part: count_parameters(getattr(sam, part)) for part in COMPONENTS}
        counts["total"] = count_parameters(sam)
        rows[name] = counts
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    table["encoder_share"] = table["image_encoder"] / table["total"]
    return table


def _published_value(text: str) -> tuple[float, float]:
    """'93.7M' → (93.7e6, 0.05e6); '6,220' → (6220, 0.5): the value and half its last digit."""
    match = re.fullmatch(r"\s*([0-9][0-9,]*(?:\.([0-9]+))?)\s*([kKMB]?)\s*", str(text))
    if not match:
        raise ValueError(f"Cannot read the published count {text!r}: write it like '93.7M' or '6,220'.")
    number, decimals, suffix = match.groups()
    scale = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}[suffix]
    half_unit = 0.5 * 10 ** (-len(decimals or "")) * scale
    return float(number.replace(",", "")) * scale, half_unit


def matches_published(count: int, published: str) -> bool:
    """Does ``count`` round to ``published`` at the precision it was published with?

    ``matches_published(93_735_472, "93.7M")`` is True; ``matches_published(6_221, "6,220")`` is False.
    """
    value, half_unit = _published_value(published)
    return abs(count - value) <= half_unit + 1e-9 * max(1.0, value)


def compare_with_published(table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Live counts beside :data:`PUBLISHED_PARAMS`: one row per (model, component) with a ``match`` flag."""
    table = parameter_table(tuple(PUBLISHED_PARAMS)) if table is None else table
    rows = []
    for model in table.index:
        if model not in PUBLISHED_PARAMS:
            continue
        for part, published in PUBLISHED_PARAMS[model].items():
            counted = int(table.loc[model, part])
            rows.append(
                {
                    "model": model,
                    "component": part,
                    "counted": counted,
                    "published": published,
                    "match": matches_published(counted, published),
                }
            )
    if not rows:
        raise ValueError(f"No published counts for {list(table.index)}; known: {', '.join(PUBLISHED_PARAMS)}.")
    return pd.DataFrame(rows)


def attention_layout(image_encoder: torch.nn.Module) -> list[str]:
    """Per ViT block: ``"window 14×14"`` or ``"global"`` (from ``block.window_size``; 0 means global)."""
    blocks = getattr(image_encoder, "blocks", None)
    if blocks is None:
        raise ValueError(
            f"{type(image_encoder).__name__} has no ViT `blocks` (LiteMedSAM's TinyViT uses `layers`); "
            "attention_layout reads SAM's ImageEncoderViT."
        )
    layout = []
    for block in blocks:
        size = int(getattr(block, "window_size", 0))
        layout.append(f"window {size}×{size}" if size > 0 else "global")
    return layout


def _group_of(component: str, name: str, sam: Sam) -> str:
    """The teaching group of parameter ``name`` inside ``component`` (e.g. 'global blocks')."""
    head = name.split(".")[0]
    if component == "image_encoder":
        if head in ("patch_embed", "pos_embed"):
            return "patch embedding + position"
        if head == "blocks":
            block = sam.image_encoder.blocks[int(name.split(".")[1])]
            return "windowed blocks" if getattr(block, "window_size", 0) > 0 else "global blocks"
        return head
    if component == "prompt_encoder":
        return {
            "point_embeddings": "point / corner type embeddings",
            "not_a_point_embed": "point / corner type embeddings",
            "mask_downscaling": "mask downscaling convs",
            "no_mask_embed": "no-mask embedding",
        }.get(head, head)
    return {
        "iou_token": "IoU + mask tokens",
        "mask_tokens": "IoU + mask tokens",
        "transformer": "two-way transformer",
        "output_upscaling": "output upscaling",
        "output_hypernetworks_mlps": "hypernetwork MLPs",
        "iou_prediction_head": "IoU head",
    }.get(head, head)


def component_breakdown(sam: Sam) -> pd.DataFrame:
    """Parameters per part of each component (ViT blocks split into windowed and global).

    Columns: ``component``, ``part``, ``params``, ``share`` (of the whole model). Works on meta models.
    """
    sam = _check_sam(sam)
    total = count_parameters(sam)
    rows: dict[tuple[str, str], int] = {}
    for component in COMPONENTS:
        for name, parameter in getattr(sam, component).named_parameters():
            key = (component, _group_of(component, name, sam))
            rows[key] = rows.get(key, 0) + parameter.numel()
    table = pd.DataFrame([{"component": c, "part": p, "params": n} for (c, p), n in rows.items()])
    table["share"] = table["params"] / total
    return table


# --------------------------------------------------------------------------------------------------
# Tracing shapes with forward hooks
# --------------------------------------------------------------------------------------------------

_NOTES = {
    "input": "resized (longest side → {size}), normalised, zero-padded to {size}×{size}",
    "patch_embed": "{patch}×{patch} conv, stride {patch}: one token per patch",
    "neck": "1×1 + 3×3 convs → 256 channels: the image embedding",
    "prompt_encoder:sparse": "one 256-d token per point or box corner",
    "prompt_encoder:dense": "no mask prompt: the learned no-mask vector on every cell",
    "image_pe": "Fourier code of every embedding cell (added to keys)",
    "tokens": "1 IoU token + 4 mask tokens + the prompt tokens",
    "transformer:tokens": "tokens after two-way attention",
    "transformer:image": "image embedding after two-way attention",
    "output_upscaling": "two transposed convs: 4× larger, 32 channels",
    "output_hypernetworks_mlps": "mask token {i} → 32 weights (dot product → mask {i})",
    "iou_prediction_head": "IoU token → one IoU guess per mask token (3+1)",
    "mask_decoder:low_res_masks": "low-res mask logits (multimask: tokens 1–3)",
    "mask_decoder:iou_predictions": "predicted IoU of each returned mask",
    "postprocess": "bilinear up to {size}, crop padding, resize to the image",
}

# Names for the outputs of modules that return a tuple.
_OUTPUT_NAMES = {
    "prompt_encoder": ("sparse", "dense"),
    "transformer": ("tokens", "image"),
    "mask_decoder": ("low_res_masks", "iou_predictions"),
}


def _shape(value: Any) -> tuple[int, ...] | None:
    return tuple(int(s) for s in value.shape) if isinstance(value, torch.Tensor) else None


def format_shape(shape: Sequence[int]) -> str:
    """(1, 256, 64, 64) → '1×256×64×64'."""
    return "×".join(str(int(s)) for s in shape)


def _model_input(sam: Sam, image: np.ndarray | None, image_size: tuple[int, int] | None):
    """The encoder's input tensor and the original (H, W); meta models get an empty meta tensor."""
    size = int(sam.image_encoder.img_size)
    if image is not None:
        image = to_rgb_uint8(image, name="trace_shapes image")
        original = image.shape[:2]
    else:
        original = (size, size) if image_size is None else tuple(int(s) for s in image_size)
        if len(original) != 2 or min(original) < 1:
            raise ValueError(f"image_size must be (height, width) in pixels; got {image_size!r}.")
    resized = ResizeLongestSide(size).get_preprocess_shape(original[0], original[1], size)
    if is_meta(sam):
        # no values to normalise: the padded input shape is all a meta forward needs
        return torch.empty(1, 3, size, size, device="meta"), original, resized
    device = next(sam.parameters()).device
    if image is None:
        pixels = torch.zeros(1, 3, *resized, device=device)
    else:
        resized_image = ResizeLongestSide(size).apply_image(image)
        pixels = torch.as_tensor(resized_image, device=device).permute(2, 0, 1)[None].float()
    return sam.preprocess(pixels), original, resized


def _encoder_modules(encoder: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Direct children of the encoder, with block lists (ViT ``blocks``, TinyViT ``layers``) expanded."""
    chosen = []
    for name, child in encoder.named_children():
        if isinstance(child, torch.nn.ModuleList):
            chosen += [(f"{name}.{i}", block) for i, block in enumerate(child)]
        else:
            chosen.append((name, child))
    return chosen


def trace_shapes(
    sam: Sam,
    image: np.ndarray | None = None,
    box: Sequence[float] | None = None,
    image_size: tuple[int, int] | None = None,
    multimask_output: bool = True,
) -> pd.DataFrame:
    """Run one image and one box prompt through ``sam`` and record every stage's output shape.

    ``sam`` may live on the meta device (:func:`utils.models.meta_sam`: shapes without any arithmetic) or hold real
    weights. ``image`` is an (H, W, 3) uint8 image, or give ``image_size`` (H, W) (default: the
    encoder's square input). ``box`` is ``[x0, y0, x1, y1]`` in image pixels (default: the central
    half of the image). Forward hooks on the encoder's children (ViT blocks one by one), the prompt
    encoder and the decoder's sub-modules collect the shapes in execution order.

    Returns a DataFrame with columns ``step``, ``component``, ``module``, ``output`` (which output of
    a module with several), ``shape`` (tuple, batch first), ``values`` (elements per image),
    ``attention`` (ViT blocks: "window 14×14" or "global"; else "") and ``note``.
    """
    sam = _check_sam(sam)
    pixels, original, resized = _model_input(sam, image, image_size)
    size = int(sam.image_encoder.img_size)
    height, width = original
    box = [0.25 * width, 0.25 * height, 0.75 * width, 0.75 * height] if box is None else list(box)
    if len(box) != 4:
        raise ValueError(f"box must be [x0, y0, x1, y1] in image pixels; got {box!r}.")
    patch = getattr(getattr(sam.image_encoder, "patch_embed", None), "proj", None)
    patch_size = patch.kernel_size[0] if isinstance(patch, torch.nn.Conv2d) else None
    rows: list[dict[str, Any]] = []

    def record(component: str, module: str, value: Any, output: str = "", attention: str = "", note: str = ""):
        shape = _shape(value)
        if shape is not None:
            rows.append(
                {
                    "component": component,
                    "module": module,
                    "output": output,
                    "shape": shape,
                    "attention": attention,
                    "note": note,
                }
            )

    def hook(component: str, name: str, module: torch.nn.Module):
        def on_output(_module, inputs, output):
            if name == "transformer":  # the decoder's input tokens are the transformer's third input
                record(component, "tokens", inputs[2], note=_NOTES["tokens"])
            window = int(getattr(module, "window_size", 0))
            attention = ""
            if component == "image_encoder" and name.startswith("blocks."):
                attention = f"window {window}×{window}" if window > 0 else "global"
            base = name.split(".")[0]
            outputs = output if isinstance(output, tuple) else (output,)
            labels = _OUTPUT_NAMES.get(name, tuple(str(i) for i in range(len(outputs))))
            for label, value in zip(labels, outputs):
                key = f"{base}:{label}" if len(outputs) > 1 else base
                index = name.split(".")[1] if base == "output_hypernetworks_mlps" else ""
                note = _NOTES.get(key, "").format(patch=patch_size, size=size, i=index)
                if key == "patch_embed" and patch_size is None:  # not a ViT patch convolution (TinyViT)
                    note = "convolutional stem"
                if attention:
                    note = (
                        f"attention inside {window}×{window}-token windows" if window else "attention over all tokens"
                    )
                record(component, name, value, output=label if len(outputs) > 1 else "", attention=attention, note=note)

        return module.register_forward_hook(on_output)

    targets = [("image_encoder", n, m) for n, m in _encoder_modules(sam.image_encoder)]
    targets.append(("prompt_encoder", "prompt_encoder", sam.prompt_encoder))
    decoder = sam.mask_decoder
    targets += [("mask_decoder", "transformer", decoder.transformer)]
    targets += [("mask_decoder", "output_upscaling", decoder.output_upscaling)]
    targets += [
        ("mask_decoder", f"output_hypernetworks_mlps.{i}", mlp)
        for i, mlp in enumerate(decoder.output_hypernetworks_mlps)
    ]
    targets += [("mask_decoder", "iou_prediction_head", decoder.iou_prediction_head)]
    targets.append(("mask_decoder", "mask_decoder", decoder))
    handles = [hook(component, name, module) for component, name, module in targets]
    device = pixels.device
    scale = np.array([resized[1] / width, resized[0] / height] * 2, dtype=np.float32)
    boxes = torch.as_tensor(np.asarray(box, dtype=np.float32) * scale, device=device)[None]
    record("input", "image", pixels, note=_NOTES["input"].format(size=size))
    try:
        with torch.inference_mode():
            embedding = sam.image_encoder(pixels)
            sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
            image_pe = sam.prompt_encoder.get_dense_pe()
            record("prompt_encoder", "get_dense_pe", image_pe, output="image_pe", note=_NOTES["image_pe"])
            low_res, _ = decoder(embedding, image_pe, sparse, dense, multimask_output=multimask_output)
            masks = sam.postprocess_masks(low_res, input_size=resized, original_size=original)
            record("output", "postprocess_masks", masks, note=_NOTES["postprocess"].format(size=size))
    finally:
        for handle in handles:
            handle.remove()
    table = pd.DataFrame(rows)
    table.insert(0, "step", range(len(table)))
    table.insert(5, "values", [int(np.prod(s[1:])) for s in table["shape"]])
    return table


def key_shapes(trace: pd.DataFrame) -> dict[str, list[int]]:
    """The shapes worth remembering, batch dimension dropped: image embedding (neck), sparse and dense
    prompt embeddings, decoder tokens, low-res masks, IoU predictions and the final masks."""

    def pick(module: str, output: str = "") -> list[int]:
        chosen = trace[(trace["module"] == module) & (trace["output"] == output)]
        if chosen.empty:
            raise ValueError(f"The trace has no row for {module!r} {output!r}; make it with trace_shapes().")
        return list(chosen.iloc[-1]["shape"][1:])

    return {
        "input": pick("image"),
        "image_embedding": pick("neck"),
        "sparse_embedding": pick("prompt_encoder", "sparse"),
        "dense_embedding": pick("prompt_encoder", "dense"),
        "image_pe": pick("get_dense_pe", "image_pe"),
        "decoder_tokens": pick("tokens"),
        "upscaled_embedding": pick("output_upscaling"),
        "iou_head": pick("iou_prediction_head"),
        "low_res_masks": pick("mask_decoder", "low_res_masks"),
        "iou_predictions": pick("mask_decoder", "iou_predictions"),
        "masks": pick("postprocess_masks"),
    }


def _row_label(row: pd.Series) -> str:
    label = row["module"] + (f" [{row['output']}]" if row["output"] else "")
    return label + (f"  ({row['attention']})" if row["attention"] else "")


def plot_shape_flow(trace: pd.DataFrame, title: str = "", ax: Any = None) -> Figure:
    """One bar per traced step, top to bottom in execution order: bar length = values per image (log
    scale), colour = component, darker orange = a global-attention block; the shape is written at the
    bar's end. Shows where SAM is big (the encoder's tokens) and where it is tiny (the prompt tokens)."""
    required = {"module", "output", "shape", "values", "component", "attention"}
    if not required <= set(trace.columns):
        raise ValueError("plot_shape_flow needs the DataFrame returned by trace_shapes().")
    n = len(trace)
    if ax is None:
        fig, ax = plt.subplots(figsize=(9.5, 0.26 * n + 1.4), layout="constrained")
    else:
        fig = ax.figure
    y = np.arange(n)
    colors = [
        GLOBAL_BLOCK_COLOR if row["attention"] == "global" else COMPONENT_COLORS.get(row["component"], "#777777")
        for _, row in trace.iterrows()
    ]
    ax.barh(y, trace["values"], color=colors, height=0.72)
    ax.set_xscale("log")
    ax.set_yticks(y, [_row_label(row) for _, row in trace.iterrows()], fontsize=8)
    ax.invert_yaxis()
    for i, (_, row) in enumerate(trace.iterrows()):
        ax.text(row["values"] * 1.25, i, format_shape(row["shape"]), va="center", fontsize=7.5)
    ax.set_xlim(1, trace["values"].max() * 60)
    ax.set_xlabel("values per image (log scale); text: tensor shape, batch first")
    handles = [Patch(color=COMPONENT_COLORS[k], label=COMPONENT_LABELS[k]) for k in COMPONENT_COLORS]
    if (trace["attention"] == "global").any():
        handles.insert(2, Patch(color=GLOBAL_BLOCK_COLOR, label="global-attention block"))
    ax.legend(handles=handles, loc="lower right", fontsize=8, frameon=True)
    ax.set_title(title or "One image and one box through SAM", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    return fig


# --------------------------------------------------------------------------------------------------
# The prompt encoder's random Fourier features
# --------------------------------------------------------------------------------------------------


def _require_values(module: torch.nn.Module, what: str) -> None:
    if is_meta(module) or any(b.device.type == "meta" for b in module.buffers()):
        raise ValueError(
            f"{what} needs real values, but this model is on the meta device (shapes only). "
            "Use a loaded model, e.g. utils.models.load_sam('litemedsam')."
        )


def fourier_features(prompt_encoder: torch.nn.Module, coords: Any, pixel_centre: bool = True) -> np.ndarray:
    """Random Fourier features of points, as SAM's prompt encoder computes them: (N, embed_dim).

    ``coords`` is (N, 2) as (x, y) in the model's input frame (pixels of the resized image, e.g.
    0..1024 for SAM, 0..256 for LiteMedSAM). Like ``PromptEncoder._embed_points`` the point moves to
    its pixel centre (+0.5) when ``pixel_centre``; it is then scaled to [0, 1], mapped to [-1, 1],
    projected by the fixed random matrix G (2 × embed_dim/2) and turned into [sin(2π·p G), cos(2π·p G)].
    The learned "positive / negative / corner" vector the prompt encoder adds is not included.
    """
    _require_values(prompt_encoder, "fourier_features")
    coords = np.asarray(coords, dtype=np.float32)
    if coords.ndim == 1:
        coords = coords[None]
    if coords.ndim != 2 or coords.shape[1] != 2 or not np.isfinite(coords).all():
        raise ValueError(f"coords must be (N, 2) finite (x, y) pixels; got shape {coords.shape}.")
    matrix = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    points = torch.as_tensor(coords + (0.5 if pixel_centre else 0.0), device=matrix.device)[None]
    with torch.inference_mode():
        features = prompt_encoder.pe_layer.forward_with_coords(points, prompt_encoder.input_image_size)
    return features[0].float().cpu().numpy()


def _cosine_map(features: np.ndarray, query: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    return (unit @ (query / np.linalg.norm(query))).reshape(shape)


def plot_fourier_encoding(
    prompt_encoder: torch.nn.Module,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    grid: int = 128,
) -> Figure:
    """Four panels on the model's input frame: a low- and a high-frequency channel of the positional
    code, the cosine similarity of one point's code to every position, and the same for a box's two
    corners (each pixel shows the larger of the two similarities). ``point`` and ``box`` are in input
    pixels (default: a point at 40 % / 60 % and a box over the central third)."""
    _require_values(prompt_encoder, "plot_fourier_encoding")
    height, width = (int(s) for s in prompt_encoder.input_image_size)
    point = np.array([0.4 * width, 0.6 * height] if point is None else point, dtype=np.float32)
    box = np.array([width / 3, height / 3, 2 * width / 3, 2 * height / 3] if box is None else box, dtype=np.float32)
    ys, xs = np.meshgrid(np.linspace(0, height - 1, grid), np.linspace(0, width - 1, grid), indexing="ij")
    grid_features = fourier_features(prompt_encoder, np.stack([xs.ravel(), ys.ravel()], axis=1))
    matrix = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.float().cpu().numpy()
    frequency = np.linalg.norm(matrix, axis=0)  # cycles across [-1, 1] for each sin/cos pair
    low, high = int(np.argmin(frequency)), int(np.argmax(frequency))
    point_map = _cosine_map(grid_features, fourier_features(prompt_encoder, point)[0], xs.shape)
    corners = fourier_features(prompt_encoder, box.reshape(2, 2))
    corner_map = np.maximum(*(_cosine_map(grid_features, c, xs.shape) for c in corners))
    extent = (0, width, height, 0)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), layout="constrained")
    panels = [
        (grid_features[:, low].reshape(xs.shape), f"channel {low}: lowest frequency\n(|G| = {frequency[low]:.2f})"),
        (grid_features[:, high].reshape(xs.shape), f"channel {high}: highest frequency\n(|G| = {frequency[high]:.2f})"),
        (point_map, "similarity to the point's code"),
        (corner_map, "similarity to the box corners' codes"),
    ]
    for ax, (values, label) in zip(axes, panels):
        shown = ax.imshow(values, extent=extent, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(label, fontsize=9)
        ax.set_xticks([0, width])
        ax.set_yticks([0, height])
    axes[2].plot(*point, marker="*", color="#2ECC40", markersize=13, markeredgecolor="white")
    axes[3].plot(box[[0, 2, 2, 0, 0]], box[[1, 1, 3, 3, 1]], color="#FF4FD8", lw=1.5)
    fig.colorbar(shown, ax=axes, shrink=0.8, label="value / cosine similarity")
    fig.suptitle(f"Random Fourier positional encoding ({matrix.shape[1]} frequencies → {2 * matrix.shape[1]}-d)")
    return fig


# --------------------------------------------------------------------------------------------------
# Image embeddings and mask tokens
# --------------------------------------------------------------------------------------------------


def valid_embedding_size(sam: Sam, image_shape: Sequence[int]) -> tuple[int, int]:
    """How many embedding cells (rows, cols) cover the image; the rest of the grid is zero padding.

    SAM resizes the longest side to the encoder's input size and pads the short side, so a
    217×181 slice fills 64×54 of LiteMedSAM's 64×64 grid.
    """
    sam = _check_sam(sam)
    if len(image_shape) < 2 or min(image_shape[:2]) < 1:
        raise ValueError(f"image_shape must start with (height, width); got {image_shape!r}.")
    size = int(sam.image_encoder.img_size)
    resized = ResizeLongestSide.get_preprocess_shape(int(image_shape[0]), int(image_shape[1]), size)
    grid_h, grid_w = sam.prompt_encoder.image_embedding_size
    return math.ceil(resized[0] * grid_h / size), math.ceil(resized[1] * grid_w / size)


def embedding_pca_rgb(embedding: Any, valid_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Project a (1, C, H, W) or (C, H, W) embedding on its first three principal components → (H, W, 3).

    The PCA is fitted on the ``valid_hw`` top-left cells (see :func:`valid_embedding_size`; default
    all), so padding does not take a component; cells outside are black. Each component is stretched
    between its 1st and 99th percentile to 0..1, with its sign fixed (largest loading positive) so
    the colours are reproducible. Similar colours mean similar 256-d vectors.
    """
    if isinstance(embedding, torch.Tensor):
        if embedding.device.type == "meta":
            raise ValueError("embedding_pca_rgb needs values; this embedding is on the meta device.")
        embedding = embedding.detach().cpu().double().numpy()
    array = np.asarray(embedding, dtype=np.float64)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] < 3:
        raise ValueError(
            f"embedding must be (1, C, H, W) or (C, H, W) with C >= 3, e.g. predictor.features; got {array.shape}."
        )
    channels, height, width = array.shape
    rows, cols = (height, width) if valid_hw is None else (int(valid_hw[0]), int(valid_hw[1]))
    if not (0 < rows <= height and 0 < cols <= width):
        raise ValueError(f"valid_hw {valid_hw!r} must fit inside the {height}×{width} grid.")
    if not np.isfinite(array).all():
        raise ValueError("embedding contains NaN or inf.")
    valid = array[:, :rows, :cols].reshape(channels, -1).T
    mean = valid.mean(axis=0)
    centred = valid - mean
    # eigenvectors of the C×C covariance: cheaper than an SVD of the (cells × C) matrix
    _, vectors = np.linalg.eigh(centred.T @ centred)
    components = vectors[:, ::-1][:, :3].T.copy()  # eigh sorts ascending: take the three largest
    components *= np.sign(components[np.arange(3), np.abs(components).argmax(axis=1)])[:, None]
    projected = centred @ components.T
    low, high = np.percentile(projected, [1, 99], axis=0)
    scaled = np.clip((projected - low) / np.maximum(high - low, 1e-12), 0, 1)
    rgb = np.zeros((height, width, 3), dtype=np.float32)
    rgb[:rows, :cols] = scaled.reshape(rows, cols, 3)
    return rgb


def mask_token_outputs(predictor: Any, box: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """All 3+1 masks for one box: (4, H, W) bool at the image's size and the IoU head's 4 guesses.

    Token 0 is what ``predict(multimask_output=False)`` returns; tokens 1–3 are the three "ambiguity"
    masks ``multimask_output=True`` returns. ``predictor`` must have an image set.
    """
    if not getattr(predictor, "is_image_set", False):
        raise ValueError("mask_token_outputs needs a predictor with an image: call predictor.set_image(image) first.")
    box = np.asarray(box, dtype=np.float32)
    if box.shape != (4,):
        raise ValueError(f"box must be [x0, y0, x1, y1] in image pixels; got shape {box.shape}.")
    sam = predictor.model
    boxes = torch.as_tensor(predictor.transform.apply_boxes(box[None], predictor.original_size), device=sam.device)
    with torch.inference_mode():
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        low_res, iou = sam.mask_decoder.predict_masks(
            image_embeddings=predictor.features,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        masks = sam.postprocess_masks(low_res, predictor.input_size, predictor.original_size) > sam.mask_threshold
    return masks[0].cpu().numpy(), iou[0].float().cpu().numpy()


def plot_mask_tokens(
    image: np.ndarray,
    masks: np.ndarray,
    iou_predictions: Sequence[float],
    box: Sequence[float] | None = None,
    ground_truth: np.ndarray | None = None,
) -> Figure:
    """One panel per mask token: the mask (blue), the box (magenta), the ground truth (gold outline),
    with the IoU head's guess — and the Dice with the ground truth when it is given."""
    from utils import viz
    from utils.metrics import dice

    image = to_rgb_uint8(image, name="plot_mask_tokens image")
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2] or len(iou_predictions) != masks.shape[0]:
        raise ValueError(
            f"masks must be (K, H, W) matching the image {image.shape[:2]} with K IoU predictions; "
            f"got masks {masks.shape} and {len(iou_predictions)} predictions (use mask_token_outputs())."
        )
    fig, axes = plt.subplots(1, len(masks), figsize=(3.2 * len(masks), 3.6), layout="constrained", squeeze=False)
    for index, (ax, mask, score) in enumerate(zip(axes[0], masks, iou_predictions)):
        ax.imshow(image)
        viz.show_mask(ax, to_mask(mask))
        if ground_truth is not None:
            viz.show_mask(
                ax, to_mask(ground_truth, shape=image.shape), color=viz.course_palette["ground_truth"], alpha=0
            )
        if box is not None:
            viz.show_box(ax, box)
        kind = "single-mask token" if index == 0 else "multimask token"
        text = f"token {index} ({kind})\npredicted IoU {score:.2f}"
        if ground_truth is not None:
            text += f" · Dice {dice(mask, ground_truth):.2f}"
        ax.set_title(text, fontsize=9)
        ax.set_axis_off()
    viz.add_legend(fig, ["prediction", "box"] + (["ground_truth"] if ground_truth is not None else []), ncol=3)
    return fig


# --------------------------------------------------------------------------------------------------
# Timing: embed once, prompt many
# --------------------------------------------------------------------------------------------------


@dataclass
class ComponentTiming:
    """Median times of SAM's stages on one device. ``decoder_ms`` is the per-prompt cost (prompt
    encoder + mask decoder); ``per_prompt_ms`` adds upscaling the masks to the image."""

    device: str
    n_prompts: int
    repeats: int
    preprocess_ms: float
    encoder_s: float
    prompt_encoder_ms: float
    mask_decoder_ms: float
    postprocess_ms: float

    @property
    def decoder_ms(self) -> float:
        return self.prompt_encoder_ms + self.mask_decoder_ms

    @property
    def per_prompt_ms(self) -> float:
        return self.decoder_ms + self.postprocess_ms

    @property
    def speedup(self) -> float:
        """How many prompts' decoding fit into one encoder pass (encoder time / decoder time per prompt)."""
        return 1000.0 * self.encoder_s / self.decoder_ms

    def seconds_for(self, n_prompts: int, embed_once: bool = True) -> float:
        """Wall time for ``n_prompts`` prompts on one image: encoding once, or again for every prompt."""
        encoder = self.encoder_s + self.preprocess_ms / 1000.0
        encodes = 1 if embed_once else n_prompts
        return encodes * encoder + n_prompts * self.per_prompt_ms / 1000.0

    def table(self) -> pd.DataFrame:
        """One row per stage: how often it runs, its median time in ms and its ``share`` of the time that
        one image with one prompt takes."""
        rows = [
            ("preprocess (resize, normalise, pad)", "once per image", self.preprocess_ms),
            ("image encoder", "once per image", 1000.0 * self.encoder_s),
            ("prompt encoder", "per prompt", self.prompt_encoder_ms),
            ("mask decoder", "per prompt", self.mask_decoder_ms),
            ("upscale masks to the image", "per prompt", self.postprocess_ms),
        ]
        table = pd.DataFrame(rows, columns=["stage", "runs", "median_ms"]).set_index("stage")
        table["share"] = table["median_ms"] / table["median_ms"].sum()
        return table

    def as_dict(self) -> dict[str, Any]:
        """Everything for results.json, derived numbers included."""
        return {
            **asdict(self),
            "decoder_ms": self.decoder_ms,
            "per_prompt_ms": self.per_prompt_ms,
            "speedup": self.speedup,
        }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(device: torch.device, function, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    _sync(device)
    start = time.perf_counter()
    result = function(*args, **kwargs)
    _sync(device)
    return result, time.perf_counter() - start


def _encode(sam: Sam, pixels: torch.Tensor) -> torch.Tensor:
    # as CoursePredictor.set_image runs it: float16 autocast on CUDA, float32 features for the decoder
    with encoder_autocast(pixels.device):
        return sam.image_encoder(pixels).float()


def component_timing(
    model: Any,
    image: np.ndarray,
    n_prompts: int = 8,
    repeats: int = 3,
    boxes: np.ndarray | None = None,
    seed: int = 0,
) -> ComponentTiming:
    """Time each stage of SAM on ``image`` on the model's own device (median of ``repeats`` encoder
    passes, median over ``n_prompts`` box prompts for the per-prompt stages, after one warm-up).

    ``model`` is a ``Sam`` or a predictor (its ``.model`` is used). ``boxes`` (N, 4) in image pixels
    overrides the ``n_prompts`` random boxes drawn with ``seed``.
    """
    sam = _check_sam(getattr(model, "model", model), "model")
    _require_values(sam, "component_timing")
    image = to_rgb_uint8(image, name="component_timing image")
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer; got {repeats!r}.")
    height, width = image.shape[:2]
    if boxes is None:
        if isinstance(n_prompts, bool) or not isinstance(n_prompts, (int, np.integer)) or n_prompts < 1:
            raise ValueError(f"n_prompts must be a positive integer; got {n_prompts!r}.")
        rng = np.random.default_rng(seed)
        corners = rng.uniform(0, 1, size=(n_prompts, 2, 2)) * [width, height]
        boxes = np.concatenate([corners.min(axis=1), corners.max(axis=1)], axis=1)
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) < 1:
        raise ValueError(f"boxes must be (N, 4) as [x0, y0, x1, y1] rows; got shape {boxes.shape}.")
    device = sam.device
    transform = ResizeLongestSide(sam.image_encoder.img_size)

    def preprocess():
        resized = transform.apply_image(image)
        pixels = torch.as_tensor(resized, device=device).permute(2, 0, 1)[None].float()
        return sam.preprocess(pixels), resized.shape[:2]

    with torch.inference_mode():
        (pixels, input_size), preprocess_s = _timed(device, preprocess)
        encoder_times = []
        for _ in range(repeats):
            embedding, seconds = _timed(device, _encode, sam, pixels)
            encoder_times.append(seconds)
        image_pe = sam.prompt_encoder.get_dense_pe()
        stage_times: dict[str, list[float]] = {"prompt": [], "decoder": [], "post": []}
        for index, box in enumerate(np.concatenate([boxes[:1], boxes])):  # the first pass warms up
            box_input = torch.as_tensor(transform.apply_boxes(box[None], (height, width)), device=device)
            (sparse, dense), prompt_s = _timed(device, sam.prompt_encoder, None, box_input, None)
            (low_res, _), decoder_s = _timed(device, sam.mask_decoder, embedding, image_pe, sparse, dense, True)
            _, post_s = _timed(device, sam.postprocess_masks, low_res, input_size, (height, width))
            if index > 0:
                for key, seconds in (("prompt", prompt_s), ("decoder", decoder_s), ("post", post_s)):
                    stage_times[key].append(seconds)
    return ComponentTiming(
        device=str(device),
        n_prompts=len(boxes),
        repeats=int(repeats),
        preprocess_ms=1000.0 * preprocess_s,
        encoder_s=float(np.median(encoder_times)),
        prompt_encoder_ms=1000.0 * float(np.median(stage_times["prompt"])),
        mask_decoder_ms=1000.0 * float(np.median(stage_times["decoder"])),
        postprocess_ms=1000.0 * float(np.median(stage_times["post"])),
    )


def plot_embed_once(timing: ComponentTiming, max_prompts: int = 30, title: str = "") -> Figure:
    """Cumulative time for 1..``max_prompts`` prompts on one image: encode once vs encode every time
    (left), and one prompt's time split into stages (right)."""
    if not isinstance(timing, ComponentTiming):
        raise ValueError("plot_embed_once needs the ComponentTiming returned by component_timing().")
    if isinstance(max_prompts, bool) or not isinstance(max_prompts, (int, np.integer)) or max_prompts < 1:
        raise ValueError(f"max_prompts must be a positive integer; got {max_prompts!r}.")
    prompts = np.arange(1, max_prompts + 1)
    once = [timing.seconds_for(int(n), embed_once=True) for n in prompts]
    every = [timing.seconds_for(int(n), embed_once=False) for n in prompts]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained", width_ratios=(1.3, 1))
    left.plot(prompts, every, color=GLOBAL_BLOCK_COLOR, lw=2, label="encode the image for every prompt")
    left.plot(prompts, once, color=COMPONENT_COLORS["mask_decoder"], lw=2, label="embed once, prompt many")
    left.set_xlabel("prompts on one image")
    left.set_ylabel("seconds")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    left.set_title(
        f"{max_prompts} prompts: {every[-1]:.1f} s vs {once[-1]:.2f} s ({every[-1] / once[-1]:.0f}× less)", fontsize=10
    )
    stages = timing.table()["median_ms"]
    colors = [COMPONENT_COLORS[k] for k in ("input", "image_encoder", "prompt_encoder", "mask_decoder", "output")]
    right.barh(stages.index, stages.values, color=colors)
    right.set_xscale("log")
    right.invert_yaxis()
    for i, value in enumerate(stages.values):
        right.text(value * 1.15, i, f"{value:.1f} ms", va="center", fontsize=8)
    right.set_xlim(stages.min() / 3, stages.max() * 8)
    right.set_xlabel("median ms per call (log scale)")
    right.set_title(f"one image, one prompt on {timing.device}", fontsize=10)
    fig.suptitle(title or f"The encoder costs {timing.speedup:.0f}× one prompt's decoding", fontsize=11)
    return fig


# --------------------------------------------------------------------------------------------------
# Arithmetic and time: FLOPs counted on the meta device, the encoder's precision and wall time
# --------------------------------------------------------------------------------------------------


@functools.cache
def stage_gflop(name: str) -> dict[str, float]:
    """GFLOP of registry model ``name``'s stages, counted by ``torch.utils.flop_counter`` on the meta device
    (no weights, no download, a fraction of a second): ``image_encoder`` for one image at the model's
    input size, ``prompt_to_mask`` for one box (prompt encoder + mask decoder, three masks).

    A multiply-add counts as 2 FLOPs, as in ``benchmarks/bench.py`` (SAM ViT-B's encoder: 972 GFLOP).
    """
    from torch.utils.flop_counter import FlopCounterMode

    sam = meta_sam(name).requires_grad_(False)  # FlopCounterMode's module tracker hooks tensors needing grads
    size = sam.image_encoder.img_size
    with torch.no_grad(), FlopCounterMode(display=False) as encoder:
        embedding = sam.image_encoder(torch.zeros(1, 3, size, size, device="meta"))
    box = torch.tensor([[0.0, 0.0, size / 2, size / 2]], device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as prompt:
        sparse, dense = sam.prompt_encoder(points=None, boxes=box, masks=None)
        sam.mask_decoder(embedding, sam.prompt_encoder.get_dense_pe(), sparse, dense, multimask_output=True)
    return {"image_encoder": encoder.get_total_flops() / 1e9, "prompt_to_mask": prompt.get_total_flops() / 1e9}


def encoder_dtype(device: str | torch.device) -> torch.dtype:
    """The precision the course's predictor runs the image encoder in on ``device`` (float16 on CUDA,
    float32 elsewhere: :func:`utils.models.encoder_autocast` decides)."""
    device = torch.device(device)
    with encoder_autocast(device):
        if torch.is_autocast_enabled(device.type):
            return torch.get_autocast_dtype(device.type)
    return torch.float32


def encoder_seconds(predictor: Any, image: np.ndarray, warmup: bool = True) -> float:
    """Wall time of one ``predictor.set_image(image)`` (pre-processing + image encoder), synchronised on CUDA.

    ``warmup`` first runs one untimed pass: the first call pays one-off costs (memory allocation, kernel
    selection on a GPU) that say nothing about the model. Each pass adds one to ``encoder_calls``.
    """
    device = torch.device(predictor.device)
    if warmup:
        predictor.set_image(image)
    _, seconds = _timed(device, predictor.set_image, image)
    return seconds


# --------------------------------------------------------------------------------------------------
# A box's sparse tokens, and the mask the decoder makes from any tokens
# --------------------------------------------------------------------------------------------------


def box_tokens(predictor: Any, box: Sequence[float]) -> np.ndarray:
    """The prompt encoder's two sparse tokens (2, C) for ``box`` ``[x0, y0, x1, y1]`` in image pixels:
    the Fourier code of each corner plus the learned top-left / bottom-right vector."""
    if not getattr(predictor, "is_image_set", False):
        raise ValueError("box_tokens needs a predictor with an image: call predictor.set_image(image) first.")
    sam = predictor.model
    box = np.asarray(box, dtype=np.float32).reshape(1, 4)
    boxes = torch.as_tensor(predictor.transform.apply_boxes(box, predictor.original_size), device=sam.device)
    with torch.inference_mode():
        sparse, _ = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
    return sparse[0].float().cpu().numpy()


def decode_tokens(predictor: Any, tokens: Any) -> tuple[np.ndarray, np.ndarray]:
    """The single mask (H, W) bool and its low-res logits (256, 256) that the mask decoder makes from the
    sparse prompt ``tokens`` (N, C) and no mask prompt — what ``predict(multimask_output=False)`` does
    after the prompt encoder, so hand-made tokens can be compared with the prompt encoder's."""
    if not getattr(predictor, "is_image_set", False):
        raise ValueError("decode_tokens needs a predictor with an image: call predictor.set_image(image) first.")
    sam = predictor.model
    width = sam.prompt_encoder.embed_dim
    sparse = torch.as_tensor(np.asarray(tokens, dtype=np.float32), device=sam.device)
    if sparse.ndim != 2 or sparse.shape[1] != width:
        raise ValueError(f"tokens must be (N, {width}): one {width}-d row per prompt token; got {tuple(sparse.shape)}.")
    with torch.inference_mode():
        _, dense = sam.prompt_encoder(points=None, boxes=None, masks=None)  # the learned "no mask" embedding
        low_res, _ = sam.mask_decoder(
            predictor.features, sam.prompt_encoder.get_dense_pe(), sparse[None], dense, multimask_output=False
        )
        mask = sam.postprocess_masks(low_res, predictor.input_size, predictor.original_size) > sam.mask_threshold
    return mask[0, 0].cpu().numpy(), low_res[0, 0].float().cpu().numpy()

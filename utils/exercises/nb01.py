"""Exercises of notebook 01 (SAM's architecture): each checker computes the truth from its context."""

from __future__ import annotations

import math

import numpy as np

from utils.exercises import exercise

# ------------------------------------------------------------------ 1. windowed vs global attention


def _solve_attention_cost(image_size=1024, patch=16, window=14):
    side = image_size // patch  # tokens per row of the grid
    tokens = side * side
    padded = math.ceil(side / window) * window  # the grid is zero-padded to a multiple of the window
    n_windows = (padded // window) ** 2
    return {
        "tokens": tokens,
        "global_scores": tokens * tokens,  # every token attends to every token
        "window_scores": n_windows * (window * window) ** 2,  # every token attends inside its window
    }


def _attention_truth(image_size: int, patch: int, window: int) -> dict[str, int]:
    side = image_size // patch
    windows_per_side = -(-side // window)
    return {
        "tokens": side**2,
        "global_scores": side**4,
        "window_scores": windows_per_side**2 * window**4,
    }


@exercise(
    "01.attention_cost",
    "ViT-B cuts a 1024×1024 image into 16×16 patches. How many tokens is that, and how many query–key "
    "scores (per head) does one global block compute versus one windowed block (14×14-token windows; the "
    "grid is zero-padded to a multiple of 14)? Answer a dict with keys 'tokens', 'global_scores', "
    "'window_scores'.",
    solver=_solve_attention_cost,
    hint="global: tokens²; windowed: (number of windows) × (tokens per window)². 64 is not a multiple of 14.",
    kind="check",
)
def _check_attention_cost(answer, image_size=1024, patch=16, window=14):
    truth = _attention_truth(image_size, patch, window)
    if not isinstance(answer, dict) or set(answer) != set(truth):
        return False, f"answer a dict with exactly the keys {sorted(truth)}"
    wrong = [key for key in truth if int(answer[key]) != truth[key]]
    if wrong:
        return False, f"{', '.join(wrong)} not right"
    ratio = truth["global_scores"] / truth["window_scores"]
    return True, f"a global block computes {ratio:.1f}× more scores than a windowed one"


# ------------------------------------------------------------------ 2. parameters of the IoU head


def _solve_iou_head_params(head):
    # each nn.Linear(in, out) holds an (out × in) weight matrix and out biases
    return sum(layer.in_features * layer.out_features + layer.out_features for layer in head.layers)


@exercise(
    "01.iou_head_params",
    "The mask decoder's IoU head is a 3-layer MLP (`head.layers`). Count its parameters from the layers' "
    "shapes (in_features, out_features), without calling .parameters().",
    solver=_solve_iou_head_params,
    hint="a Linear(in, out) layer has in × out weights plus out biases; print(head) shows the shapes",
    kind="check",
)
def _check_iou_head_params(answer, head):
    truth = sum(p.numel() for p in head.parameters())
    if int(answer) != truth:
        weights_only = sum(layer.in_features * layer.out_features for layer in head.layers)
        if int(answer) == weights_only:
            return False, "close: you counted the weights but not the biases"
        return False, f"{int(answer):,} is not the number of parameters"
    return True, f"{truth:,} parameters: tiny next to the encoder, yet it ranks SAM's 3 candidate masks"


# ------------------------------------------------------------------ 3. the low-res mask and its padding


def _solve_low_res_size(image_hw=(480, 640), img_size=1024, grid=64):
    scale = img_size / max(image_hw)  # the longest side is resized to img_size
    resized = [round(side * scale) for side in image_hw]
    low_res = grid * 4  # two stride-2 transposed convolutions in output_upscaling
    valid = [math.ceil(side * low_res / img_size) for side in resized]  # the rest is padding
    return {"low_res": (low_res, low_res), "valid": tuple(valid)}


@exercise(
    "01.low_res_size",
    "An image of image_hw = (height, width) pixels goes into SAM. What (H, W) are the low-res mask logits "
    "the decoder returns, and how many of their rows and columns cover the image rather than the zero "
    "padding? Answer {'low_res': (H, W), 'valid': (rows, cols)}.",
    solver=_solve_low_res_size,
    hint="longest side → img_size, pad to a square; the embedding grid is img_size/16; the decoder upscales 4×",
    kind="check",
    warmup=True,
)
def _check_low_res_size(answer, image_hw=(480, 640), img_size=1024, grid=64):
    scale = img_size / max(image_hw)
    low_res = 4 * grid
    valid = tuple(math.ceil(round(s * scale) * low_res / img_size) for s in image_hw)
    if not isinstance(answer, dict) or set(answer) != {"low_res", "valid"}:
        return False, "answer a dict with the keys 'low_res' and 'valid'"
    if tuple(int(s) for s in answer["low_res"]) != (low_res, low_res):
        return False, "the low-res size does not depend on the image: it comes from the embedding grid"
    if tuple(int(s) for s in answer["valid"]) != valid:
        return False, "the valid part is wrong: which side was padded, and by how much?"
    return True, f"{low_res}×{low_res} logits, of which {valid[0]}×{valid[1]} show the image"


# ------------------------------------------------------------------ 4. a point's Fourier features by hand


def _solve_fourier_point(prompt_encoder, point):
    gaussian = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.cpu().numpy()  # (2, 128)
    height, width = prompt_encoder.input_image_size
    xy = (np.asarray(point, dtype=np.float64) + 0.5) / [width, height]  # pixel centre, scaled to [0, 1]
    projected = 2 * np.pi * ((2 * xy - 1) @ gaussian)  # [-1, 1] coordinates times random frequencies
    return np.concatenate([np.sin(projected), np.cos(projected)])


def _fourier(prompt_encoder, point, shift: float = 0.5, swap: bool = False) -> np.ndarray:
    gaussian = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.detach().cpu().double().numpy()
    height, width = prompt_encoder.input_image_size
    xy = (np.asarray(point, dtype=np.float64) + shift) / np.array([width, height])
    projected = 2 * np.pi * ((2 * xy - 1) @ gaussian)
    parts = [np.cos(projected), np.sin(projected)] if swap else [np.sin(projected), np.cos(projected)]
    return np.concatenate(parts)


@exercise(
    "01.fourier_point",
    "Encode `point` (x, y in the model's input pixels) by hand the way the prompt encoder's pe_layer does: "
    "shift to the pixel centre, scale to [0, 1], map to [-1, 1], multiply by the random matrix G "
    "(prompt_encoder.pe_layer.positional_encoding_gaussian_matrix), multiply by 2π, and concatenate the sines "
    "and the cosines. Answer the 1-D numpy array.",
    solver=_solve_fourier_point,
    hint="x is divided by the width and y by the height (prompt_encoder.input_image_size is (H, W)); add 0.5 first",
    kind="check",
)
def _check_fourier_point(answer, prompt_encoder, point):
    answer = np.asarray(answer, dtype=np.float64).ravel()
    truth = _fourier(prompt_encoder, point)
    if answer.shape != truth.shape:
        return False, f"expected {truth.size} numbers (sin and cos of {truth.size // 2} frequencies), got {answer.size}"
    if np.allclose(answer, truth, atol=1e-4):
        return True, "your code equals prompt_encoder.pe_layer's: a fixed random map, no learned weights"
    if np.allclose(answer, _fourier(prompt_encoder, point, shift=0.0), atol=1e-4):
        return False, "almost: SAM first moves the point to its pixel centre (+0.5)"
    if np.allclose(answer, _fourier(prompt_encoder, point, swap=True), atol=1e-4):
        return False, "almost: sines come first, then cosines"
    return False, "the numbers differ from prompt_encoder.pe_layer's encoding"

"""Exercises of notebook 01 (SAM's architecture): each checker computes the truth from its context, runs the
student's component in the model, or explains this run's measurement."""

from __future__ import annotations

import math

import numpy as np

from utils.exercises import exercise, grade_prediction

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


# ------------------------------------------------------------------ 3. a point's Fourier features by hand


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


# ------------------------------------------------------------------ 4. a box's tokens, plugged into the decoder


def _solve_box_tokens(**context):
    def encode_box(prompt_encoder, box_input):
        gaussian = prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.cpu().numpy()  # (2, 128)
        height, width = prompt_encoder.input_image_size
        corners = (np.reshape(box_input, (2, 2)) + 0.5) / [width, height]  # (x0, y0), (x1, y1) in [0, 1]
        projected = 2 * np.pi * ((2 * corners - 1) @ gaussian)
        codes = np.concatenate([np.sin(projected), np.cos(projected)], axis=1)  # (2, 256): one row per corner
        # the learned "top-left corner" and "bottom-right corner" vectors (point_embeddings 2 and 3)
        kinds = [prompt_encoder.point_embeddings[i].weight.detach().cpu().numpy()[0] for i in (2, 3)]
        return codes + np.stack(kinds)

    return encode_box


def _corner_kinds(prompt_encoder) -> np.ndarray:
    return np.stack([prompt_encoder.point_embeddings[i].weight.detach().cpu().double().numpy()[0] for i in (2, 3)])


@exercise(
    "01.box_tokens",
    "Write `encode_box(prompt_encoder, box_input)`: the prompt encoder's two sparse tokens (an array of shape "
    "(2, 256)) for a box [x0, y0, x1, y1] given in the model's input pixels — each corner's Fourier code "
    "(exercise 01.fourier_point) plus the learned vector of its kind (prompt_encoder.point_embeddings[2] for "
    "the top-left corner, [3] for the bottom-right). The course feeds your tokens to the mask decoder in "
    "place of the prompt encoder's and measures whether the mask changes.",
    solver=_solve_box_tokens,
    hint="reshape the box to two (x, y) corners; encode both like a point; add point_embeddings[2].weight[0] to "
    "the first row and point_embeddings[3].weight[0] to the second",
    kind="build",
)
def _check_box_tokens(answer, predictor, box):
    from utils.lessons import anatomy
    from utils.metrics import dice

    if not callable(answer):
        return False, "answer the function itself: answer = encode_box"
    prompt_encoder = predictor.model.prompt_encoder
    box_input = predictor.transform.apply_boxes(np.asarray(box, dtype=np.float64)[None], predictor.original_size)[0]
    reference = anatomy.box_tokens(predictor, box).astype(np.float64)
    tokens = np.asarray(answer(prompt_encoder, box_input.copy()), dtype=np.float64)
    if tokens.shape != reference.shape:
        return False, f"expected tokens of shape {reference.shape} (one row per corner), got {tokens.shape}"
    mask, logits = anatomy.decode_tokens(predictor, tokens)
    course_mask, course_logits = anatomy.decode_tokens(predictor, reference)
    agreement = 1.0 if not (mask.any() or course_mask.any()) else dice(mask, course_mask)
    measured = f"the decoder's mask from your tokens has Dice {agreement:.4f} with the course's"
    if np.allclose(tokens, reference, atol=1e-3):
        change = np.abs(logits - course_logits).max()
        return True, f"your tokens are the prompt encoder's; {measured} (largest logit change {change:.1e})"
    kinds = _corner_kinds(prompt_encoder)
    if np.allclose(tokens, reference - kinds, atol=1e-3):
        return False, f"{measured}: add the learned corner vectors (point_embeddings[2] and [3])"
    if np.allclose(tokens, reference - kinds + kinds[::-1], atol=1e-3):
        return False, f"{measured}: the top-left corner gets point_embeddings[2], the bottom-right [3]"
    difference = np.abs(tokens - reference).max()
    return False, f"{measured}, but the tokens differ from the prompt encoder's (by up to {difference:.3g})"


# ------------------------------------------------------------------ 5. predict: prompts per encoder pass

SPEEDUP_CHOICES = ("under 10", "10 to 100", "over 100")


def _solve_prompt_speedup(encoder_s, decoder_ms, encoder_gflop, prompt_gflop):
    prompts = 1000 * encoder_s / decoder_ms  # prompts decoded in the time of one encoder pass
    return "under 10" if prompts < 10 else "10 to 100" if prompts <= 100 else "over 100"


@exercise(
    "01.prompt_speedup",
    "Once an image is embedded, how many box prompts can the prompt encoder and mask decoder handle in the "
    "time of one encoder pass? The FLOP counts of both stages for this run's model are printed above. "
    f"Predict one of {', '.join(repr(c) for c in SPEEDUP_CHOICES)} before the timing cell runs.",
    solver=_solve_prompt_speedup,
    hint="the FLOP ratio is a first guess; small operations often run further from the device's peak than big ones",
    kind="predict",
    choices=SPEEDUP_CHOICES,
)
def _check_prompt_speedup(answer, encoder_s, decoder_ms, encoder_gflop, prompt_gflop):
    prompts = 1000 * encoder_s / decoder_ms
    flop_ratio = encoder_gflop / prompt_gflop
    outcome = _solve_prompt_speedup(encoder_s, decoder_ms, encoder_gflop, prompt_gflop)
    relation = "below" if prompts < flop_ratio else "above"
    why = (
        f"One encoder pass took {encoder_s:.2f} s and one prompt {decoder_ms:.1f} ms: {prompts:.0f} prompts per "
        f"encoder pass, {relation} the FLOP ratio of {flop_ratio:.0f} ({encoder_gflop:.0f} / {prompt_gflop:.2f} "
        "GFLOP). "
        + (
            "The decoder's many small operations use the device less well than the encoder's large ones."
            if prompts < flop_ratio
            else "The encoder's large products ran further from the device's peak than the decoder's small ones."
        )
    )
    return grade_prediction(answer, outcome, SPEEDUP_CHOICES, why)

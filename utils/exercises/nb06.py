"""Exercises of notebook 06 (medical foundation models, uncertainty): what embedding once saves, a box
for a mirrored image, pixel-wise entropy by hand, and AUROC by hand."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


def _solve_embed_once_speedup(encoder_s, prompt_s, n_prompts=10):
    every_prompt = n_prompts * (encoder_s + prompt_s)  # the whole model again for each prompt
    embed_once = encoder_s + n_prompts * prompt_s  # the encoder once, then only the decoder
    return every_prompt / embed_once


@exercise(
    "06.embed_once_speedup",
    "A user gives `n_prompts` prompts on one image. How many times faster is encoding the image once and "
    "then decoding each prompt than running the encoder and the decoder again for every prompt?",
    solver=_solve_embed_once_speedup,
    hint="re-encoding: n × (encoder + prompt); embedding once: encoder + n × prompt; divide the first by the second",
    kind="check",
    warmup=True,
)
def _check_embed_once_speedup(answer, encoder_s, prompt_s, n_prompts=10):
    expected = n_prompts * (encoder_s + prompt_s) / (encoder_s + n_prompts * prompt_s)
    value = float(answer)
    return abs(value - expected) <= 1e-3 * expected, f"{expected:.2f}× faster for {n_prompts} prompts"


def _solve_flip_box(box, width):
    x0, y0, x1, y1 = box
    # column x moves to width - 1 - x, so the right edge becomes the left one
    return [width - 1 - x1, y0, width - 1 - x0, y1]


@exercise(
    "06.flip_box",
    "The image (`width` columns) is mirrored left to right for test-time augmentation. Give the box "
    "[x0, y0, x1, y1] that covers the same pixels in the mirrored image.",
    solver=_solve_flip_box,
    hint="pixel column x lands on column width - 1 - x; the old right edge x1 becomes the new left edge",
    kind="check",
    warmup=True,
)
def _check_flip_box(answer, box, width):
    x0, y0, x1, y1 = (float(v) for v in box)
    expected = np.array([width - 1 - x1, y0, width - 1 - x0, y1])
    value = np.asarray(answer, dtype=float).reshape(-1)
    if value.shape != (4,):
        return False, f"expected 4 numbers [x0, y0, x1, y1], got {value.size}"
    return bool(np.allclose(value, expected, atol=1e-6)), f"mirrored box {expected.tolist()}"


def _solve_entropy_by_hand(prob):
    p = np.clip(prob, 1e-12, 1 - 1e-12)  # 0 · log 0 counts as 0
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@exercise(
    "06.entropy_by_hand",
    "Compute the pixel-wise binary entropy in bits of the foreground probability map `prob`.",
    solver=_solve_entropy_by_hand,
    hint="H(p) = -p log2 p - (1 - p) log2 (1 - p); where p is 0 or 1 the entropy is 0 (clip p away from 0 and 1)",
    kind="check",
)
def _check_entropy_by_hand(answer, prob):
    prob = np.asarray(prob, dtype=float)
    expected = np.zeros_like(prob)
    inside = (prob > 0) & (prob < 1)
    q = prob[inside]
    expected[inside] = -(q * np.log2(q) + (1 - q) * np.log2(1 - q))
    value = np.asarray(answer, dtype=float)
    if value.shape != prob.shape:
        return False, f"expected one entropy per pixel, shape {prob.shape}; got {value.shape}"
    if np.isnan(value).any():
        return False, f"{int(np.isnan(value).sum())} pixels are NaN: 0 · log 0 must count as 0"
    ok = bool(np.allclose(value, expected, atol=1e-6))
    return ok, f"mean entropy {expected.mean():.4f} bits, highest {expected.max():.4f}"


def _solve_auroc_by_hand(scores, labels):
    positives, negatives = scores[labels], scores[~labels]
    higher = (positives[:, None] > negatives[None, :]).mean()  # every (error, correct) pixel pair
    tied = (positives[:, None] == negatives[None, :]).mean()
    return higher + 0.5 * tied


@exercise(
    "06.auroc_by_hand",
    "AUROC of the uncertainty `scores` for finding the error pixels (`labels` True): the probability that "
    "a random error pixel is more uncertain than a random correct pixel, ties counting one half.",
    solver=_solve_auroc_by_hand,
    hint="compare every error pixel with every correct pixel: positives[:, None] > negatives[None, :]",
    kind="check",
)
def _check_auroc_by_hand(answer, scores, labels):
    from scipy.stats import rankdata

    scores, labels = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    ranks = rankdata(scores)
    expected = (ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    value = float(answer)
    return abs(value - expected) < 1e-6, f"AUROC = {expected:.4f} ({n_pos} error and {n_neg} correct pixels)"

"""Exercises of notebook 06 (medical foundation models, uncertainty): what embedding once saves (warm-up),
pixel-wise entropy by hand, AUROC by hand, a prediction (does test-time augmentation flag the errors better
than multimask disagreement?) and a build (an intensity test-time augmentation, run through the course's
uncertainty pipeline and scored against flip TTA)."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction
from utils.lessons import uncertainty


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


TTA_VS_MULTIMASK = ("TTA", "multimask")


def _solve_tta_vs_multimask(auroc_tta, auroc_multimask, **_):
    return "TTA" if auroc_tta > auroc_multimask else "multimask"


@exercise(
    "06.tta_vs_multimask",
    "Before the AUROCs are computed: for the first model, which map will flag the plain answer's errors better "
    "(higher pooled AUROC) — test-time augmentation (`'TTA'`) or multimask disagreement (`'multimask'`)?",
    solver=_solve_tta_vs_multimask,
    hint="TTA asks the trained output of several views; multimask compares three output tokens, which only SAM "
    "was trained to use (model_card(name)['multimask'])",
    kind="predict",
    choices=TTA_VS_MULTIMASK,
)
def _check_tta_vs_multimask(answer, auroc_tta, auroc_multimask, model, multimask_trained):
    outcome = _solve_tta_vs_multimask(auroc_tta, auroc_multimask)
    heads = (
        "its three outputs were trained (multimask output), so their disagreement is the model's own doubt"
        if multimask_trained
        else "it was trained with one output: its tokens 1-3 are untrained, so the multimask map measures "
        "untrained heads, not the model's doubt about this image"
    )
    why = f"{model}: pooled AUROC TTA {auroc_tta:.3f}, multimask {auroc_multimask:.3f} (0.5 = chance); {heads}."
    return grade_prediction(answer, outcome, TTA_VS_MULTIMASK, why)


def _vote_disagreement(logits):
    """Entropy of the share of answers that call a pixel foreground: disagreement only (identical answers give 0)."""
    return uncertainty.binary_entropy(uncertainty.foreground_probability(logits))


INTENSITY_BAR = 0.55  # pooled AUROC the intensity TTA must reach: better than chance (0.5) by a margin
# (measured offline, LiteMedSAM, 3 cases: the gamma solution 0.59 with 2 views, flip TTA 0.81 on the same cases)


def _solve_intensity_tta(**_):
    def gamma_view(image, rng):
        gamma = rng.uniform(0.6, 1.6)  # < 1 brightens the dark tissue, > 1 darkens it: a non-linear change
        return np.round(255 * (image / 255.0) ** gamma).astype(np.uint8)

    return gamma_view


@exercise(
    "06.intensity_tta",
    "Write `augment(image, rng) -> image`: a random intensity change (gamma, contrast, noise...) of an (H, W, 3) "
    "uint8 image, same shape, values in [0, 255]. The course runs it as test-time augmentation "
    "(`uncertainty.intensity_tta`: the box on the original and on augmented views) and scores where the answers "
    "disagree (entropy of the share of answers calling a pixel foreground) by pooled AUROC against flip TTA's "
    f"on the same cases; it passes at AUROC >= {INTENSITY_BAR}.",
    solver=_solve_intensity_tta,
    hint="a gamma change: 255 * (image / 255) ** gamma with gamma drawn from rng (e.g. 0.6 to 1.6). A linear "
    "contrast change is undone by LiteMedSAM's min-max normalisation: its views look identical to the model",
    kind="build",
)
def _check_intensity_tta(answer, predictor, items, n_views=2, seed=0):
    if not callable(answer):
        return False, "answer must be a function augment(image, rng) -> image"
    maps, bases, truths, regions, flips = [], [], [], [], []
    for i, item in enumerate(items):
        result = uncertainty.intensity_tta(
            predictor, item["image"], item["box"], answer, n_views, rng=np.random.default_rng([seed, i])
        )
        maps.append(_vote_disagreement(result.logits))
        bases.append(result.base)
        truths.append(item["gt"])
        regions.append(item["region"])
        flips.append(_vote_disagreement(item["flip_logits"]))
    if not any(m.any() for m in maps):
        return False, (
            "every view gave the same answer (no disagreement anywhere): the model did not see your change — "
            "a linear rescaling is undone by a min-max normalisation; try a non-linear one (gamma)"
        )
    ours = uncertainty.error_vs_uncertainty(maps, bases, truths, region=regions)[1]["auroc"]
    flip = uncertainty.error_vs_uncertainty(flips, bases, truths, region=regions)[1]["auroc"]
    measured = f"intensity TTA AUROC {ours:.3f} vs flip TTA {flip:.3f} on the same {len(items)} case(s), votes"
    if not np.isfinite(ours):
        return False, f"{measured}: the plain answer has no error here to flag"
    return ours >= INTENSITY_BAR, f"{measured} (bar {INTENSITY_BAR}; 0.5 = chance)"

"""Exercises of notebook 08 (the landscape): an automatic box from a classical segmentation, a prediction of how
close it comes to the annotator's box, a better automatic box of your own scored against the course's, and
LoRA's trainable share computed by hand."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction


def _solve_auto_box(grey, polarity="dark"):
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    threshold = threshold_otsu(grey)
    kept = grey <= threshold if polarity == "dark" else grey > threshold
    labels, count = ndimage.label(kept, structure=np.ones((3, 3)))  # 8-connected components
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0  # label 0 is the background
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    sizes[np.unique(border)] = 0  # drop components touching the image border
    largest = labels == sizes.argmax()
    rows, cols = np.flatnonzero(largest.any(axis=1)), np.flatnonzero(largest.any(axis=0))
    return [cols[0], rows[0], cols[-1], rows[-1]]


@exercise(
    "08.auto_box",
    "Turn the smoothed grey image `grey` into a box prompt with no person involved: threshold it at Otsu's "
    "threshold (skimage.filters.threshold_otsu), keep the `polarity` side ('dark': <= threshold), label the "
    "8-connected components, drop those touching the image border, keep the largest and return its box "
    "[x0, y0, x1, y1] (first/last column and row, inclusive).",
    solver=_solve_auto_box,
    hint="scipy.ndimage.label(kept, structure=np.ones((3, 3))); border labels: labels[0], labels[-1], "
    "labels[:, 0], labels[:, -1]; np.bincount counts each component's pixels",
    kind="check",
)
def _check_auto_box(answer, grey, polarity="dark"):
    from utils.lessons.autoprompt import auto_box

    expected = auto_box(grey, polarity, sigma=0, opening=0)
    value = np.asarray(answer, dtype=float).reshape(-1)
    if value.shape != (4,):
        return False, f"expected 4 numbers [x0, y0, x1, y1], got {value.size}"
    if expected is None:
        return False, "no component survives on this image: check the polarity"
    ok = bool(np.abs(value - expected).max() <= 1)  # one pixel of slack for <= vs < at the threshold
    return ok, f"the automatic box is {expected.astype(int).tolist()}"


def _solve_lora_share(rank=4, model="sam_vit_b"):
    from utils import models, peft

    sam = models.meta_sam(model)  # shapes only: no weights are loaded
    blocks = peft.transformer_blocks(sam)
    qkv = blocks[0].attn.qkv  # every block's qkv has the same shape
    added = len(blocks) * rank * (qkv.in_features + qkv.out_features)  # A: rank x in, B: out x rank
    _, total, _ = peft.trainable_parameters(sam)
    return added, added / (total + added)


@exercise(
    "08.lora_share",
    "SAMed-style LoRA trains two small matrices per attention qkv layer: A (rank × in) and B (out × rank). "
    "For `model` (ViT-B: 12 blocks, qkv maps 768 → 2304) and `rank`, how many parameters does LoRA add, and "
    "what share of the adapted model's parameters trains (decoder frozen)? Answer (added, share).",
    solver=_solve_lora_share,
    hint="added = blocks × rank × (in + out); the adapted model has the original parameters plus the added "
    "ones (peft.trainable_parameters on models.meta_sam gives the original total)",
    kind="check",
)
def _check_lora_share(answer, rank=4, model="sam_vit_b"):
    from utils import models, peft

    trainable, total, share = peft.trainable_parameters(peft.lora(models.meta_sam(model), rank=rank))
    values = np.asarray(answer, dtype=float).reshape(-1)
    if values.shape != (2,):
        return False, f"expected two numbers (added, share), got {values.size}"
    ok = values[0] == trainable and abs(values[1] - share) < 1e-9
    return bool(ok), f"LoRA rank {rank} adds {trainable:,} parameters: {100 * share:.3f} % of {total:,}"


# ------------------------------------------------------------------ predict: the automatic box vs the annotator's

AUTO_VS_ANNOTATOR = ("better than the annotator's", "within 0.05 Dice", "more than 0.05 Dice worse")


def _outcome_auto_vs_annotator(gap: float) -> str:
    if gap < 0:
        return AUTO_VS_ANNOTATOR[0]
    return AUTO_VS_ANNOTATOR[1] if gap <= 0.05 else AUTO_VS_ANNOTATOR[2]


def _solve_auto_vs_annotator(results):
    gap = (results["dice_gt_box"] - results["dice_auto_box"]).mean()  # annotator's box minus automatic box
    return _outcome_auto_vs_annotator(gap)


@exercise(
    "08.auto_vs_annotator",
    "Before the cell runs: averaged over this run's images, will the model's mean Dice from the automatic "
    "(Otsu + largest component) box be better than from the annotator's box, within 0.05 Dice of it, or more "
    "than 0.05 Dice worse?",
    solver=_solve_auto_vs_annotator,
    hint="the recipe assumes the target is the largest region of one grey level away from the border: is it, "
    "for every source in the table above?",
    kind="predict",
    choices=AUTO_VS_ANNOTATOR,
)
def _check_auto_vs_annotator(answer, results):
    gap = results["dice_gt_box"] - results["dice_auto_box"]
    worst = results.loc[gap.idxmax()]
    why = (
        f"Mean Dice {results['dice_auto_box'].mean():.3f} from the automatic box against "
        f"{results['dice_gt_box'].mean():.3f} from the annotator's (gap {gap.mean():+.3f}); the automatic box "
        f"came within 0.05 on {int((gap <= 0.05).sum())} of {len(results)} images, and cost most on "
        f"{worst['case']} ({gap.max():.2f} Dice, box IoU {worst['box_iou']:.2f})."
    )
    return grade_prediction(answer, _outcome_auto_vs_annotator(gap.mean()), AUTO_VS_ANNOTATOR, why)


# ------------------------------------------------------------------ build: a better automatic box

BUILD_SLACK = 0.02  # the bar: a box recipe passes when its mean Dice is at most this far below the course's


def _solve_better_box(predictor, cases, polarities, reference):
    from utils.lessons.autoprompt import coarse_mask

    def padded_box(image, polarity):
        mask = coarse_mask(image, polarity)  # the course's recipe...
        if not mask.any():
            return None
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        # ...but a little looser: smoothing and Otsu shave a blurred edge, and both models were trained on
        # boxes drawn around the whole target with some slack
        pad = max(2, round(0.05 * max(rows[-1] - rows[0], cols[-1] - cols[0])))
        height, width = mask.shape
        return [max(cols[0] - pad, 0), max(rows[0] - pad, 0), min(cols[-1] + pad, width - 1),
                min(rows[-1] + pad, height - 1)]  # fmt: skip

    return padded_box


@exercise(
    "08.better_box",
    "Write an automatic box recipe of your own: a function `my_box(image, polarity)` that takes a uint8 image "
    "and 'bright' or 'dark' and returns a box [x0, y0, x1, y1] (or None when it finds nothing). The course "
    "runs it in autoprompt.compare_prompts on this run's images with this run's model and scores its mean Dice "
    f"against the course's auto_box; it passes when it is at most {BUILD_SLACK} Dice below it.",
    solver=_solve_better_box,
    hint="start from autoprompt.coarse_mask(image, polarity) and change one thing: a margin, the smoothing, "
    "which component you keep (the most central? the most compact?)...",
    kind="build",
)
def _check_better_box(answer, predictor, cases, polarities, reference):
    from utils.lessons.autoprompt import compare_prompts

    if not callable(answer):
        return False, "answer a function my_box(image, polarity) -> [x0, y0, x1, y1] or None"
    yours = compare_prompts(predictor, cases, polarities, boxer=answer, progress=False)
    mine, theirs = yours["dice_auto_box"].mean(), reference["dice_auto_box"].mean()
    by_source = yours["dataset"] + " " + yours["modality"]
    gains = (yours["dice_auto_box"] - reference["dice_auto_box"].to_numpy()).groupby(by_source).mean()
    per_source = ", ".join(f"{source} {gain:+.3f}" for source, gain in gains.items())
    measured = (
        f"mean Dice {mine:.3f} with your boxes against {theirs:.3f} with the course's auto_box "
        f"({mine - theirs:+.3f}; per source: {per_source}); boxes found on {int(yours['found'].sum())} of "
        f"{len(yours)} images"
    )
    if mine < theirs - BUILD_SLACK:
        return False, f"{measured}: more than {BUILD_SLACK} below the course's recipe"
    return True, measured

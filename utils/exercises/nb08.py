"""Exercises of notebook 08 (the landscape): an automatic box from a classical segmentation, how close it
came to the annotator's box, LoRA's trainable share computed by hand, and reading the landscape table."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


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


def _solve_box_iou(box, reference):
    x0, y0 = max(box[0], reference[0]), max(box[1], reference[1])
    x1, y1 = min(box[2], reference[2]), min(box[3], reference[3])
    overlap = max(x1 - x0 + 1, 0) * max(y1 - y0 + 1, 0)  # inclusive pixel indices: +1

    def area(b):
        return (b[2] - b[0] + 1) * (b[3] - b[1] + 1)

    return overlap / (area(box) + area(reference) - overlap)


@exercise(
    "08.box_iou",
    "How close did the automatic box come to the annotator's? Compute the IoU of `box` and `reference` "
    "([x0, y0, x1, y1], inclusive pixel indices as utils.prompts.box_from_mask: a box covers "
    "(x1 - x0 + 1) × (y1 - y0 + 1) pixels). Boxes that do not overlap have IoU 0.",
    solver=_solve_box_iou,
    hint="the overlap is a box too: the larger of the two x0 and y0, the smaller of the two x1 and y1",
    kind="check",
    warmup=True,
)
def _check_box_iou(answer, box, reference):
    from utils.prompts import box_iou

    expected = box_iou(box, reference)
    value = float(answer)
    return bool(abs(value - expected) < 1e-6), f"IoU = {expected:.4f}"


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


def _solve_notebooks_for(table, failure):
    chosen = table[table["addresses"].apply(lambda keys: failure in keys)]
    return sorted(set(chosen["notebooks"].explode()))


@exercise(
    "08.notebooks_for",
    "Which course notebooks would you open to tackle `failure`? From the landscape `table` "
    "(utils.lessons.landscape.methods_table()), keep the methods whose `addresses` include `failure` and return "
    "the sorted list of the notebooks that implement them (each row's `notebooks` is a tuple of stems).",
    solver=_solve_notebooks_for,
    hint="table['addresses'].apply(lambda keys: failure in keys) selects the rows; .explode() flattens tuples",
    kind="check",
    warmup=True,
)
def _check_notebooks_for(answer, table, failure):
    from utils.lessons.landscape import notebooks_for

    expected = notebooks_for(failure)
    if isinstance(answer, str) or not hasattr(answer, "__iter__"):
        return False, "answer must be a list of notebook stems, e.g. ['05_adapting_sam']"
    given = sorted(str(stem) for stem in answer)
    return given == expected, f"{failure}: {', '.join(expected)}"

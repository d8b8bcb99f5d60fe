"""Exercises of notebook 05 (adapting SAM): LoRA's parameter count, its merged weight, the SVD
strategy's weight, and the Dice + BCE loss by hand."""

from __future__ import annotations

import copy

import numpy as np

from utils.exercises import exercise


def _solve_lora_count(sam, rank=4):
    from utils import peft  # the blocks LoRA wraps: every encoder transformer block's qkv

    sizes = [(block.attn.qkv.in_features, block.attn.qkv.out_features) for block in peft.transformer_blocks(sam)]
    return sum(rank * (n_in + n_out) for n_in, n_out in sizes)  # A is rank x in, B is out x rank


@exercise(
    "05.lora_count",
    "How many parameters does LoRA of rank `rank` add to `sam`? It wraps the attention `qkv` Linear of every "
    "encoder transformer block (`peft.transformer_blocks(sam)`; each has `.attn.qkv.in_features` and "
    "`.out_features`) with A (rank x in) and B (out x rank).",
    solver=_solve_lora_count,
    hint="per block rank * (in + out); sum over the blocks",
    kind="check",
)
def _check_lora_count(answer, sam, rank=4):
    from utils import peft

    adapted = peft.lora(copy.deepcopy(sam), rank=rank)  # the learner's model stays unadapted
    expected = peft.trainable_parameters(adapted)[0]
    if answer is None or isinstance(answer, bool) or not isinstance(answer, (int, np.integer)):
        return False, f"expected a whole number, got {answer!r}"
    return int(answer) == expected, f"LoRA rank {rank} adds {expected:,} parameters to this model"


def _solve_lora_merge(weight, lora_a, lora_b, alpha, rank):
    return weight + (alpha / rank) * lora_b @ lora_a  # one matrix: no extra cost at inference


@exercise(
    "05.lora_merge",
    "Merge a LoRA update into its frozen weight: given `weight` (out x in), `lora_a` (rank x in), `lora_b` "
    "(out x rank), `alpha` and `rank`, return the single weight matrix that computes the same as the "
    "LoRA layer.",
    solver=_solve_lora_merge,
    hint="W + (alpha / rank) B A",
    kind="check",
    warmup=True,
)
def _check_lora_merge(answer, weight, lora_a, lora_b, alpha, rank):
    import torch

    from utils.peft import LoRALinear

    base = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.as_tensor(weight))
        layer = LoRALinear(base, rank=rank, alpha=alpha)
        layer.lora_A.copy_(torch.as_tensor(lora_a))
        layer.lora_B.copy_(torch.as_tensor(lora_b))
        expected = layer.merge().weight.numpy()
    value = np.asarray(answer, dtype=float) if answer is not None else None
    if value is None or value.shape != expected.shape:
        return False, f"expected a {expected.shape} matrix"
    return bool(np.allclose(value, expected, atol=1e-5)), "the merged weight is W + (alpha / rank) B A"


def _solve_svd_weight(weight, scale, shift):
    u, s, vh = np.linalg.svd(weight, full_matrices=False)
    return u @ np.diag(np.maximum(s * scale + shift, 0)) @ vh  # relu keeps singular values >= 0


@exercise(
    "05.svd_weight",
    "The SVD strategy keeps a weight's singular vectors and learns a `scale` and `shift` per singular value. "
    "Given `weight`, `scale` and `shift` (one entry per singular value), return the adapted weight "
    "U diag(relu(S * scale + shift)) Vh.",
    solver=_solve_svd_weight,
    hint="np.linalg.svd(weight, full_matrices=False) gives U, S, Vh",
    kind="check",
)
def _check_svd_weight(answer, weight, scale, shift):
    import torch

    from utils.peft import SVDLinear

    base = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        base.weight.copy_(torch.as_tensor(weight, dtype=torch.float32))
        layer = SVDLinear(base)
        layer.sv_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))
        layer.sv_shift.copy_(torch.as_tensor(shift, dtype=torch.float32))
        expected = layer.merge().weight.double().numpy()
    value = np.asarray(answer, dtype=float) if answer is not None else None
    if value is None or value.shape != expected.shape:
        return False, f"expected a {expected.shape} matrix"
    return bool(np.allclose(value, expected, atol=1e-4)), "the adapted weight keeps U and Vh and rescales S"


def _solve_dice_bce(logits, target):
    p = 1 / (1 + np.exp(-logits))  # sigmoid
    dice = 1 - (2 * (p * target).sum() + 1e-5) / ((p * p).sum() + (target * target).sum() + 1e-5)
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).mean()
    return dice + bce


@exercise(
    "05.dice_bce",
    "Compute the training loss for one image by hand: soft Dice loss 1 - (2 sum(p t) + 1e-5) / (sum(p^2) + "
    "sum(t^2) + 1e-5) with p = sigmoid(logits), plus the mean binary cross-entropy.",
    solver=_solve_dice_bce,
    hint="BCE = -mean(t log p + (1 - t) log(1 - p))",
    kind="check",
)
def _check_dice_bce(answer, logits, target):
    import torch

    from utils.training import DiceBCELoss

    expected = float(DiceBCELoss()(torch.as_tensor(logits)[None, None], torch.as_tensor(target)[None, None]))
    if answer is None or not np.isscalar(answer) and np.asarray(answer).size != 1:
        return False, "expected one number"
    return bool(abs(float(answer) - expected) < 1e-4), f"Dice + BCE = {expected:.4f} here"

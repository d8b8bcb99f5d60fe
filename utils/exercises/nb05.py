"""Exercises of notebook 05 (adapting SAM): LoRA's parameter count, a prediction (does LoRA beat
decoder-only at this run's step count?), building a LoRA layer that the course runs in its trained model,
the SVD strategy's weight, and the Dice + BCE loss by hand."""

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


def _solve_lora_beats_decoder(records):
    if not all(records.get(s, {}).get("status") == "ok" for s in ("lora", "decoder_only")):
        return None  # one of them did not train (out of memory): nothing to predict
    return _lora_vs_decoder(records)[0]  # the outcome this run measured


def _lora_vs_decoder(records) -> tuple[str, str]:
    """("yes"/"no", why) from this run's records: did LoRA end with a higher held-out Dice than decoder-only?"""
    lora, decoder = records["lora"], records["decoder_only"]
    outcome = "yes" if lora["dice_after"] > decoder["dice_after"] else "no"
    why = (f"After {lora['steps']} steps LoRA reached held-out Dice {lora['dice_after']:.3f} "
           f"({lora['trainable_params']:,} trainable parameters, lr {lora['lr']:.0e}) and decoder-only "
           f"{decoder['dice_after']:.3f} ({decoder['trainable_params']:,}, lr {decoder['lr']:.0e}); their gain CIs "
           f"are {lora['gain_ci'][0]:+.2f} to {lora['gain_ci'][1]:+.2f} and {decoder['gain_ci'][0]:+.2f} to "
           f"{decoder['gain_ci'][1]:+.2f}, so overlapping CIs mean the order may not hold on other cases.")  # fmt: skip
    return outcome, why


@exercise(
    "05.lora_beats_decoder",
    "Predict before the comparison runs: at this run's step count, will LoRA (a few thousand parameters in the "
    "encoder's last blocks, decoder frozen) end with a higher held-out Dice than decoder-only (the whole mask "
    "decoder trains, the encoder is frozen)? Answer 'yes' or 'no'.",
    solver=_solve_lora_beats_decoder,
    hint="LoRA changes the image embedding the frozen decoder reads; decoder-only changes how it is read",
    kind="predict",
    choices=("yes", "no"),
)
def _check_lora_beats_decoder(answer, records):
    from utils.exercises import grade_prediction

    if not all(records.get(s, {}).get("status") == "ok" for s in ("lora", "decoder_only")):
        return False, "this run did not train both lora and decoder_only; add them to STRATEGIES"
    outcome, why = _lora_vs_decoder(records)
    return grade_prediction(answer, outcome, ("yes", "no"), why)


def _solve_lora_layer(**_context):
    import math

    import torch
    from torch import nn

    class MyLoRA(nn.Module):
        def __init__(self, base: nn.Linear, rank: int, alpha: float):
            super().__init__()
            self.base, self.scaling = base, alpha / rank
            self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
            nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))  # zero: starts as the base layer

        def forward(self, x):
            return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    return MyLoRA


def _swap_in(model, layer_class):
    """A copy of ``model`` with every course LoRALinear replaced by ``layer_class`` holding its trained A, B."""
    import torch

    from utils.peft import LoRALinear

    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, LoRALinear):
                mine = layer_class(child.base, child.rank, child.alpha)
                with torch.no_grad():
                    mine.lora_A.copy_(child.lora_A)
                    mine.lora_B.copy_(child.lora_B)
                setattr(parent, name, mine)
    return model


@exercise(
    "05.lora_layer",
    "Build LoRA: write a class `MyLoRA(nn.Module)` with `__init__(self, base, rank, alpha)` that keeps the frozen "
    "`nn.Linear` `base` and adds trainable `lora_A` (rank x in) and `lora_B` (out x rank), and whose forward "
    "returns base(x) + (alpha / rank) x A^T B^T, equal to `base` at initialisation. Pass the class itself. The "
    "course puts your layer, with the trained A and B, into this run's trained LoRA model and measures its "
    "held-out masks against the course's.",
    solver=_solve_lora_layer,
    hint="B starts at zero; nn.Parameter for A and B; the base layer stays as it is",
    kind="build",
)
def _check_lora_layer(answer, trained, cases, course_masks=None):
    import torch

    from utils.lessons.comparison import gallery_predictions
    from utils.metrics import dice

    if not isinstance(answer, type) or not issubclass(answer, torch.nn.Module):
        return False, f"expected a torch.nn.Module subclass (the class itself), got {answer!r}"
    base = torch.nn.Linear(6, 5)
    try:
        layer = answer(base, 2, 4.0)
        shapes = tuple(layer.lora_A.shape), tuple(layer.lora_B.shape)
        x = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
        starts_as_base = torch.allclose(layer(x), base(x), atol=1e-6)
    except Exception as exc:  # the learner's code: report, do not crash the notebook
        return False, f"MyLoRA(base, 2, 4.0) failed: {type(exc).__name__}: {exc}"
    if shapes != ((2, 6), (5, 2)):
        return False, f"lora_A and lora_B should be (rank x in) = (2, 6) and (out x rank) = (5, 2); got {shapes}"
    if not starts_as_base:
        return False, "at initialisation the layer must compute exactly what base computes (start B at zero)"
    if trained is None:
        return False, "no trained LoRA model in this run (lora did not train); your layer passed the unit checks"
    theirs = gallery_predictions(_swap_in(trained, answer), cases)
    ours = gallery_predictions(trained, cases) if course_masks is None else course_masks
    agreement = [dice(a, b) if a.any() or b.any() else 1.0 for a, b in zip(theirs, ours)]
    scores = [(dice(a, c.mask), dice(b, c.mask)) for a, b, c in zip(theirs, ours, cases)]
    report = "; ".join(f"yours {a:.3f} vs course {b:.3f}" for a, b in scores)
    passed = min(agreement) > 0.99
    return passed, f"held-out Dice with your layer in the trained model: {report} (mask agreement {min(agreement):.4f})"


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

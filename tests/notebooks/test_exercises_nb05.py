"""Notebook 05's exercise checks: the reference solution passes, typical wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from utils import exercises, peft
from utils.exercises import nb05  # noqa: F401 - registers the exercises

from fakes import disk_case, load_tiny_sam


def check(key, answer, **context) -> bool:
    return exercises.check(key, answer, **context)


def test_lora_count_on_a_real_architecture(tiny_sam):
    context = {"sam": tiny_sam, "rank": 4}
    right = exercises.solution("05.lora_count", **context)
    assert right == 2 * 4 * (64 + 192)  # tiny_sam: 2 blocks, qkv 64 -> 192
    assert check("05.lora_count", right, **context)
    assert not check("05.lora_count", 2 * 4 * 64, **context)  # forgot B
    assert not check("05.lora_count", float(right), **context)  # not a whole number
    assert not check("05.lora_count", None, **context)


def _records(lora_dice: float, decoder_dice: float) -> dict:
    def record(dice, params):
        return {"status": "ok", "dice_after": dice, "steps": 40, "trainable_params": params, "lr": 1e-3,
                "gain_ci": [0.1, 0.3]}  # fmt: skip

    return {"lora": record(lora_dice, 5120), "decoder_only": record(decoder_dice, 4_000_000)}


def test_lora_beats_decoder_is_graded_from_the_runs_records():
    for lora_dice, decoder_dice, outcome in ((0.7, 0.5, "yes"), (0.4, 0.6, "no")):
        records = _records(lora_dice, decoder_dice)
        assert exercises.solution("05.lora_beats_decoder", records=records) == outcome
        assert check("05.lora_beats_decoder", outcome, records=records)  # came true
        wrong = "no" if outcome == "yes" else "yes"
        passed, feedback = exercises.REGISTRY["05.lora_beats_decoder"].checker(wrong, records=records)
        assert passed and f"this run says {outcome!r}" in feedback and f"{lora_dice:.3f}" in feedback
    assert not check("05.lora_beats_decoder", "maybe", records=_records(0.7, 0.5))  # not a choice
    failed = {**_records(0.7, 0.5), "lora": {"status": "out of memory at batch 1"}}
    assert not check("05.lora_beats_decoder", "yes", records=failed)
    assert exercises.solution("05.lora_beats_decoder", records=failed) is None


@pytest.fixture(scope="module")
def trained_lora():
    """tiny_sam with LoRA whose B is non-zero, so the update matters."""
    sam = peft.lora(load_tiny_sam(), rank=2)
    with torch.no_grad():
        for layer in sam.modules():
            if isinstance(layer, peft.LoRALinear):
                layer.lora_B.normal_(0, 0.5, generator=torch.Generator().manual_seed(0))
    return sam


def test_lora_layer_is_run_in_the_trained_model(trained_lora):
    cases = [disk_case(0), disk_case(1)]
    context = {"trained": trained_lora, "cases": cases}
    right = exercises.solution("05.lora_layer", **context)
    assert check("05.lora_layer", right, **context)

    class ForgotScaling(right):
        def forward(self, x):
            return self.base(x) + x @ self.lora_A.T @ self.lora_B.T * 50  # a wrong scale changes the masks

    class NotIdentity(right):
        def __init__(self, base, rank, alpha):
            super().__init__(base, rank, alpha)
            torch.nn.init.ones_(self.lora_B)

    class WrongShapes(torch.nn.Module):
        def __init__(self, base, rank, alpha):
            super().__init__()
            self.base = base
            self.lora_A = torch.nn.Parameter(torch.zeros(base.in_features, rank))
            self.lora_B = torch.nn.Parameter(torch.zeros(rank, base.out_features))

    assert not check("05.lora_layer", ForgotScaling, **context)
    assert not check("05.lora_layer", NotIdentity, **context)
    assert not check("05.lora_layer", WrongShapes, **context)
    assert not check("05.lora_layer", right(torch.nn.Linear(2, 2), 1, 1.0), **context)  # an instance, not the class
    assert not check("05.lora_layer", right, trained=None, cases=cases)  # no trained model: cannot be measured


def test_svd_weight():
    rng = np.random.default_rng(1)
    context = {"weight": rng.normal(size=(6, 4)), "scale": 1 + 0.2 * rng.normal(size=4), "shift": -0.5 * np.ones(4)}
    right = exercises.solution("05.svd_weight", **context)
    assert check("05.svd_weight", right, **context)
    u, s, vh = np.linalg.svd(context["weight"], full_matrices=False)
    no_relu = u @ np.diag(s * context["scale"] + context["shift"]) @ vh
    if (s * context["scale"] + context["shift"] < 0).any():
        assert not check("05.svd_weight", no_relu, **context)
    assert not check("05.svd_weight", u @ np.diag(s * context["scale"]) @ vh, **context)  # forgot the shift
    assert not check("05.svd_weight", context["weight"], **context)


def test_dice_bce():
    rng = np.random.default_rng(2)
    context = {"logits": rng.normal(0, 2, size=(16, 16)), "target": (rng.random((16, 16)) < 0.3).astype(float)}
    right = exercises.solution("05.dice_bce", **context)
    assert check("05.dice_bce", right, **context)
    p = 1 / (1 + np.exp(-context["logits"]))
    t = context["target"]
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean()
    assert not check("05.dice_bce", bce, **context)  # Dice term missing
    assert not check("05.dice_bce", right + 0.01, **context)
    assert not check("05.dice_bce", [right, right], **context)

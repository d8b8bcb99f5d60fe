"""Notebook 05's exercise checks: the reference solution passes, typical wrong answers fail."""

from __future__ import annotations

import numpy as np

from utils import exercises
from utils.exercises import nb05  # noqa: F401 - registers the exercises


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


def test_lora_merge():
    rng = np.random.default_rng(0)
    context = {"weight": rng.normal(size=(6, 5)), "lora_a": rng.normal(size=(2, 5)), "lora_b": rng.normal(size=(6, 2)),
               "alpha": 4.0, "rank": 2}  # fmt: skip
    right = exercises.solution("05.lora_merge", **context)
    assert check("05.lora_merge", right, **context)
    w, a, b = context["weight"], context["lora_a"], context["lora_b"]
    assert not check("05.lora_merge", w + b @ a, **context)  # forgot alpha / rank
    assert not check("05.lora_merge", w, **context)
    assert not check("05.lora_merge", (w + 2 * b @ a).T, **context)  # wrong shape


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

"""Notebook 06's exercise checkers: the reference answer passes, plausible wrong answers fail."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from utils import exercises
from utils.lessons import uncertainty
from utils.lessons.anatomy import ComponentTiming
from utils.prompts import flip_box


@pytest.fixture(autouse=True)
def _quiet(capsys):
    yield
    capsys.readouterr()


def test_embed_once_speedup_agrees_with_component_timing():
    timing = ComponentTiming("cpu", 8, 3, 0.0, 1.3, 10.0, 60.0, 10.0)  # LiteMedSAM-like: 1.3 s, 80 ms per prompt
    context = {"encoder_s": timing.encoder_s, "prompt_s": timing.per_prompt_ms / 1000, "n_prompts": 10}
    assert exercises.check("06.embed_once_speedup", None, use_solution=True, **context)
    expected = timing.seconds_for(10, embed_once=False) / timing.seconds_for(10)
    assert exercises.check("06.embed_once_speedup", expected, **context)
    assert expected == pytest.approx(13.8 / 2.1)
    assert not exercises.check("06.embed_once_speedup", 1.3 / 0.08, **context)  # prompts per encoder pass
    assert not exercises.check("06.embed_once_speedup", 10, **context)
    assert not exercises.check("06.embed_once_speedup", "fast", **context)


def test_flip_box_matches_the_library():
    box, width = np.array([3.0, 5.0, 12.0, 20.0]), 40
    assert exercises.check("06.flip_box", None, use_solution=True, box=box, width=width)
    assert exercises.check("06.flip_box", flip_box(box, (30, width), "horizontal"), box=box, width=width)
    assert not exercises.check("06.flip_box", [40 - 12, 5, 40 - 3, 20], box=box, width=width)  # off by one
    assert not exercises.check("06.flip_box", [40 - 1 - 3, 5, 40 - 1 - 12, 20], box=box, width=width)  # unordered
    assert not exercises.check("06.flip_box", box, box=box, width=width)
    assert not exercises.check("06.flip_box", [1, 2], box=box, width=width)


def test_entropy_by_hand_handles_certain_pixels():
    prob = np.array([[0.0, 0.5], [1.0, 0.2]])
    assert exercises.check("06.entropy_by_hand", None, use_solution=True, prob=prob)
    assert exercises.check("06.entropy_by_hand", uncertainty.binary_entropy(prob), prob=prob)
    with np.errstate(divide="ignore", invalid="ignore"):
        naive = -(prob * np.log2(prob) + (1 - prob) * np.log2(1 - prob))  # NaN where p is 0 or 1
    assert not exercises.check("06.entropy_by_hand", naive, prob=prob)
    natural = -(prob * np.log(np.clip(prob, 1e-12, 1)) + (1 - prob) * np.log(np.clip(1 - prob, 1e-12, 1)))
    assert not exercises.check("06.entropy_by_hand", natural, prob=prob)  # nats, not bits
    assert not exercises.check("06.entropy_by_hand", uncertainty.binary_entropy(prob)[0], prob=prob)


def test_auroc_by_hand_matches_scikit_learn():
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.2
    scores = np.round(rng.random(300) + 0.4 * labels, 1)
    context = {"scores": scores, "labels": labels}
    assert exercises.check("06.auroc_by_hand", None, use_solution=True, **context)
    assert exercises.solution("06.auroc_by_hand", **context) == pytest.approx(roc_auc_score(labels, scores))
    assert exercises.check("06.auroc_by_hand", roc_auc_score(labels, scores), **context)
    assert not exercises.check("06.auroc_by_hand", 1 - roc_auc_score(labels, scores), **context)
    strict_only = (scores[labels][:, None] > scores[~labels][None, :]).mean()  # ties ignored
    assert not exercises.check("06.auroc_by_hand", strict_only, **context)

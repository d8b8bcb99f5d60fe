"""Notebook 06's exercise checkers: the reference answer passes, plausible wrong answers fail; the prediction is
answered either way and explained from the numbers; the built augmentation is run and scored."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from utils import exercises
from utils.lessons import uncertainty
from utils.lessons.anatomy import ComponentTiming
from utils.prompts import box_region


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


@pytest.mark.parametrize("trained", [True, False])
def test_tta_vs_multimask_is_answered_either_way_from_the_numbers(trained):
    context = {"auroc_tta": 0.81, "auroc_multimask": 0.66, "model": "m", "multimask_trained": trained}
    assert exercises.solution("06.tta_vs_multimask", **context) == "TTA"
    assert exercises.check("06.tta_vs_multimask", None, use_solution=True, **context)
    item = exercises.REGISTRY["06.tta_vs_multimask"]
    passed, why = item.checker("multimask", **context)  # a wrong prediction is answered, not failed
    assert passed and "this run says 'TTA'" in why and "TTA 0.810, multimask 0.660" in why
    assert ("untrained" in why) != trained  # the reading of the multimask map follows the model card
    flipped = {**context, "auroc_tta": 0.6}
    assert exercises.solution("06.tta_vs_multimask", **flipped) == "multimask"
    assert item.checker("multimask", **flipped)[1].startswith("your prediction held")
    assert not exercises.check("06.tta_vs_multimask", "tta", **context)  # not one of the choices
    assert not exercises.check("06.tta_vs_multimask", 0.81, **context)


class Bright:
    """A fake predictor whose answer depends on intensity: inside the box, pixels above 128 are foreground."""

    def __init__(self):
        self.calls = 0

    def set_image(self, image):
        self.image, self.calls = image.copy(), self.calls + 1

    def predict(self, box=None, multimask_output=False, return_logits=False, **_):
        image = self.image[..., 0].astype(float)
        return np.where(box_region(box, image.shape), (image - 128) / 8, -10.0)[None], np.array([1.0]), None


def intensity_items(n=2):
    """Ramps whose truth is 'brighter than 112': the fake's threshold of 128 errs between 112 and 128."""
    items = []
    for i in range(n):
        ramp = np.tile(np.linspace(30 + 5 * i, 230, 40), (30, 1))
        image = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
        box = np.array([0.0, 0.0, 39.0, 29.0])
        gt = image[..., 0] > 112
        flip_logits = np.stack([np.full((30, 40), -5.0), np.full((30, 40), -5.0), np.where(gt, 5.0, -5.0)])
        region = box_region(box, gt.shape)
        items.append({"image": image, "box": box, "gt": gt, "flip_logits": flip_logits, "region": region})
    return items


def test_intensity_tta_runs_the_students_augmentation_and_scores_it():
    predictor, items = Bright(), intensity_items()
    context = {"predictor": predictor, "items": items, "n_views": 4, "seed": 0}
    assert exercises.check("06.intensity_tta", None, use_solution=True, **context)
    assert predictor.calls == 2 * 5  # the course ran it: the original and four views per case
    passed, feedback = exercises.REGISTRY["06.intensity_tta"].checker(exercises.solution("06.intensity_tta"), **context)
    flips = [uncertainty.binary_entropy(uncertainty.foreground_probability(i["flip_logits"])) for i in items]
    flip = uncertainty.auroc(np.concatenate([f.ravel() for f in flips]),
                             np.concatenate([((i["image"][..., 0] > 128) != i["gt"]).ravel() for i in items]))
    assert passed and "intensity TTA AUROC 0." in feedback and f"vs flip TTA {flip:.3f} on the same 2" in feedback

    def blank_the_bright(image, rng):  # views disagree only on the brightest pixels, where nothing is wrong
        return np.where(image > 200, 0, image).astype(np.uint8)

    def noise(image, rng):  # disagreement everywhere near the threshold band and beyond
        return np.clip(image + rng.normal(0, 60, image.shape), 0, 255).astype(np.uint8)

    assert not exercises.check("06.intensity_tta", lambda image, rng: image, **context)  # no change: no disagreement
    assert not exercises.check("06.intensity_tta", lambda image, rng: image[:10], **context)  # wrong shape
    assert not exercises.check("06.intensity_tta", lambda image, rng: image * 3.0, **context)  # out of range
    assert not exercises.check("06.intensity_tta", "gamma", **context)  # not a function
    passed, feedback = exercises.REGISTRY["06.intensity_tta"].checker(blank_the_bright, **context)
    assert not passed and "bar 0.55" in feedback  # it runs, but its map does not flag the errors
    assert exercises.REGISTRY["06.intensity_tta"].checker(noise, **context)[1].startswith("intensity TTA AUROC")

"""utils.lessons.playground.state: prompts, undo, masks and metrics without any widget.

A fake predictor (squares around the prompt, fixed IoU-head scores) makes every number known in
advance; tiny_sam checks the same logic against a real SamPredictor.
"""

import inspect
import subprocess
import sys

import numpy as np
import pytest
import torch

from utils import models, phantoms
from utils.datasets import Case
from utils.lessons.playground.decoder import ReusingDecoder
from utils.lessons.playground.state import EMBEDDING_CACHE_SIZE, PlaygroundState
from utils.metrics import dice, iou
from utils.prompts import box_from_mask


class FakePredictor:
    """A SamPredictor stand-in: outputs are squares of half-size 4, 8 and 16 around the prompt's centre,
    scored 0.5, 0.9, 0.7 by the 'IoU head' (one output: the half-size 8 square, or the box itself)."""

    HALF_SIZES, SCORES = (4, 8, 16), (0.5, 0.9, 0.7)

    def __init__(self) -> None:
        self.encoder_calls = 0
        self.is_image_set = False
        self.features = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        self.encoder_calls += 1
        self.features = np.asarray(image, dtype=float).mean(axis=-1)  # a new object per image
        self.original_size = self.input_size = image.shape[:2]
        self.is_image_set = True

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True):
        assert self.is_image_set
        height, width = self.original_size
        if box is not None and not multimask_output:
            x0, y0, x1, y1 = np.asarray(box, dtype=int)
            mask = np.zeros((height, width), dtype=bool)
            mask[y0 : y1 + 1, x0 : x1 + 1] = True
            return mask[None], np.array([0.95], dtype=np.float32), np.zeros((1, 256, 256), np.float32)
        if box is not None:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        else:
            cx, cy = np.asarray(point_coords, dtype=float)[0]
        ys, xs = np.mgrid[:height, :width]
        masks = np.stack([(abs(xs - cx) <= h) & (abs(ys - cy) <= h) for h in self.HALF_SIZES])
        scores = np.array(self.SCORES, dtype=np.float32)
        if not multimask_output:
            masks, scores = masks[1:2], scores[1:2]
        return masks, scores, np.zeros((len(masks), 256, 256), np.float32)


def _case(seed: int = 0, name: str = "square") -> Case:
    """A 64 x 64 image whose ground truth is the 17 x 17 square around (32, 32): the fake's second output."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    mask = np.zeros((64, 64), dtype=bool)
    mask[24:41, 24:41] = True
    return Case(image, mask, name=name, modality="ct")


@pytest.fixture
def fake():
    return FakePredictor()


@pytest.fixture(scope="module")
def ct():
    return phantoms.make_phantom("ct", seed=1)


# ------------------------------------------------------------------------------------ fake predictor
def test_the_state_imports_no_widget():
    code = "\n".join(
        [
            "import sys",
            "import numpy as np",
            "from utils.datasets import Case",
            "from utils.lessons.playground.state import PlaygroundState",
            inspect.getsource(FakePredictor),
            inspect.getsource(_case),
            "state = PlaygroundState(FakePredictor(), _case())",
            "state.add_point(32, 32); state.set_box(20, 20, 44, 44); state.undo(); state.summary()",
            "print(sorted({'ipywidgets', 'anywidget', 'traitlets'} & set(sys.modules)))",
        ]
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_outputs_head_pick_oracle_and_metrics_are_known(fake):
    state = PlaygroundState(fake, _case())
    assert state.n_prompts == 0 and state.best_index is None and state.dice == 0.0 and fake.encoder_calls == 1
    state.add_point(32, 32)  # a lone point: three outputs
    assert state.multimask_used and state.masks.shape == (3, 64, 64)
    assert state.best_index == 1 and state.oracle_index == 1 and state.chosen_index == 1  # the head is right here
    assert state.dice == pytest.approx(1.0) and state.iou == pytest.approx(1.0) and state.area == 17 * 17
    state.choose(2)
    gt = _case().mask
    assert state.choice == 2 and state.area == 33 * 33
    assert state.dice == pytest.approx(dice(state.masks[2], gt)) == pytest.approx(2 * 289 / (289 + 33 * 33))
    assert state.iou == pytest.approx(iou(state.masks[2], gt))
    table = state.output_table()
    assert [r["shown"] for r in table] == [False, False, True] and [r["oracle"] for r in table] == [False, True, False]
    assert [r["iou_head_score"] for r in table] == pytest.approx([0.5, 0.9, 0.7])
    state.add_point(10, 10, positive=False)  # an edit: one output, the choice goes back to the head
    assert not state.multimask_used and state.choice is None and state.masks.shape[0] == 1
    assert state.status_text == "Dice 1.000 · IoU 1.000 · area 289 px · 1+ / 1− points · encoder calls 1"
    summary = state.summary()
    assert summary["points"] == [[32.0, 32.0, 1], [10.0, 10.0, 0]] and summary["n_predictions"] == 2
    assert len(state.latencies_ms) == state.n_predictions == 2 and fake.encoder_calls == 1


def test_undo_history_and_change_events(fake):
    events = []
    state = PlaygroundState(fake, _case())
    state.subscribe(events.append)
    state.set_box(20, 20, 44, 44)
    state.add_point(32, 32)
    state.clear_box()
    assert state.box is None and events == ["prompt"] * 3
    assert state.undo() and state.box.tolist() == [20, 20, 44, 44] and len(state.points) == 1
    state.reset()
    state.reset()  # nothing left: no edit, no event
    assert events == ["prompt"] * 5 and state.n_prompts == 0
    assert state.undo() and state.n_prompts == 2 and state.undo() and state.points == [] and state.box is not None
    assert state.undo() and state.n_prompts == 0 and not state.can_undo and state.undo() is False
    assert events == ["prompt"] * 8
    state.set_multimask("multi")
    state.choose(None)
    assert events[-2:] == ["prompt", "prompt"]


def test_cases_share_one_embedding_cache_of_eight_images(fake):
    cases = {f"case{i}": _case(seed=i, name=f"case{i}") for i in range(1, EMBEDDING_CACHE_SIZE + 1)}
    events = []
    state = PlaygroundState(fake, _case(seed=0, name="case0"), cases=cases)
    state.subscribe(events.append)
    assert EMBEDDING_CACHE_SIZE == 8 and fake.encoder_calls == 1 and set(state.embed_ms) == {"case0"}
    state.add_point(32, 32)
    state.select_case("case1")
    assert events == ["prompt", "case"] and state.n_prompts == 0 and not state.can_undo
    state.select_case("case0")
    assert fake.encoder_calls == 2  # back: restored, not encoded
    for name in list(cases)[1:]:
        state.select_case(name)
    assert fake.encoder_calls == 1 + EMBEDDING_CACHE_SIZE and len(state.predictor) == EMBEDDING_CACHE_SIZE
    state.select_case("case0")  # still cached: going back to it above made case1 the least recently used
    assert fake.encoder_calls == 1 + EMBEDDING_CACHE_SIZE
    state.select_case("case1")  # dropped for case8: encoded again
    assert fake.encoder_calls == 2 + EMBEDDING_CACHE_SIZE
    state.select_case("case0")
    state.add_point(32, 32)
    assert np.array_equal(state.mask, _case(seed=0).mask)  # the fake's square on case0's grid


def test_a_cached_predictor_is_used_as_it_is_and_restored_after_other_use(fake):
    shared = models.CachedPredictor(fake, max_items=4)
    first = PlaygroundState(shared, _case())
    second = PlaygroundState(shared, _case(), name="again")  # the same image: no second encoder call
    assert first.predictor is second.predictor is shared and fake.encoder_calls == 1
    assert "again" not in second.embed_ms  # nothing was encoded for it
    fake.set_image(_case(seed=5).image)  # the notebook used the predictor for another image
    first.add_point(32, 32)
    assert fake.encoder_calls == 2 and first.dice == pytest.approx(1.0)  # restored from the cache


def test_bad_input_raises_before_reaching_the_model(fake):
    state = PlaygroundState(fake, _case())
    with pytest.raises(ValueError, match="outside the image"):
        state.add_point(100, 10)
    with pytest.raises(ValueError, match="x0 <= x1"):
        state.set_box(40, 10, 20, 60)
    with pytest.raises(ValueError, match="Unknown case"):
        state.select_case("nope")
    with pytest.raises(ValueError, match="multimask must be"):
        state.set_multimask("three")
    with pytest.raises(ValueError, match="index must be None"):
        state.choose(0)  # no prompt, no output to choose
    with pytest.raises(ValueError, match="SamPredictor"):
        PlaygroundState(object(), _case())
    assert state.n_predictions == 0 and not state.can_undo


# ------------------------------------------------------------------------------------- tiny_sam
def test_encoder_runs_once_and_prompt_edits_never_rerun_it(tiny_predictor, ct):
    calls = tiny_predictor.encoder_calls
    state = PlaygroundState(tiny_predictor, ct)
    assert tiny_predictor.encoder_calls == state.encoder_calls == calls + 1
    assert state.n_prompts == 0 and not state.mask.any() and state.dice == 0.0  # no prompt, no mask, no model call
    box = box_from_mask(ct.mask)
    state.set_box(*box)
    state.add_point(128, 128)
    state.add_point(5, 5, positive=False)
    state.set_multimask("multi")
    state.undo()
    state.reset()
    assert tiny_predictor.encoder_calls == calls + 1
    assert state.n_predictions == 5  # set_box, two points, multimask switch, undo; reset leaves no prompt
    assert len(state.latencies_ms) == state.n_predictions


def test_mask_is_what_the_predictor_returns_for_the_same_prompt(tiny_predictor, ct):
    state = PlaygroundState(tiny_predictor, ct)
    state.set_box(40, 50, 200, 210)
    state.add_point(120, 130)
    state.add_point(60, 60, positive=False)
    masks, scores, _ = tiny_predictor.predict(
        point_coords=np.array([[120, 130], [60, 60]]), point_labels=np.array([1, 0]),
        box=np.array([40, 50, 200, 210]), multimask_output=False,
    )  # fmt: skip
    assert np.array_equal(state.mask, masks[0])
    assert np.allclose(state.scores, scores)
    assert state.dice == pytest.approx(dice(masks[0], ct.mask))
    assert state.area == int(masks[0].sum())


def test_undo_and_reset(tiny_predictor, ct):
    state = PlaygroundState(tiny_predictor, ct)
    assert state.undo() is False  # nothing to undo yet
    state.add_point(100, 100)
    state.set_box(10, 10, 200, 200)
    state.add_point(20, 20, positive=False)
    assert state.undo() is True
    assert state.points == [(100.0, 100.0, 1)] and state.box is not None
    state.undo()
    assert state.box is None and len(state.points) == 1
    single_point_mask = state.mask.copy()
    state.set_box(30, 30, 90, 90)
    state.reset()
    assert state.n_prompts == 0 and not state.mask.any()
    state.undo()  # a reset can be undone
    assert state.box is not None and len(state.points) == 1
    state.undo()
    assert np.array_equal(state.mask, single_point_mask)
    state.clear_box()  # no box: nothing happens, nothing recorded
    assert state.undo() is True and state.n_prompts == 0


def test_multimask_policy_and_choosing_an_output(tiny_predictor, ct):
    state = PlaygroundState(tiny_predictor, ct)
    state.add_point(128, 128)
    assert state.multimask == "auto" and state.multimask_used  # a lone point is ambiguous
    assert state.masks.shape[0] == 3 and state.scores.shape == (3,)
    assert state.chosen_index == state.best_index == int(np.argmax(state.scores))
    dices = [dice(m, ct.mask) for m in state.masks]
    assert state.oracle_index == int(np.argmax(dices))
    state.choose(2)
    assert np.array_equal(state.mask, state.masks[2]) and state.dice == pytest.approx(dices[2])
    table = state.output_table()
    assert [row["shown"] for row in table] == [False, False, True]
    assert sum(row["oracle"] for row in table) == 1 and sum(row["iou_head_pick"] for row in table) == 1
    state.choose(None)
    assert state.chosen_index == state.best_index
    with pytest.raises(ValueError, match="index must be None"):
        state.choose(3)
    state.choose(1)
    state.set_box(40, 40, 200, 200)  # an edit: back to the IoU head's pick, one output for a box
    assert not state.multimask_used and state.masks.shape[0] == 1 and state.chosen_index == 0
    state.set_multimask(True)
    assert state.masks.shape[0] == 3
    state.set_multimask("single")
    assert state.masks.shape[0] == 1


def test_image_without_ground_truth(tiny_predictor, ct):
    state = PlaygroundState(tiny_predictor, ct.image[..., 0], name="gray")
    state.add_point(50, 60)
    assert state.case_name == "gray" and state.gt is None
    assert state.dice is None and state.iou is None and state.oracle_index is None
    assert state.status_text.startswith("no ground truth")
    assert state.output_table()[0]["dice"] is None
    summary = state.summary()
    assert summary["points"] == [[50.0, 60.0, 1]] and summary["dice"] is None and summary["multimask"] is True


def test_case_switching_caches_embeddings_and_loads_lazily(tiny_predictor, ct):
    loads = []

    def load_mri():
        loads.append(1)
        return phantoms.make_phantom("mri", seed=2)

    cases = {"mri": load_mri, "us": phantoms.make_phantom("ultrasound", seed=3)}
    state = PlaygroundState(tiny_predictor, ct, cases=cases)
    start = tiny_predictor.encoder_calls
    assert state.case_names == [ct.name, "mri", "us"] and loads == []
    state.add_point(100, 100)
    state.select_case("mri")
    assert tiny_predictor.encoder_calls == start + 1 and loads == [1] and state.n_prompts == 0 and not state.can_undo
    state.select_case(ct.name)
    state.select_case("mri")
    assert tiny_predictor.encoder_calls == start + 1 and loads == [1]  # cached: no encoder, no reload
    state.add_point(100, 100)
    mri = phantoms.make_phantom("mri", seed=2)
    assert state.dice == pytest.approx(dice(state.mask, mri.mask))


def test_the_state_restores_its_embedding_after_the_predictor_moved_on(tiny_predictor, ct):
    state = PlaygroundState(tiny_predictor, ct)
    other = phantoms.make_phantom("ultrasound", seed=5)
    tiny_predictor.set_image(other.image)  # the notebook used the same predictor for something else
    calls = tiny_predictor.encoder_calls
    state.add_point(120, 120)
    assert tiny_predictor.encoder_calls == calls  # restored from the cache, not re-encoded
    tiny_predictor.set_image(ct.image)
    expected, _, _ = tiny_predictor.predict(point_coords=np.array([[120, 120]]), point_labels=np.array([1]))
    assert np.array_equal(state.masks, expected)


# ------------------------------------------------------------------- the reusing decoder (issue 16)
def _prompts(shape: tuple[int, int], seed: int = 0, n: int = 6):
    """Points, boxes and both, single and multimask, spread over an image of ``shape``."""
    rng = np.random.default_rng(seed)
    height, width = shape
    for _ in range(n):
        k = int(rng.integers(1, 4))
        points = rng.uniform(0, [width - 1, height - 1], (k, 2))
        labels = rng.integers(0, 2, k)
        x0, y0 = rng.uniform(0, [width / 2, height / 2])
        box = np.array([x0, y0, x0 + rng.uniform(8, width / 2 - 1), y0 + rng.uniform(8, height / 2 - 1)])
        for prompt in ({"point_coords": points, "point_labels": labels}, {"box": box},
                       {"point_coords": points, "point_labels": labels, "box": box}):  # fmt: skip
            for multimask in (True, False):
                yield {**prompt, "multimask_output": multimask}


def _assert_same_as_predict(decoder: ReusingDecoder, predictor, prompts) -> int:
    """Masks, IoU-head scores and low-res logits of ``decoder`` equal ``predictor.predict``'s, bit for bit."""
    n = 0
    for prompt in prompts:
        expected, got = predictor.predict(**prompt), decoder.predict(**prompt)
        for name, a, b in zip(("masks", "scores", "low-res logits"), expected, got):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (name, prompt)
        n += 1
    return n


@pytest.mark.parametrize("shape", [(256, 256), (190, 300)])  # square: no resize; otherwise both resizes run
def test_reusing_decoder_returns_what_predict_returns_bit_for_bit(tiny_predictor, shape):
    image = phantoms.make_phantom("ct", seed=1, size=256).image[: shape[0], : shape[1]]
    if image.shape[:2] != shape:
        image = np.pad(image, ((0, shape[0] - image.shape[0]), (0, shape[1] - image.shape[1]), (0, 0)))
    tiny_predictor.set_image(image)
    decoder = ReusingDecoder(tiny_predictor)
    assert decoder.enabled
    assert _assert_same_as_predict(decoder, tiny_predictor, _prompts(shape)) == 36
    assert decoder.image_passes == 1  # the per-image half ran once for 36 prompts


def test_reusing_decoder_notices_a_new_image_and_changed_weights(tiny_predictor, ct):
    decoder = ReusingDecoder(tiny_predictor)
    tiny_predictor.set_image(ct.image)
    _assert_same_as_predict(decoder, tiny_predictor, _prompts(ct.image.shape[:2], n=1))
    tiny_predictor.set_image(phantoms.make_phantom("mri", seed=3, size=256).image)  # another image
    _assert_same_as_predict(decoder, tiny_predictor, _prompts(ct.image.shape[:2], seed=1, n=1))
    assert decoder.image_passes == 2
    layer = tiny_predictor.model.mask_decoder.transformer.layers[0].cross_attn_token_to_image.k_proj
    with torch.no_grad():
        layer.weight.mul_(1.5)  # a training step on a cached projection's weights
    _assert_same_as_predict(decoder, tiny_predictor, _prompts(ct.image.shape[:2], seed=2, n=1))
    assert decoder.image_passes == 3


def test_reusing_decoder_checks_prompts_and_falls_back_for_other_predictors(fake, tiny_predictor, ct):
    assert not ReusingDecoder(fake).enabled  # no segment-anything model: predictor.predict answers
    state = PlaygroundState(fake, _case())
    state.set_box(10, 10, 30, 30)
    assert state.mask.sum() == 21 * 21
    tiny_predictor.set_image(ct.image)
    decoder = ReusingDecoder(tiny_predictor)
    with pytest.raises(ValueError):
        decoder.predict(box=np.array([0, 0, 400, 10]), multimask_output=False)  # outside the 256² image
    with pytest.raises(ValueError, match="both"):
        decoder.predict(point_coords=np.array([[5.0, 5.0]]), multimask_output=True)


@pytest.mark.slow
def test_the_playground_shows_litemedsams_own_masks_for_every_edit():
    """LiteMedSAM (the offline course's model, real weights): each edit's mask is predictor.predict's."""
    case = phantoms.make_phantom("mri", seed=2, size=256)
    predictor = models.load_predictor("litemedsam", device="cpu")
    state = PlaygroundState(predictor, case)
    assert state.decoder is not None and state.decoder.enabled
    x0, y0, x1, y1 = box_from_mask(case.mask)
    edits = [lambda: state.set_box(x0, y0, x1, y1), lambda: state.add_point((x0 + x1) / 2, (y0 + y1) / 2),
             lambda: state.add_point(x0 + 2, y0 + 2, positive=False), lambda: state.set_multimask("multi"),
             lambda: state.undo(), lambda: state.set_box(x0 - 3, y0, x1 + 2, y1)]  # fmt: skip
    for edit in edits:
        edit()
        masks, scores, logits = predictor.predict(**state.prompt_arrays(), multimask_output=state.multimask_used)
        assert np.array_equal(state.masks, masks) and np.array_equal(state.scores, scores)
        assert np.array_equal(state.low_res_logits, logits)
    assert 0.5 < state.dice <= 1.0  # a box around the structure: a real mask, not an empty one
    assert predictor.encoder_calls == 1

"""utils.lessons.playground: the prompt playground driven from code (tiny_sam for logic, LiteMedSAM on a real scan)."""

import base64
import io
import time

import numpy as np
import pytest
from PIL import Image

from utils import datasets, models, phantoms
from utils.lessons.playground import PlaygroundState, PromptPlayground, render_prompts, resolve_frontend
from utils.lessons.playground.views import ClickView, SlidersView, canvas_esm
from utils.metrics import boundary
from utils.prompts import box_from_mask, points_from_mask
from utils.viz import course_palette


@pytest.fixture(scope="module")
def ct():
    return phantoms.make_phantom("ct", seed=1)


@pytest.fixture
def playground(tiny_predictor, ct):
    return PromptPlayground(tiny_predictor, ct, frontend="click")


# ------------------------------------------------------------------------------------- code API
# The prompt logic (undo, outputs, metrics, case cache) is tested without widgets in test_playground_state.py.
def test_the_playground_is_its_state_plus_a_view(tiny_predictor, ct):
    calls = tiny_predictor.encoder_calls
    pg = PromptPlayground(tiny_predictor, ct, frontend="sliders")
    assert isinstance(pg, PlaygroundState) and isinstance(pg.view, SlidersView) and pg.canvas is None
    assert tiny_predictor.encoder_calls == pg.encoder_calls == calls + 1
    assert isinstance(pg.predictor, models.CachedPredictor)
    pg.set_box(*box_from_mask(ct.mask))
    pg.add_point(128, 128)
    assert pg.render_ms == [] and pg.message == ""  # headless: nothing is drawn until the widget is shown
    assert pg.render().shape == (448, 448, 3) and pg.scale == pytest.approx(448 / 256)
    assert tiny_predictor.encoder_calls == calls + 1 and pg.n_predictions == 2
    assert isinstance(PromptPlayground(tiny_predictor, ct, frontend="click").view, ClickView)


def test_bad_input_raises_value_errors_that_say_what_to_do(tiny_predictor, ct, playground):
    with pytest.raises(ValueError, match="outside the image"):
        playground.add_point(300, 10)
    with pytest.raises(ValueError, match="Unknown frontend"):
        PromptPlayground(tiny_predictor, ct, frontend="mouse")
    with pytest.raises(ValueError, match="SamPredictor"):
        PromptPlayground(object(), ct)
    with pytest.raises(ValueError, match="display_size"):
        PromptPlayground(tiny_predictor, ct, display_size=10)
    assert playground.n_predictions == 0  # nothing invalid reached the model


# ---------------------------------------------------------------------------------- the widget
def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_click_widget_children_exist_with_stable_classes(playground):
    import anywidget
    import ipywidgets

    root = playground.widget
    assert isinstance(root, ipywidgets.VBox) and "sam-playground" in root._dom_classes
    canvas = playground.canvas
    assert isinstance(canvas, anywidget.AnyWidget)
    assert canvas._esm == canvas_esm()  # the package's canvas.js
    assert "sam-playground-canvas" in canvas._esm and "sam-playground-readout" in canvas._esm
    assert (canvas.image_width, canvas.image_height) == (256, 256)
    picture = _decode(canvas.picture)
    assert picture.shape == (448, 448, 3) and canvas.display_width == 448
    c = playground.view.controls
    expected = "case tool x y add_positive add_negative corner clear_box undo reset box_text multimask choice status"
    for key in expected.split():
        assert key in c, key
    assert "sam-playground-status" in c["status"]._dom_classes
    assert "sam-playground-undo" in c["undo"]._dom_classes
    assert "class='sam-playground-dice'" in c["status"].value and "class='sam-playground-area'" in c["status"].value

    def walk(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from walk(child)

    shown = list(walk(root))
    assert canvas in shown and c["status"] in shown and c["undo"] in shown


def test_synced_traits_drive_predictions_like_a_browser_would(playground, tiny_predictor):
    playground.widget  # noqa: B018 - build it
    calls = tiny_predictor.encoder_calls
    canvas = playground.canvas
    canvas.click = {"x": 120, "y": 130, "positive": True, "seq": 1}
    assert playground.points == [(120.0, 130.0, 1)]
    canvas.click = {"x": 120, "y": 130, "positive": True, "seq": 2}  # the same spot again: a new seq
    canvas.click = {"x": 10, "y": 12, "positive": False, "seq": 3}
    assert [p[2] for p in playground.points] == [1, 1, 0]
    canvas.drag_box = {"box": [30, 40, 200, 220], "seq": 1}
    assert playground.box.tolist() == [30, 40, 200, 220]
    assert canvas.status == playground.status_text and f"area {playground.area} px" in canvas.status
    assert f"<span class='sam-playground-area'>{playground.area}</span>" in playground.view.controls["status"].value
    canvas.click = {"x": 999, "y": 5, "positive": True, "seq": 4}  # a bad click: a message, no crash
    assert "outside the image" in playground.message and len(playground.points) == 3
    playground.view.controls["tool"].value = "negative"
    assert canvas.tool == "negative"
    assert tiny_predictor.encoder_calls == calls


def test_slider_frontend_needs_no_custom_widget(tiny_predictor, ct):
    import ipywidgets

    pg = PromptPlayground(tiny_predictor, ct, frontend="sliders", multimask="single")
    c = pg.widget and pg.view.controls
    assert pg.canvas is None and isinstance(c["image"], ipywidgets.Image)
    assert "sam-playground-image" in c["image"]._dom_classes
    assert _decode(base64.b64encode(c["image"].value).decode()).shape == (448, 448, 3)
    c["x"].value, c["y"].value = 40, 50
    c["add_positive"].click()
    c["x"].value = 60
    c["add_negative"].click()
    assert pg.points == [(40.0, 50.0, 1), (60.0, 50.0, 0)]
    c["box_text"].value = "10, 20, 300, 40"
    assert "outside the image" in pg.message and pg.box is None
    c["box_text"].value = "10, 20, 100, 140"
    assert pg.box.tolist() == [10, 20, 100, 140] and pg.message == ""
    c["x"].value, c["y"].value = 200, 30
    c["corner"].click()
    c["x"].value, c["y"].value = 150, 90
    c["corner"].click()
    assert pg.box.tolist() == [150, 30, 200, 90]
    c["multimask"].value = "multi"
    assert pg.masks.shape[0] == 3 and len(c["choice"].options) == 4
    c["choice"].value = "1"
    assert pg.chosen_index == 1
    c["undo"].click()
    assert pg.box.tolist() == [10, 20, 100, 140]
    c["reset"].click()
    assert pg.n_prompts == 0 and "no prompt yet" in c["scores"].value
    c["case"].value = c["case"].options[0]  # one case: nothing changes


def test_a_case_that_fails_to_load_shows_a_message_and_keeps_the_current_case(tiny_predictor, ct):
    def offline_download():
        raise OSError("no network: place the file by hand")

    pg = PromptPlayground(tiny_predictor, ct, cases={"medsegbench": offline_download}, frontend="sliders")
    pg.widget  # noqa: B018 - build it
    pg.view.controls["case"].value = "medsegbench"
    assert pg.case_name == ct.name and pg.view.controls["case"].value == ct.name
    assert "OSError: no network" in pg.message and "no network" in pg.view.controls["message"].value


def test_render_draws_prompts_where_they_are():
    image = np.full((50, 80, 3), 40, dtype=np.uint8)
    gt = np.zeros((50, 80), dtype=bool)
    gt[10:30, 20:60] = True
    out = render_prompts(image, mask=gt, gt=gt, points=np.array([[5, 40]]), labels=np.array([1]),
                         box=np.array([20, 10, 59, 29]), scale=4.0)  # fmt: skip
    assert out.shape == (200, 320, 3)

    def color(key):
        return np.array([int(course_palette[key][i : i + 2], 16) for i in (1, 3, 5)])

    assert np.allclose(out[4 * 40 + 2, 4 * 5 + 2], color("positive"), atol=10)  # the star's centre
    assert np.allclose(out[4 * 10 + 2, 4 * 40], color("box"), atol=10)  # the box's top edge
    assert np.allclose(out[4 * 20, 4 * 40], 40 * 0.55 + 0.45 * color("prediction"), atol=3)  # mask fill
    assert np.allclose(out[150, 300], 40)  # background untouched
    with pytest.raises(ValueError, match="scale"):
        render_prompts(image, scale=0)


def test_outlines_are_the_metrics_boundary_including_at_the_image_edge():
    image = np.full((20, 30, 3), 40, dtype=np.uint8)
    mask = np.zeros((20, 30), dtype=bool)
    mask[:8, 10:] = True  # touches the top and right edges: the edge counts as outside
    mask[12:18, 2:6] = True

    def painted(out, key):
        rgb = [int(course_palette[key][i : i + 2], 16) for i in (1, 3, 5)]
        return np.all(out == rgb, axis=-1)

    gold = painted(render_prompts(image, gt=mask), "ground_truth")
    blue = painted(render_prompts(image, mask=mask), "prediction")
    assert np.array_equal(gold, boundary(mask)) and np.array_equal(blue, boundary(mask))
    assert gold[0, 10:].all() and gold[:8, 29].all() and not gold[1:7, 11:29].any()


_FAKE_DOM = r"""
import widget from "./canvas.mjs";
class El {
  constructor(tag) { this.tag = tag; this.style = {}; this.children = []; this.listeners = {}; this.className = ""; }
  append(...items) { this.children.push(...items); }
  appendChild(item) { this.children.push(item); }
  addEventListener(type, handler) { this.listeners[type] = handler; }
  setPointerCapture() {}
  getContext() { return { drawImage() {}, save() {}, restore() {}, strokeRect() {}, setLineDash() {} }; }
  getBoundingClientRect() { return { left: 10, top: 20, width: 362, height: 434 }; }  // shown at 2x
}
globalThis.document = { createElement: (tag) => new El(tag) };
globalThis.Image = class { constructor() { this.naturalWidth = 362; this.naturalHeight = 434; }
  set src(value) { this.onload && this.onload(); } };
const state = { picture: "", image_width: 181, image_height: 217, display_width: 362, tool: "positive",
                click: {}, drag_box: {}, status: "Dice 0.500 · area 12 px" };
let saves = 0;
const model = { get: (k) => state[k], set: (k, v) => { state[k] = v; }, save_changes: () => { saves += 1; },
                on() {}, off() {} };
const el = new El("div");
widget.render({ model, el });
const [canvas, readout] = el.children[0].children;
const press = (x, y, extra = {}) =>
  canvas.listeners.pointerdown({ clientX: x, clientY: y, button: 0, pointerId: 1, ...extra });
const release = (x, y) => canvas.listeners.pointerup({ clientX: x, clientY: y });
const out = { classes: [canvas.className, readout.className], readout: readout.textContent, width: canvas.style.width };
press(10 + 181, 20 + 100); release(10 + 181, 20 + 100);
out.click = { ...state.click };
press(10 + 50, 20 + 60, { shiftKey: true }); release(10 + 52, 20 + 61);  // a 2 px wobble is still a click
out.shift_click = { ...state.click };
press(10 + 40, 20 + 40);
canvas.listeners.pointermove({ clientX: 10 + 100, clientY: 20 + 90 });
release(10 + 200, 20 + 120);
out.drag = { ...state.drag_box };
out.saves = saves;
console.log(JSON.stringify(out));
"""


def test_click_frontend_javascript_reports_image_pixels(tmp_path):
    """Run the anywidget ESM in node against a fake DOM: clicks and drags become image-pixel traits."""
    import json
    import shutil
    import subprocess

    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    (tmp_path / "canvas.mjs").write_text(canvas_esm())
    (tmp_path / "test.mjs").write_text(_FAKE_DOM)
    done = subprocess.run(["node", "test.mjs"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["classes"] == ["sam-playground-canvas", "sam-playground-readout"]
    assert out["readout"] == "Dice 0.500 · area 12 px" and out["width"] == "362px"
    assert out["click"] == {"x": 90, "y": 50, "positive": True, "seq": 1}  # 181/362 of 181 columns, 100/434 of 217 rows
    assert out["shift_click"] == {"x": 25, "y": 30, "positive": False, "seq": 2}
    assert out["drag"] == {"box": [20, 20, 100, 60], "seq": 1}
    assert out["saves"] == 3


def test_resolve_frontend(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert resolve_frontend("auto") == "click"
    assert resolve_frontend("sliders") == "sliders"
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")  # what utils.machine.in_colab() looks for
    assert resolve_frontend("auto") == "sliders"  # Colab: core ipywidgets unless asked
    assert resolve_frontend("click") == "click"


# ------------------------------------------------------------------------- LiteMedSAM, real scan
def _largest_slice(structure: str, hemisphere: str) -> datasets.Case:
    """The axial slice where a Colin27 structure is largest: chosen by area, not by Dice."""
    try:
        volume, mask, spacing = datasets.colin27_volume(structure, hemisphere=hemisphere)
    except FileNotFoundError as missing:
        pytest.skip(str(missing))
    k = int(mask.reshape(len(mask), -1).sum(axis=1).argmax())
    return datasets.Case(volume[k], mask[k], name=f"colin27_{structure}-{hemisphere}_axial-{k:03d}", modality="mri",
                         spacing=spacing[1:])  # fmt: skip


@pytest.fixture(scope="module")
def thalamus_largest():
    """The left thalamus (AAL 77) at its largest: notebook 02's running example."""
    return _largest_slice("thalamus", "left")


@pytest.fixture(scope="module")
def litemedsam():
    return models.load_predictor("litemedsam", device="cpu")


@pytest.fixture(scope="module")
def lite_playground_once(litemedsam, thalamus_largest):
    return PromptPlayground(litemedsam, thalamus_largest)  # the module's one LiteMedSAM encoder call


@pytest.fixture
def lite_playground(lite_playground_once):
    """The shared LiteMedSAM playground, back to no prompt and the default output policy."""
    lite_playground_once.reset()
    lite_playground_once.set_multimask("auto")
    return lite_playground_once


@pytest.mark.slow
def test_litemedsam_box_on_the_largest_thalamus_slice(litemedsam, thalamus_largest, lite_playground, capsys):
    case, pg = thalamus_largest, lite_playground
    calls = litemedsam.encoder_calls
    pg.set_box(*box_from_mask(case.mask))
    single = pg.dice
    pg.set_multimask("multi")  # the playground's "3 masks" button
    head, oracle = pg.dice, max(row["dice"] for row in pg.output_table())
    pg.choose(pg.oracle_index)  # what a user does by eye with the gold outline on screen
    assert pg.dice == pytest.approx(oracle)
    # Measured on slice 78 (of 181): single output 0.654, IoU head's pick 0.816, best of three 0.844.
    assert single > 0.6
    assert oracle >= 0.8
    ((x, y),), _ = points_from_mask(case.mask)
    start = time.perf_counter()
    pg.add_point(x, y)  # 5 further prompt edits...
    pg.add_point(x + 30, y, positive=False)
    pg.undo()
    pg.set_box(*box_from_mask(case.mask, jitter=0.1))
    pg.reset()
    per_edit_ms = 1000 * (time.perf_counter() - start) / 4  # reset leaves no prompt: 4 decoder runs
    assert litemedsam.encoder_calls == calls  # ...and not one encoder call
    with capsys.disabled():
        print(f"\n[LiteMedSAM playground] box Dice: single {single:.3f}, IoU head {head:.3f}, best {oracle:.3f}; "
              f"{per_edit_ms:.0f} ms per edit (median decoder {np.median(pg.latencies_ms):.0f} ms)")  # fmt: skip


@pytest.mark.slow
def test_litemedsam_default_box_mask_reaches_08_on_the_right_thalamus(litemedsam):
    """The playground's default output (one mask for a box) with real weights on a real structure.

    Measured on the largest axial slice of each of nine Colin27 structures (thalamus, caudate, putamen,
    hippocampus, left and right, and the brain), the default mask's Dice ranges 0.44-0.87 (mean 0.66):
    it reaches 0.8 on the right thalamus (0.837) and right putamen (0.865) only. This test holds the
    right thalamus to it; the left one (above) needs the three-mask choice to get there.
    """
    case = _largest_slice("thalamus", "right")
    calls = litemedsam.encoder_calls
    pg = PromptPlayground(litemedsam, case)
    pg.set_box(*box_from_mask(case.mask))
    assert not pg.multimask_used and pg.dice >= 0.8
    assert litemedsam.encoder_calls == calls + 1


@pytest.mark.slow
def test_litemedsam_points_alone_fail_where_the_box_works(thalamus_largest, lite_playground):
    """LiteMedSAM was trained with boxes only: one centre point finds (almost) nothing of the thalamus."""
    pg = lite_playground
    ((x, y),), _ = points_from_mask(thalamus_largest.mask)
    pg.add_point(x, y)
    point_dice = max(row["dice"] for row in pg.output_table())  # even the best of its three masks
    pg.reset()
    pg.set_box(*box_from_mask(thalamus_largest.mask))
    assert point_dice < 0.2 < 0.6 < pg.dice


@pytest.mark.slow
def test_litemedsam_widget_edits_show_predicts_own_masks_on_a_real_scan(litemedsam, thalamus_largest, lite_playground):
    """The playground's reusing decoder changes speed, not masks: on a real, non-square slice (so both of
    SAM's mask resizes run) every edit shows what ``predictor.predict`` returns for that prompt."""
    pg, case = lite_playground, thalamus_largest
    assert pg.image.shape[0] != pg.image.shape[1] and pg.decoder.enabled
    pg.widget  # noqa: B018 - shown: every edit redraws, as for a student
    ((x, y),), _ = points_from_mask(case.mask)
    edits = [lambda: pg.set_box(*box_from_mask(case.mask)), lambda: pg.add_point(x, y),
             lambda: pg.add_point(x + 30, y, positive=False), lambda: pg.set_multimask("multi"),
             lambda: pg.undo(), lambda: pg.set_box(*box_from_mask(case.mask, jitter=0.1))]  # fmt: skip
    redraws = len(pg.render_ms)
    for edit in edits:
        edit()
        masks, scores, logits = litemedsam.predict(**pg.prompt_arrays(), multimask_output=pg.multimask_used)
        assert np.array_equal(pg.masks, masks) and np.array_equal(pg.scores, scores)
        assert np.array_equal(pg.low_res_logits, logits)
    assert len(pg.render_ms) == redraws + len(edits)

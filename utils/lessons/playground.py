"""The prompt playground: prompt SAM interactively, or from code, on one image embedding.

:class:`PromptPlayground` wraps a predictor (``utils.models.load_predictor``) and an image or a
:class:`~utils.datasets.Case`. The image encoder runs **once per image**; every prompt edit after
that runs only the prompt encoder and mask decoder (``predictor.encoder_calls`` does not move).

Two frontends show the same picture (image, ground-truth outline, mask, prompts) and the same
controls:

- ``"click"``: an `anywidget <https://anywidget.dev>`_ canvas. Click to add a point (the *tool*
  toggle says positive or negative; shift-click or right-click adds the other kind), drag to draw a
  box. JupyterLab and Notebook 7 load anywidget's frontend from the installed Python package;
  anywidget also targets VS Code (not tested here). Google Colab needs its custom widget manager,
  which anywidget switches on itself but which is reported unreliable, so in Colab ``"auto"`` picks
  ``"sliders"``.
- ``"sliders"``: core ipywidgets only (Image, sliders, text, buttons), no custom frontend code, so
  it renders wherever ipywidgets do. Move the x/y sliders (arrow keys work once a slider has focus)
  to place a cross-hair, then press "+ point" or "− point"; type a box as ``x0, y0, x1, y1`` or
  press "box corner" twice.

Both frontends always include the slider/text controls, so keyboard use works everywhere.
Headless (papermill, tests) nothing needs a browser: drive the playground from code with
:meth:`PromptPlayground.add_point`, :meth:`~PromptPlayground.set_box`, :meth:`~PromptPlayground.undo`,
:meth:`~PromptPlayground.reset`, :meth:`~PromptPlayground.choose`, and read ``.mask``, ``.scores``,
``.dice``. Coordinates follow :mod:`utils.prompts`: ``(x, y)`` = (column, row) in image pixels.
"""

from __future__ import annotations

import base64
import io
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from utils.datasets import Case
from utils.images import to_mask, to_rgb_uint8
from utils.metrics import dice as dice_score
from utils.metrics import iou as iou_score
from utils.prompts import check_box, check_points
from utils.viz import course_palette

__all__ = [
    "FRONTENDS",
    "MULTIMASK_MODES",
    "PromptPlayground",
    "render_prompts",
    "resolve_frontend",
]

FRONTENDS = ("auto", "click", "sliders")
#: "auto": three candidate masks only for a lone point (SAM's advice for ambiguous prompts), else one.
MULTIMASK_MODES = ("auto", "multi", "single")
_EMBEDDING_CACHE_SIZE = 8  # one SAM ViT-B embedding is 256x64x64 floats = 4 MB


def resolve_frontend(frontend: str = "auto") -> str:
    """``"auto"`` → ``"sliders"`` in Google Colab or without anywidget, else ``"click"``."""
    from utils.machine import in_colab

    if frontend not in FRONTENDS:
        raise ValueError(f"Unknown frontend {frontend!r}; choose one of {', '.join(map(repr, FRONTENDS))}.")
    try:
        import anywidget  # noqa: F401
    except ImportError:
        if frontend == "click":
            raise ValueError("frontend='click' needs the anywidget package: `pip install anywidget`.") from None
        return "sliders"
    if frontend == "auto":
        return "sliders" if in_colab() else "click"
    return frontend


# ------------------------------------------------------------------------------------------ drawing
def _rgb(key: str) -> tuple[int, int, int]:
    value = course_palette[key].lstrip("#")
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))


def _outline(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image edge counts as outside)."""
    padded = np.pad(mask, 1)
    inner = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~inner


def _star(cx: float, cy: float, radius: float) -> list[tuple[float, float]]:
    angles = np.pi / 2 + np.arange(10) * np.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, radius, radius * 0.45)
    return [(cx + r * np.cos(a), cy - r * np.sin(a)) for r, a in zip(radii, angles)]


class _Picture:
    """One image scaled for display, plus a blue-tinted copy: both reused for every redraw."""

    def __init__(self, image: np.ndarray, scale: float) -> None:
        from PIL import Image

        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"scale must be a positive number; got {scale!r}.")
        self.source = image  # the array it was made from: a new image needs a new _Picture
        self.image = to_rgb_uint8(image)
        self.scale = float(scale)
        height, width = self.image.shape[:2]
        self.size = (max(1, round(width * scale)), max(1, round(height * scale)))
        self.base = Image.fromarray(self.image).resize(self.size, Image.Resampling.BILINEAR)
        # Solid colour images: pasting an image through a mask is far faster than pasting a colour.
        self.solid = {key: Image.new("RGB", self.size, _rgb(key)) for key in ("prediction", "ground_truth")}
        self.tinted = Image.blend(self.base, self.solid["prediction"], 0.45)

    def _layer(self, mask: np.ndarray):
        """A full-size 'L' image (255 inside ``mask``), scaled with nearest neighbours to stay crisp."""
        from PIL import Image

        return Image.fromarray(mask.astype(np.uint8) * 255).resize(self.size, Image.Resampling.NEAREST)

    def draw(self, mask=None, gt=None, points=None, labels=None, box=None, cursor=None, corner=None) -> np.ndarray:
        from PIL import Image, ImageDraw

        shape = self.image.shape
        canvas = self.base.copy()
        if mask is not None:
            mask = to_mask(mask, shape=shape, name="mask")
            canvas = Image.composite(self.tinted, canvas, self._layer(mask))
            canvas.paste(self.solid["prediction"], mask=self._layer(_outline(mask)))
        if gt is not None:
            outline = _outline(to_mask(gt, shape=shape, name="gt"))
            canvas.paste(self.solid["ground_truth"], mask=self._layer(outline))
        draw = ImageDraw.Draw(canvas)
        scale = self.scale

        def at(x: float, y: float) -> tuple[float, float]:
            return (x + 0.5) * scale, (y + 0.5) * scale

        if box is not None:
            x0, y0, x1, y1 = np.asarray(box, dtype=float).reshape(4)
            draw.rectangle([*at(x0, y0), *at(x1, y1)], outline=_rgb("box"), width=max(2, round(scale)))
        if corner is not None:
            cx, cy = at(*corner)
            draw.rectangle([cx - 4, cy - 4, cx + 4, cy + 4], outline=_rgb("box"), width=2)
        if points is not None and len(points):
            radius = max(6.0, 3.5 * scale)
            for (x, y), label in zip(np.asarray(points, dtype=float), np.asarray(labels).reshape(-1)):
                cx, cy = at(x, y)
                if label:
                    draw.polygon(_star(cx, cy, radius), fill=_rgb("positive"), outline=(255, 255, 255))
                    continue
                r = radius * 0.7
                for color, width in (((255, 255, 255), 5), (_rgb("negative"), 3)):
                    draw.line([cx - r, cy - r, cx + r, cy + r], fill=color, width=width)
                    draw.line([cx - r, cy + r, cx + r, cy - r], fill=color, width=width)
        if cursor is not None:
            cx, cy = at(*cursor)
            r = max(6.0, 3.0 * scale)
            white = (255, 255, 255)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=white, width=1)
            for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                draw.line([cx + dx * r / 2, cy + dy * r / 2, cx + dx * 2 * r, cy + dy * 2 * r], fill=white)
        return np.asarray(canvas)


def render_prompts(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    gt: np.ndarray | None = None,
    points: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    box: np.ndarray | None = None,
    cursor: tuple[float, float] | None = None,
    corner: tuple[float, float] | None = None,
    scale: float = 1.0,
) -> np.ndarray:
    """The playground's picture as an (round(H·scale), round(W·scale), 3) uint8 array.

    Drawn with the course palette (as :mod:`utils.viz`): ``mask`` as a translucent blue fill with an
    outline, ``gt`` as a gold outline, positive points as green stars, negative points as red
    crosses, ``box`` in magenta, ``cursor`` (the sliders' position) as a white cross-hair and
    ``corner`` (a box's first corner) as a small magenta square. Image coordinate ``x`` (pixel
    column ``x``) is drawn at ``(x + 0.5) * scale``, so a click at display pixel ``u`` maps back to
    column ``floor(u / scale)``.
    """
    return _Picture(image, scale).draw(mask, gt, points, labels, box, cursor, corner)


def _encode(array: np.ndarray) -> bytes:
    """JPEG bytes: several times faster to encode than PNG for a scan, and re-sent after every edit."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


# ------------------------------------------------------------------------- the click frontend (ESM)
# A canvas that shows the JPEG rendered in Python and reports clicks and box drags as synced traits.
# Coordinates sent back are image pixels (column, row), computed from the click's fraction of the
# canvas' on-screen size, so CSS scaling does not matter.
_CLICK_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "sam-playground-click";
  const canvas = document.createElement("canvas");
  canvas.className = "sam-playground-canvas";
  canvas.tabIndex = 0;
  canvas.style.cursor = "crosshair";
  canvas.style.maxWidth = "100%";
  canvas.style.touchAction = "none";
  const readout = document.createElement("div");
  readout.className = "sam-playground-readout";
  readout.style.fontFamily = "monospace";
  root.append(canvas, readout);
  el.appendChild(root);
  const ctx = canvas.getContext("2d");
  const picture = new Image();
  let start = null;
  let current = null;

  function draw() {
    if (!picture.naturalWidth) return;
    ctx.drawImage(picture, 0, 0, canvas.width, canvas.height);
    if (start && current && dragged()) {
      ctx.save();
      ctx.strokeStyle = "#FF4FD8";
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(start.cx, start.cy, current.cx - start.cx, current.cy - start.cy);
      ctx.restore();
    }
  }
  function load() {
    picture.onload = () => {
      canvas.width = picture.naturalWidth;
      canvas.height = picture.naturalHeight;
      canvas.style.width = model.get("display_width") + "px";
      draw();
    };
    picture.src = "data:image/jpeg;base64," + model.get("picture");
  }
  function locate(event) {
    const rect = canvas.getBoundingClientRect();
    const fx = Math.min(Math.max((event.clientX - rect.left) / rect.width, 0), 0.999999);
    const fy = Math.min(Math.max((event.clientY - rect.top) / rect.height, 0), 0.999999);
    return {
      x: Math.floor(fx * model.get("image_width")),
      y: Math.floor(fy * model.get("image_height")),
      cx: fx * canvas.width,
      cy: fy * canvas.height,
    };
  }
  function dragged() {
    return Math.hypot(current.cx - start.cx, current.cy - start.cy) > 6;
  }
  function showStatus() {
    readout.textContent = model.get("status");
  }
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.addEventListener("pointerdown", (event) => {
    start = locate(event);
    current = start;
    start.button = event.button;
    start.shift = event.shiftKey || event.altKey;
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!start) return;
    current = locate(event);
    draw();
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!start) return;
    current = locate(event);
    if (dragged()) {
      const box = [
        Math.min(start.x, current.x), Math.min(start.y, current.y),
        Math.max(start.x, current.x), Math.max(start.y, current.y),
      ];
      model.set("drag_box", { box: box, seq: (model.get("drag_box").seq || 0) + 1 });
    } else {
      let positive = model.get("tool") !== "negative";
      if (start.button === 2 || start.shift) positive = !positive;
      model.set("click", { x: start.x, y: start.y, positive: positive, seq: (model.get("click").seq || 0) + 1 });
    }
    model.save_changes();
    start = null;
    current = null;
    draw();
  });
  model.on("change:picture", load);
  model.on("change:status", showStatus);
  load();
  showStatus();
  return () => {
    model.off("change:picture", load);
    model.off("change:status", showStatus);
  };
}
export default { render };
"""


def _click_canvas_class():
    """The anywidget class (built lazily so that importing utils.lessons.playground never needs anywidget)."""
    import anywidget
    import traitlets

    class ClickCanvas(anywidget.AnyWidget):
        """A canvas that shows ``picture`` (base64 JPEG) and reports ``click`` {x, y, positive, seq} and ``drag_box``
        {box: [x0, y0, x1, y1], seq} in image pixels; ``status`` is shown as text below it."""

        _esm = _CLICK_ESM
        picture = traitlets.Unicode("").tag(sync=True)  # base64 JPEG of the rendered picture
        image_width = traitlets.Int(1).tag(sync=True)
        image_height = traitlets.Int(1).tag(sync=True)
        display_width = traitlets.Int(256).tag(sync=True)
        tool = traitlets.Unicode("positive").tag(sync=True)  # what a plain click adds
        click = traitlets.Dict({}).tag(sync=True)
        drag_box = traitlets.Dict({}).tag(sync=True)
        status = traitlets.Unicode("").tag(sync=True)

    return ClickCanvas


# ------------------------------------------------------------------------------------ the playground
CaseSource = Case | np.ndarray | Callable[[], Case | np.ndarray]


class PromptPlayground:
    """Prompt SAM on one image, by clicking or from code; the encoder runs once per image.

    ``PromptPlayground(predictor, case_or_image, cases=None, frontend="auto", multimask="auto")``

    - ``predictor``: a ``SamPredictor`` (``utils.models.load_predictor(...)``; its
      ``encoder_calls`` counter is reported as :attr:`encoder_calls`).
    - ``case_or_image``: a :class:`~utils.datasets.Case` (its ``mask`` is the ground truth: Dice and
      IoU are shown live) or an (H, W[, 3]) image (no ground truth: :attr:`dice` is None).
    - ``cases``: optional ``{name: Case | image | zero-argument loader}`` for the case dropdown
      (loaders run when chosen, e.g. a MedSegBench download). Embeddings are cached per case
      (the last 8), so going back to a case does not run the encoder again.
    - ``frontend``: ``"click"``, ``"sliders"`` or ``"auto"`` (see :func:`resolve_frontend`).
    - ``multimask``: ``"auto"`` (three masks for a single point, one otherwise), ``"multi"`` or
      ``"single"``; with three masks the IoU head's highest-scoring one is shown unless you
      :meth:`choose` another. Every prompt edit resets the choice to the IoU head's.

    Code API: :meth:`add_point`, :meth:`set_box`, :meth:`clear_box`, :meth:`undo` (reverts the last
    prompt edit), :meth:`reset` (removes all prompts; the embedding stays), :meth:`choose`,
    :meth:`set_multimask`, :meth:`select_case`, :meth:`show` (a matplotlib figure) and
    :meth:`summary`; state in :attr:`mask`, :attr:`masks`, :attr:`scores`, :attr:`chosen_index`,
    :attr:`best_index`, :attr:`oracle_index`, :attr:`dice`, :attr:`iou`, :attr:`area`,
    :attr:`latencies_ms` (prompt → mask, per prediction). Invalid prompts raise ``ValueError``.

    Display: ``display(playground)`` or a notebook cell ending in it shows :attr:`widget`.
    Stable hooks for browser tests (CSS classes, present whatever the frontend unless noted):

    - ``.sam-playground``: the whole widget.
    - ``canvas.sam-playground-canvas`` (``"click"``): the clickable picture, a real ``<canvas>``;
      a click at a fraction (fx, fy) of its on-screen box adds a point at pixel
      ``(floor(fx * W), floor(fy * H))``; shift- or right-click adds the other polarity; a drag of
      more than 6 canvas pixels sets a box. ``.sam-playground-readout`` below it shows
      :attr:`status_text` as plain text.
    - ``img.sam-playground-image`` (``"sliders"``): the picture as a core ipywidgets Image.
    - ``.sam-playground-status``: an HTML line with ``span.sam-playground-dice``,
      ``span.sam-playground-iou`` (``"n/a"`` without ground truth), ``span.sam-playground-area``
      (mask pixels), ``span.sam-playground-points``, ``span.sam-playground-encoder-calls``.
    - ``.sam-playground-undo``, ``.sam-playground-reset`` buttons; ``.sam-playground-x`` /
      ``.sam-playground-y`` sliders; ``.sam-playground-add-positive`` / ``-add-negative`` buttons;
      ``.sam-playground-box-text`` (type ``x0, y0, x1, y1`` + Enter); ``.sam-playground-scores``
      (a table of each output's IoU-head score and Dice).

    Python-side, ``playground.canvas.click = {"x": 90, "y": 100, "positive": True, "seq": 1}``
    does what a browser click does (the ``seq`` must change for a repeated click to register).
    """

    def __init__(
        self,
        predictor: Any,
        case_or_image: CaseSource,
        cases: Mapping[str, CaseSource] | None = None,
        frontend: str = "auto",
        multimask: str | bool = "auto",
        display_size: int = 448,
        name: str | None = None,
    ) -> None:
        if not hasattr(predictor, "set_image") or not hasattr(predictor, "predict"):
            raise ValueError(
                "predictor must be a SamPredictor, e.g. utils.models.load_predictor('litemedsam'); "
                f"got {type(predictor).__name__}."
            )
        if isinstance(display_size, bool) or not isinstance(display_size, (int, np.integer)) or display_size < 64:
            raise ValueError(f"display_size must be an integer number of pixels >= 64; got {display_size!r}.")
        self.predictor = predictor
        self.frontend = resolve_frontend(frontend)
        self.display_size = int(display_size)
        self._multimask = self._check_multimask(multimask)
        first = name or getattr(case_or_image, "name", None) or "image"
        self._sources: dict[str, CaseSource] = {first: case_or_image}
        for key, source in (cases or {}).items():
            self._sources.setdefault(str(key), source)
        self._embeddings: OrderedDict[str, tuple] = OrderedDict()
        self.embed_ms: dict[str, float] = {}
        self.latencies_ms: list[float] = []
        self.render_ms: list[float] = []
        self.n_predictions = 0
        self.message = ""
        self._widget = None
        self._picture: _Picture | None = None
        self.canvas = None
        self._controls: dict[str, Any] = {}
        self._syncing = False
        self._cursor: tuple[int, int] | None = None
        self._corner: tuple[int, int] | None = None
        self.select_case(first)

    # -------------------------------------------------------------------------------- case / image
    @property
    def case_names(self) -> list[str]:
        """Names in the case dropdown, in order."""
        return list(self._sources)

    def select_case(self, name: str) -> None:
        """Show case ``name`` (from ``cases``): prompts are cleared; the encoder runs only for a new image."""
        if name not in self._sources:
            raise ValueError(f"Unknown case {name!r}; choose one of: {', '.join(self._sources)}.")
        source = self._sources[name]
        if callable(source) and not isinstance(source, (Case, np.ndarray)):
            source = source()
            self._sources[name] = source  # load once
        if isinstance(source, Case):
            self.case, image, gt = source, source.image, source.mask
        else:
            self.case, image, gt = None, to_rgb_uint8(source, name=f"image {name!r}"), None
        self.case_name = name
        self.image = image
        self.gt = None if gt is None else to_mask(gt, shape=image.shape)
        self._embed(name)
        self.points: list[tuple[float, float, int]] = []
        self.box: np.ndarray | None = None
        self._history: list[tuple[tuple, np.ndarray | None]] = []
        self._cursor = (image.shape[1] // 2, image.shape[0] // 2) if self.frontend == "sliders" else None
        self._corner = None
        self._predict()
        if self._widget is not None:
            self._sync_controls_to_image()
            self._refresh()

    def _embed(self, key: str) -> None:
        """Run the encoder for ``key`` unless its embedding is cached; then make it the predictor's."""
        if key in self._embeddings:
            self._embeddings.move_to_end(key)
            self._activate()
            return
        start = time.perf_counter()
        self.predictor.set_image(self.image)
        self.embed_ms[key] = 1000 * (time.perf_counter() - start)
        p = self.predictor
        self._embeddings[key] = (p.features, p.original_size, p.input_size)
        while len(self._embeddings) > _EMBEDDING_CACHE_SIZE:
            self._embeddings.popitem(last=False)

    def _activate(self) -> None:
        """Point the predictor at this playground's embedding (no encoder call) if it moved on."""
        features, original_size, input_size = self._embeddings[self.case_name]
        p = self.predictor
        if p.is_image_set and p.features is features:
            return
        p.features, p.original_size, p.input_size = features, original_size, input_size
        p.is_image_set = True

    @property
    def encoder_calls(self) -> int | None:
        """The predictor's encoder-call counter (None for a predictor without one)."""
        return getattr(self.predictor, "encoder_calls", None)

    # ------------------------------------------------------------------------------------ prompts
    def add_point(self, x: float, y: float, positive: bool = True) -> None:
        """Add a positive (inside the object) or negative (background) point at pixel (x, y)."""
        check_points([[x, y]], [int(bool(positive))], self.image.shape)
        self._edit(self.points + [(float(x), float(y), int(bool(positive)))], self.box)

    def set_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        """Set (or replace) the box prompt ``[x0, y0, x1, y1]`` in pixels."""
        box = check_box([x0, y0, x1, y1], self.image.shape)
        self._edit(list(self.points), box)

    def clear_box(self) -> None:
        """Remove the box (the points stay)."""
        if self.box is not None:
            self._edit(list(self.points), None)

    def undo(self) -> bool:
        """Revert the last prompt edit; returns False when there is nothing to undo."""
        if not self._history:
            return False
        points, box = self._history.pop()
        self.points, self.box = list(points), box
        self._predict()
        self._refresh()
        return True

    def reset(self) -> None:
        """Remove every prompt (the image embedding is kept; reset can itself be undone)."""
        if self.points or self.box is not None:
            self._edit([], None)

    def _edit(self, points: list, box: np.ndarray | None) -> None:
        self._history.append((tuple(self.points), self.box))
        self.points, self.box = points, box
        self._predict()
        self._refresh()

    @property
    def n_prompts(self) -> int:
        """Points plus boxes currently in use."""
        return len(self.points) + (self.box is not None)

    @property
    def can_undo(self) -> bool:
        return bool(self._history)

    def prompt_arrays(self) -> dict[str, np.ndarray | None]:
        """The current prompt as ``predictor.predict`` keyword arguments."""
        coords = labels = None
        if self.points:
            coords = np.array([p[:2] for p in self.points], dtype=float)
            labels = np.array([p[2] for p in self.points], dtype=np.int64)
        return {"point_coords": coords, "point_labels": labels, "box": self.box}

    # ------------------------------------------------------------------------- outputs and choice
    @staticmethod
    def _check_multimask(mode: str | bool) -> str:
        if mode is True:
            return "multi"
        if mode is False:
            return "single"
        if mode not in MULTIMASK_MODES:
            raise ValueError(f"multimask must be one of {', '.join(map(repr, MULTIMASK_MODES))} (or True/False).")
        return mode

    @property
    def multimask(self) -> str:
        """The policy: ``"auto"``, ``"multi"`` or ``"single"``."""
        return self._multimask

    @property
    def multimask_used(self) -> bool:
        """Whether the current prediction asked for three masks."""
        if self._multimask == "auto":
            return len(self.points) == 1 and self.box is None
        return self._multimask == "multi"

    def set_multimask(self, mode: str | bool) -> None:
        """Switch between one and three candidate masks (re-runs the decoder only)."""
        self._multimask = self._check_multimask(mode)
        self._predict()
        self._refresh()

    def _predict(self) -> None:
        """Decode the current prompt; with no prompt the mask is empty (no model call)."""
        self._choice: int | None = None
        if not self.n_prompts:
            self.masks = np.zeros((1, *self.image.shape[:2]), dtype=bool)
            self.scores = np.zeros(0, dtype=np.float32)
            self.low_res_logits = None
            return
        self._activate()
        start = time.perf_counter()
        masks, scores, logits = self.predictor.predict(**self.prompt_arrays(), multimask_output=self.multimask_used)
        self.masks, self.scores, self.low_res_logits = masks.astype(bool), np.asarray(scores), logits
        self._dice_per_output = None if self.gt is None else [dice_score(m, self.gt) for m in self.masks]
        self.latencies_ms.append(1000 * (time.perf_counter() - start))
        self.n_predictions += 1

    @property
    def best_index(self) -> int | None:
        """Index of the output the IoU head scores highest (None without a prompt)."""
        return int(np.argmax(self.scores)) if len(self.scores) else None

    @property
    def oracle_index(self) -> int | None:
        """Index of the output with the best Dice against the ground truth (None without one)."""
        if self.gt is None or not len(self.scores):
            return None
        return int(np.argmax(self._dice_per_output))

    @property
    def chosen_index(self) -> int | None:
        """The output shown: your :meth:`choose` choice, else the IoU head's."""
        return self._choice if self._choice is not None else self.best_index

    def choose(self, index: int | None) -> None:
        """Show output ``index`` (0-based) instead of the IoU head's pick; None goes back to the IoU head."""
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(self.scores):
                raise ValueError(
                    f"index must be None (the IoU head's pick) or 0..{len(self.scores) - 1} for the "
                    f"{len(self.scores)} current output(s); got {index!r}. Use set_multimask('multi') for three."
                )
            index = int(index)
        self._choice = index
        self._refresh()

    @property
    def mask(self) -> np.ndarray:
        """The mask shown now, (H, W) bool (all False without a prompt)."""
        index = self.chosen_index
        return self.masks[0] if index is None else self.masks[index]

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def dice(self) -> float | None:
        """Dice of :attr:`mask` against the ground truth (None when the image has none)."""
        return None if self.gt is None else dice_score(self.mask, self.gt)

    @property
    def iou(self) -> float | None:
        return None if self.gt is None else iou_score(self.mask, self.gt)

    def output_table(self) -> list[dict[str, Any]]:
        """One row per candidate output: IoU-head score, Dice (with ground truth), and which is chosen."""
        rows = []
        for i, score in enumerate(self.scores):
            rows.append(
                {
                    "output": i,
                    "iou_head_score": float(score),
                    "dice": None if self.gt is None else float(self._dice_per_output[i]),
                    "area": int(self.masks[i].sum()),
                    "iou_head_pick": i == self.best_index,
                    "oracle": i == self.oracle_index,
                    "shown": i == self.chosen_index,
                }
            )
        return rows

    @property
    def status_text(self) -> str:
        """The one-line read-out the widget shows (Dice, IoU, area, prompts, encoder calls)."""
        metrics = "no ground truth" if self.gt is None else f"Dice {self.dice:.3f} · IoU {self.iou:.3f}"
        n_pos = sum(p[2] for p in self.points)
        prompts = f"{n_pos}+ / {len(self.points) - n_pos}− points" + (", box" if self.box is not None else "")
        return f"{metrics} · area {self.area} px · {prompts} · encoder calls {self.encoder_calls}"

    def summary(self) -> dict[str, Any]:
        """The current state as plain numbers (for results.json)."""
        return {
            "case": self.case_name,
            "points": [list(p) for p in self.points],
            "box": None if self.box is None else self.box.tolist(),
            "multimask": self.multimask_used,
            "scores": [float(s) for s in self.scores],
            "chosen_index": self.chosen_index,
            "best_index": self.best_index,
            "oracle_index": self.oracle_index,
            "dice": self.dice,
            "iou": self.iou,
            "area": self.area,
            "encoder_calls": self.encoder_calls,
            "n_predictions": self.n_predictions,
        }

    def show(self, ax=None, title: str | None = None):
        """A static matplotlib picture of the current state (for saved notebooks and reports)."""
        import matplotlib.pyplot as plt

        from utils import viz

        args = self.prompt_arrays()
        points = None if args["point_coords"] is None else (args["point_coords"], args["point_labels"])
        head = title or f"{self.case_name} · {self.n_prompts} prompt(s)"
        if self.case is not None:
            return viz.show_case(self.case, ax=ax, pred=self.mask, box=self.box, points=points, title=head)
        if ax is None:
            _, ax = plt.subplots(figsize=(4.0, 4.4), layout="constrained")
        ax.imshow(self.image)
        viz.show_mask(ax, self.mask)
        if self.box is not None:
            viz.show_box(ax, self.box)
        if points is not None:
            viz.show_points(ax, *points)
        ax.set_title(head, fontsize=10)
        ax.set_axis_off()
        return ax

    # ---------------------------------------------------------------------------------- the widget
    @property
    def scale(self) -> float:
        """Display pixels per image pixel."""
        return self.display_size / max(self.image.shape[:2])

    def render(self) -> np.ndarray:
        """The picture the widget shows now, as an RGB array."""
        args = self.prompt_arrays()
        if self._picture is None or self._picture.source is not self.image:
            self._picture = _Picture(self.image, self.scale)
        return self._picture.draw(
            mask=self.mask if self.n_prompts else None,
            gt=self.gt,
            points=args["point_coords"],
            labels=args["point_labels"],
            box=self.box,
            cursor=self._cursor,
            corner=self._corner,
        )

    @property
    def widget(self):
        """The ipywidgets tree (built on first use; headless code never needs it)."""
        if self._widget is None:
            self._build()
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _build(self) -> None:
        import ipywidgets as w

        c = self._controls
        height, width = self.image.shape[:2]
        if self.frontend == "click":
            self.canvas = _click_canvas_class()()
            self.canvas.observe(self._on_canvas_click, names="click")
            self.canvas.observe(self._on_canvas_box, names="drag_box")
            picture = self.canvas
            c["tool"] = w.ToggleButtons(
                options=[("click adds + point", "positive"), ("click adds − point", "negative")],
                value="positive",
                tooltips=["shift- or right-click adds the other kind", "shift- or right-click adds the other kind"],
                style={"button_width": "130px"},
            )
            c["tool"].observe(lambda change: setattr(self.canvas, "tool", change["new"]), names="value")
            help_text = "Click: add a point · shift/right-click: the other kind · drag: a box · no clicks? the sliders"
        else:
            c["image"] = w.Image(format="jpeg")
            c["image"].add_class("sam-playground-image")
            picture = c["image"]
            help_text = "Move x/y (arrow keys work), then + point / − point. Box: type x0, y0, x1, y1 + Enter."
        c["case"] = w.Dropdown(options=self.case_names, value=self.case_name, description="case")
        c["case"].observe(self._ui(lambda change: self.select_case(change["new"])), names="value")
        c["x"] = w.IntSlider(min=0, max=width - 1, description="x", continuous_update=True)
        c["y"] = w.IntSlider(min=0, max=height - 1, description="y", continuous_update=True)
        for key in ("x", "y"):
            c[key].observe(self._on_slider, names="value")
        buttons = {
            "add_positive": ("+ point", "success", lambda _: self._add_at_cursor(True)),
            "add_negative": ("− point", "danger", lambda _: self._add_at_cursor(False)),
            "corner": ("box corner", "", lambda _: self._box_corner()),
            "clear_box": ("clear box", "", lambda _: self.clear_box()),
            "undo": ("undo", "warning", lambda _: self.undo()),
            "reset": ("reset", "", lambda _: self.reset()),
        }
        for key, (label, style, action) in buttons.items():
            c[key] = w.Button(description=label, button_style=style, layout=w.Layout(width="96px"))
            c[key].on_click(self._ui(action))
            c[key].add_class("sam-playground-" + key.replace("_", "-"))
        c["box_text"] = w.Text(placeholder="x0, y0, x1, y1  (Enter)", description="box", continuous_update=False)
        c["box_text"].observe(self._ui(self._on_box_text), names="value")
        c["multimask"] = w.ToggleButtons(
            options=[("auto", "auto"), ("3 masks", "multi"), ("1 mask", "single")],
            value=self._multimask,
            description="outputs",
            style={"button_width": "70px"},
        )
        c["multimask"].observe(self._ui(lambda change: self.set_multimask(change["new"])), names="value")
        c["choice"] = w.ToggleButtons(options=[("IoU head's pick", "best")], value="best", description="show")
        c["choice"].observe(self._on_choice, names="value")
        c["status"] = w.HTML()
        c["scores"] = w.HTML()
        c["message"] = w.HTML()
        c["help"] = w.HTML(f"<small>{help_text}</small>")
        for key in ("x", "y", "box_text", "status", "scores", "choice", "multimask", "case", "tool"):
            if key in c:
                c[key].add_class("sam-playground-" + key.replace("_", "-"))
        side = w.VBox(
            [c["case"], *([c["tool"]] if "tool" in c else []), c["status"], c["multimask"], c["choice"], c["scores"]],
            layout=w.Layout(margin="0 0 0 12px"),
        )
        keyboard = w.VBox(
            [
                w.HBox([c["x"], c["add_positive"], c["add_negative"]]),
                w.HBox([c["y"], c["corner"], c["clear_box"]]),
                w.HBox([c["box_text"], c["undo"], c["reset"]]),
            ]
        )
        self._widget = w.VBox([w.HBox([picture, side]), keyboard, c["help"], c["message"]])
        self._widget.add_class("sam-playground")
        self._sync_controls_to_image()
        self._refresh()

    def _ui(self, action: Callable) -> Callable:
        """Wrap a widget callback: a bad prompt shows a message instead of vanishing into a log."""

        def handler(*args: Any) -> None:
            if self._syncing:
                return
            try:
                self.message = ""
                action(*args)
            except Exception as exc:  # e.g. a case loader that cannot download offline: say so in the widget
                self.message = str(exc) if isinstance(exc, ValueError) else f"{exc.__class__.__name__}: {exc}"
                if "case" in self._controls:  # the dropdown shows the case that is really loaded
                    self._syncing = True
                    try:
                        self._controls["case"].value = self.case_name
                    finally:
                        self._syncing = False
            self._show_message()

        return handler

    def _show_message(self) -> None:
        if "message" in self._controls:
            text = self.message.replace("&", "&amp;").replace("<", "&lt;")
            self._controls["message"].value = f"<span style='color:#c0392b'>{text}</span>" if text else ""

    def _on_canvas_click(self, change: dict) -> None:
        value = change["new"] or {}
        if {"x", "y"} <= set(value):
            self._ui(lambda: self.add_point(value["x"], value["y"], positive=bool(value.get("positive", True))))()

    def _on_canvas_box(self, change: dict) -> None:
        value = change["new"] or {}
        if len(value.get("box", ())) == 4:
            self._ui(lambda: self.set_box(*value["box"]))()

    def _on_slider(self, _change: dict) -> None:
        if self._syncing:
            return
        self._cursor = (self._controls["x"].value, self._controls["y"].value)
        self._refresh(picture_only=True)

    def _add_at_cursor(self, positive: bool) -> None:
        self.add_point(self._controls["x"].value, self._controls["y"].value, positive=positive)

    def _box_corner(self) -> None:
        here = (self._controls["x"].value, self._controls["y"].value)
        if self._corner is None:
            self._corner = here
            self.message = "first corner set: move x/y to the opposite corner and press 'box corner' again"
            self._refresh(picture_only=True)
            return
        (ax, ay), self._corner = self._corner, None
        self.set_box(min(ax, here[0]), min(ay, here[1]), max(ax, here[0]), max(ay, here[1]))

    def _on_box_text(self, change: dict) -> None:
        text = change["new"].strip()
        if not text:
            return
        try:
            values = [float(v) for v in text.replace(";", ",").replace(" ", ",").split(",") if v]
        except ValueError:
            values = []
        if len(values) != 4:
            raise ValueError(f"type the box as four numbers 'x0, y0, x1, y1' (pixels); got {text!r}.")
        self.set_box(*values)

    def _on_choice(self, change: dict) -> None:
        if self._syncing:
            return
        self.choose(None if change["new"] == "best" else int(change["new"]))

    def _sync_controls_to_image(self) -> None:
        c = self._controls
        height, width = self.image.shape[:2]
        self._syncing = True
        try:
            c["case"].value = self.case_name
            for key, top, at in (("x", width - 1, 0), ("y", height - 1, 1)):
                c[key].max = top
                c[key].value = self._cursor[at] if self._cursor else top // 2
            c["box_text"].value = ""
        finally:
            self._syncing = False
        if self.canvas is not None:
            self.canvas.image_width, self.canvas.image_height = width, height

    def _refresh(self, picture_only: bool = False) -> None:
        """Redraw the widget (a no-op until the widget is built)."""
        if self._widget is None:
            return
        start = time.perf_counter()
        data = _encode(self.render())
        if self.canvas is not None:
            self.canvas.display_width = round(self.image.shape[1] * self.scale)
            self.canvas.picture = base64.b64encode(data).decode("ascii")
        else:
            self._controls["image"].value = data
        if not picture_only:
            self._refresh_panel()
        self._show_message()
        self.render_ms.append(1000 * (time.perf_counter() - start))

    def _refresh_panel(self) -> None:
        c = self._controls
        na = "n/a"
        dice_text = na if self.dice is None else f"{self.dice:.3f}"
        iou_text = na if self.iou is None else f"{self.iou:.3f}"
        c["status"].value = (
            f"<b>Dice</b> <span class='sam-playground-dice'>{dice_text}</span> · "
            f"<b>IoU</b> <span class='sam-playground-iou'>{iou_text}</span> · "
            f"<b>area</b> <span class='sam-playground-area'>{self.area}</span> px<br>"
            f"prompts: <span class='sam-playground-points'>{len(self.points)}</span> point(s)"
            f"{' + box' if self.box is not None else ''} · encoder calls "
            f"<span class='sam-playground-encoder-calls'>{self.encoder_calls}</span>"
        )
        rows = "".join(
            f"<tr><td>#{r['output'] + 1}{' ◀' if r['shown'] else ''}</td><td>{r['iou_head_score']:.3f}</td>"
            f"<td>{na if r['dice'] is None else format(r['dice'], '.3f')}{' ★' if r['oracle'] else ''}</td></tr>"
            for r in self.output_table()
        )
        c["scores"].value = (
            "<table><tr><th>output</th><th>IoU head</th><th>Dice</th></tr>" + rows + "</table>"
            "<small>◀ shown · ★ best Dice (the oracle's pick)</small>"
            if rows
            else "<small>no prompt yet</small>"
        )
        options = [("IoU head's pick", "best")] + [
            (f"#{i + 1} ({s:.2f})", str(i)) for i, s in enumerate(self.scores) if len(self.scores) > 1
        ]
        self._syncing = True
        try:
            c["choice"].options = options
            c["choice"].value = "best" if self._choice is None else str(self._choice)
            c["multimask"].value = self._multimask
            c["case"].value = self.case_name
        finally:
            self._syncing = False
        c["undo"].disabled = not self.can_undo
        if self.canvas is not None:
            self.canvas.status = self.status_text

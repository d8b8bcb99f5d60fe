"""The playground's two ipywidgets views over a :class:`~.state.PlaygroundState`.

- :class:`SlidersView`: core ipywidgets only (Image, sliders, text, buttons), no custom frontend code,
  so it renders wherever ipywidgets do (Google Colab included).
- :class:`ClickView`: the same controls around an `anywidget <https://anywidget.dev>`_ canvas
  (``canvas.js``) that turns clicks and drags into points and boxes.

A view only translates: widget events call the state's methods, and the state's change events redraw
the widgets. ipywidgets and anywidget are imported when a view is first shown, never before.
"""

from __future__ import annotations

import base64
import functools
import importlib.resources
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from utils.lessons.playground.picture import Picture, encode_jpeg
from utils.lessons.playground.state import PlaygroundState

__all__ = ["FRONTENDS", "ClickView", "SlidersView", "canvas_esm", "click_canvas_class", "resolve_frontend"]

FRONTENDS = ("auto", "click", "sliders")


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


@functools.cache
def canvas_esm() -> str:
    """The click canvas' JavaScript module (``canvas.js``, shipped with this package)."""
    return importlib.resources.files(__package__).joinpath("canvas.js").read_text(encoding="utf-8")


@functools.cache
def click_canvas_class() -> type:
    """The anywidget class (built on first use so that importing the playground never needs anywidget)."""
    import anywidget
    import traitlets

    class ClickCanvas(anywidget.AnyWidget):
        """A canvas that shows ``picture`` (base64 JPEG) and reports ``click`` {x, y, positive, seq} and ``drag_box``
        {box: [x0, y0, x1, y1], seq} in image pixels; ``status`` is shown as text below it."""

        _esm = canvas_esm()
        picture = traitlets.Unicode("").tag(sync=True)  # base64 JPEG of the rendered picture
        image_width = traitlets.Int(1).tag(sync=True)
        image_height = traitlets.Int(1).tag(sync=True)
        display_width = traitlets.Int(256).tag(sync=True)
        tool = traitlets.Unicode("positive").tag(sync=True)  # what a plain click adds
        click = traitlets.Dict({}).tag(sync=True)
        drag_box = traitlets.Dict({}).tag(sync=True)
        status = traitlets.Unicode("").tag(sync=True)

    return ClickCanvas


class SlidersView:
    """The state's picture as a core ipywidgets Image, with x/y sliders, buttons and a box text field.

    Move the x/y sliders (arrow keys work once a slider has focus) to place a cross-hair, then press
    "+ point" or "− point"; type a box as ``x0, y0, x1, y1`` or press "box corner" twice. The widget
    tree (:attr:`widget`) is built on first use; until then a state change costs nothing here.
    """

    shows_cursor = True  # the sliders' cross-hair is drawn from the start
    help_text = "Move x/y (arrow keys work), then + point / − point. Box: type x0, y0, x1, y1 + Enter."

    def __init__(self, state: PlaygroundState, display_size: int = 448) -> None:
        self.state = state
        self.display_size = display_size
        self.controls: dict[str, Any] = {}
        self.canvas = None  # the click canvas (ClickView)
        self.message = ""  # the last error or hint, shown under the widget
        self.render_ms: list[float] = []
        self.root = None
        self._picture: Picture | None = None
        self._syncing = False  # True while Python sets widget values: their callbacks must not act
        self._reset_cursor()
        state.subscribe(self._on_state_change)

    def _reset_cursor(self) -> None:
        height, width = self.state.image.shape[:2]
        self.cursor: tuple[int, int] | None = (width // 2, height // 2) if self.shows_cursor else None
        self.corner: tuple[int, int] | None = None

    def _on_state_change(self, event: str) -> None:
        if event == "case":
            self._reset_cursor()
            if self.root is not None:
                self._sync_controls_to_image()
        self.refresh()

    @property
    def scale(self) -> float:
        """Display pixels per image pixel."""
        return self.display_size / max(self.state.image.shape[:2])

    def render(self) -> np.ndarray:
        """The picture the widget shows now, as an RGB array."""
        s = self.state
        if self._picture is None or self._picture.source is not s.image:
            self._picture = Picture(s.image, self.scale)
        args = s.prompt_arrays()
        return self._picture.draw(
            mask=s.mask if s.n_prompts else None,
            gt=s.gt,
            points=args["point_coords"],
            labels=args["point_labels"],
            box=s.box,
            cursor=self.cursor,
            corner=self.corner,
        )

    @property
    def widget(self):
        """The ipywidgets tree (built on first use; headless code never needs it)."""
        if self.root is None:
            self._build()
        return self.root

    # ------------------------------------------------------------------------------- building
    def _picture_widget(self, w) -> Any:
        image = self.controls["image"] = w.Image(format="jpeg")
        image.add_class("sam-playground-image")
        return image

    def _build(self) -> None:
        import ipywidgets as w

        c, s = self.controls, self.state
        height, width = s.image.shape[:2]
        picture = self._picture_widget(w)
        c["case"] = w.Dropdown(options=s.case_names, value=s.case_name, description="case")
        c["case"].observe(self._ui(lambda change: s.select_case(change["new"])), names="value")
        c["x"] = w.IntSlider(min=0, max=width - 1, description="x", continuous_update=True)
        c["y"] = w.IntSlider(min=0, max=height - 1, description="y", continuous_update=True)
        for key in ("x", "y"):
            c[key].observe(self._on_slider, names="value")
        buttons = {
            "add_positive": ("+ point", "success", lambda _: self._add_at_cursor(True)),
            "add_negative": ("− point", "danger", lambda _: self._add_at_cursor(False)),
            "corner": ("box corner", "", lambda _: self._box_corner()),
            "clear_box": ("clear box", "", lambda _: s.clear_box()),
            "undo": ("undo", "warning", lambda _: s.undo()),
            "reset": ("reset", "", lambda _: s.reset()),
        }
        for key, (label, style, action) in buttons.items():
            c[key] = w.Button(description=label, button_style=style, layout=w.Layout(width="96px"))
            c[key].on_click(self._ui(action))
            c[key].add_class("sam-playground-" + key.replace("_", "-"))
        c["box_text"] = w.Text(placeholder="x0, y0, x1, y1  (Enter)", description="box", continuous_update=False)
        c["box_text"].observe(self._ui(self._on_box_text), names="value")
        c["multimask"] = w.ToggleButtons(
            options=[("auto", "auto"), ("3 masks", "multi"), ("1 mask", "single")],
            value=s.multimask,
            description="outputs",
            style={"button_width": "70px"},
        )
        c["multimask"].observe(self._ui(lambda change: s.set_multimask(change["new"])), names="value")
        c["choice"] = w.ToggleButtons(options=[("IoU head's pick", "best")], value="best", description="show")
        c["choice"].observe(self._on_choice, names="value")
        c["status"] = w.HTML()
        c["scores"] = w.HTML()
        c["message"] = w.HTML()
        c["help"] = w.HTML(f"<small>{self.help_text}</small>")
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
        self.root = w.VBox([w.HBox([picture, side]), keyboard, c["help"], c["message"]])
        self.root.add_class("sam-playground")
        self._sync_controls_to_image()
        self.refresh()

    # ------------------------------------------------------------------------ widget events
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
                if "case" in self.controls:  # the dropdown shows the case that is really loaded
                    self._syncing = True
                    try:
                        self.controls["case"].value = self.state.case_name
                    finally:
                        self._syncing = False
            self._show_message()

        return handler

    def _show_message(self) -> None:
        if "message" in self.controls:
            text = self.message.replace("&", "&amp;").replace("<", "&lt;")
            self.controls["message"].value = f"<span style='color:#c0392b'>{text}</span>" if text else ""

    def _on_slider(self, _change: dict) -> None:
        if self._syncing:
            return
        self.cursor = (self.controls["x"].value, self.controls["y"].value)
        self.refresh(picture_only=True)

    def _add_at_cursor(self, positive: bool) -> None:
        self.state.add_point(self.controls["x"].value, self.controls["y"].value, positive=positive)

    def _box_corner(self) -> None:
        here = (self.controls["x"].value, self.controls["y"].value)
        if self.corner is None:
            self.corner = here
            self.message = "first corner set: move x/y to the opposite corner and press 'box corner' again"
            self.refresh(picture_only=True)
            return
        (ax, ay), self.corner = self.corner, None
        self.state.set_box(min(ax, here[0]), min(ay, here[1]), max(ax, here[0]), max(ay, here[1]))

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
        self.state.set_box(*values)

    def _on_choice(self, change: dict) -> None:
        if self._syncing:
            return
        self.state.choose(None if change["new"] == "best" else int(change["new"]))

    # ------------------------------------------------------------------------------ redrawing
    def _sync_controls_to_image(self) -> None:
        c, s = self.controls, self.state
        height, width = s.image.shape[:2]
        self._syncing = True
        try:
            c["case"].value = s.case_name
            for key, top, at in (("x", width - 1, 0), ("y", height - 1, 1)):
                c[key].max = top
                c[key].value = self.cursor[at] if self.cursor else top // 2
            c["box_text"].value = ""
        finally:
            self._syncing = False

    def _show_picture(self, jpeg: bytes) -> None:
        self.controls["image"].value = jpeg

    def refresh(self, picture_only: bool = False) -> None:
        """Redraw the widget (a no-op until the widget is built)."""
        if self.root is None:
            return
        start = time.perf_counter()
        self._show_picture(encode_jpeg(self.render()))
        if not picture_only:
            self._refresh_panel()
        self._show_message()
        self.render_ms.append(1000 * (time.perf_counter() - start))

    def _refresh_panel(self) -> None:
        c, s = self.controls, self.state
        na = "n/a"
        dice_text = na if s.dice is None else f"{s.dice:.3f}"
        iou_text = na if s.iou is None else f"{s.iou:.3f}"
        c["status"].value = (
            f"<b>Dice</b> <span class='sam-playground-dice'>{dice_text}</span> · "
            f"<b>IoU</b> <span class='sam-playground-iou'>{iou_text}</span> · "
            f"<b>area</b> <span class='sam-playground-area'>{s.area}</span> px<br>"
            f"prompts: <span class='sam-playground-points'>{len(s.points)}</span> point(s)"
            f"{' + box' if s.box is not None else ''} · encoder calls "
            f"<span class='sam-playground-encoder-calls'>{s.encoder_calls}</span>"
        )
        rows = "".join(
            f"<tr><td>#{r['output'] + 1}{' ◀' if r['shown'] else ''}</td><td>{r['iou_head_score']:.3f}</td>"
            f"<td>{na if r['dice'] is None else format(r['dice'], '.3f')}{' ★' if r['oracle'] else ''}</td></tr>"
            for r in s.output_table()
        )
        c["scores"].value = (
            "<table><tr><th>output</th><th>IoU head</th><th>Dice</th></tr>" + rows + "</table>"
            "<small>◀ shown · ★ best Dice (the oracle's pick)</small>"
            if rows
            else "<small>no prompt yet</small>"
        )
        options = [("IoU head's pick", "best")] + [
            (f"#{i + 1} ({score:.2f})", str(i)) for i, score in enumerate(s.scores) if len(s.scores) > 1
        ]
        self._syncing = True
        try:
            c["choice"].options = options
            c["choice"].value = "best" if s.choice is None else str(s.choice)
            c["multimask"].value = s.multimask
            c["case"].value = s.case_name
        finally:
            self._syncing = False
        c["undo"].disabled = not s.can_undo


class ClickView(SlidersView):
    """:class:`SlidersView`'s controls around a canvas you click: a click adds a point (the *tool* toggle
    says positive or negative; shift-click or right-click adds the other kind), a drag draws a box.

    JupyterLab and Notebook 7 load anywidget's frontend from the installed Python package; Google
    Colab needs its custom widget manager (see :func:`resolve_frontend`).
    """

    shows_cursor = False  # no cross-hair until a slider moves: the mouse points
    help_text = "Click: add a point · shift/right-click: the other kind · drag: a box · no clicks? the sliders"

    def _picture_widget(self, w) -> Any:
        self.canvas = click_canvas_class()()
        self.canvas.observe(self._on_canvas_click, names="click")
        self.canvas.observe(self._on_canvas_box, names="drag_box")
        tool = self.controls["tool"] = w.ToggleButtons(
            options=[("click adds + point", "positive"), ("click adds − point", "negative")],
            value="positive",
            tooltips=["shift- or right-click adds the other kind", "shift- or right-click adds the other kind"],
            style={"button_width": "130px"},
        )
        tool.observe(lambda change: setattr(self.canvas, "tool", change["new"]), names="value")
        return self.canvas

    def _on_canvas_click(self, change: dict) -> None:
        value = change["new"] or {}
        if {"x", "y"} <= set(value):
            positive = bool(value.get("positive", True))
            self._ui(lambda: self.state.add_point(value["x"], value["y"], positive=positive))()

    def _on_canvas_box(self, change: dict) -> None:
        value = change["new"] or {}
        if len(value.get("box", ())) == 4:
            self._ui(lambda: self.state.set_box(*value["box"]))()

    def _sync_controls_to_image(self) -> None:
        super()._sync_controls_to_image()
        self.canvas.image_width, self.canvas.image_height = self.state.image.shape[1], self.state.image.shape[0]

    def _show_picture(self, jpeg: bytes) -> None:
        self.canvas.display_width = round(self.state.image.shape[1] * self.scale)
        self.canvas.picture = base64.b64encode(jpeg).decode("ascii")

    def _refresh_panel(self) -> None:
        super()._refresh_panel()
        self.canvas.status = self.state.status_text

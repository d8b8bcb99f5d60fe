"""The prompt playground: prompt SAM interactively, or from code, on one image embedding.

:class:`PromptPlayground` wraps a predictor (``utils.models.load_predictor``) and an image or a
:class:`~utils.datasets.Case`. The image encoder runs **once per image**; every prompt edit after
that runs only the prompt encoder and mask decoder (``predictor.encoder_calls`` does not move).

The package: ``state`` (prompts, undo, masks, metrics; no widget), ``decoder`` (the prompt → mask
step, reusing the decoder's per-image work), ``picture`` (the drawing),
``views`` (the two ipywidgets frontends over the state) and ``canvas.js`` (the click frontend's
JavaScript). Both frontends show the same picture (image, ground-truth outline, mask, prompts) and
the same slider/text controls, so keyboard use works everywhere:

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

Headless (papermill, tests) nothing needs a browser: drive the playground from code with
:meth:`PromptPlayground.add_point`, :meth:`~PromptPlayground.set_box`, :meth:`~PromptPlayground.undo`,
:meth:`~PromptPlayground.reset`, :meth:`~PromptPlayground.choose`, and read ``.mask``, ``.scores``,
``.dice``. Coordinates follow :mod:`utils.prompts`: ``(x, y)`` = (column, row) in image pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from utils.lessons.playground.picture import render_prompts
from utils.lessons.playground.state import MULTIMASK_MODES, CaseSource, PlaygroundState
from utils.lessons.playground.views import FRONTENDS, ClickView, SlidersView, resolve_frontend

__all__ = [
    "FRONTENDS",
    "MULTIMASK_MODES",
    "PlaygroundState",
    "PromptPlayground",
    "render_prompts",
    "resolve_frontend",
]


class PromptPlayground(PlaygroundState):
    """Prompt SAM on one image, by clicking or from code; the encoder runs once per image.

    ``PromptPlayground(predictor, case_or_image, cases=None, frontend="auto", multimask="auto")``

    - ``predictor``: a ``SamPredictor`` (``utils.models.load_predictor(...)``; its
      ``encoder_calls`` counter is reported as :attr:`encoder_calls`).
    - ``case_or_image``: a :class:`~utils.datasets.Case` (its ``mask`` is the ground truth: Dice and
      IoU are shown live) or an (H, W[, 3]) image (no ground truth: :attr:`dice` is None).
    - ``cases``: optional ``{name: Case | image | zero-argument loader}`` for the case dropdown
      (loaders run when chosen, e.g. a MedSegBench download). Embeddings are cached per image
      (the last 8, in a :class:`utils.models.CachedPredictor`), so going back to a case does not
      run the encoder again.
    - ``frontend``: ``"click"``, ``"sliders"`` or ``"auto"`` (see :func:`resolve_frontend`).
    - ``multimask``: ``"auto"`` (three masks for a single point, one otherwise), ``"multi"`` or
      ``"single"``; with three masks the IoU head's highest-scoring one is shown unless you
      :meth:`choose` another. Every prompt edit resets the choice to the IoU head's.

    Code API (:class:`~utils.lessons.playground.state.PlaygroundState`): :meth:`add_point`,
    :meth:`set_box`, :meth:`clear_box`, :meth:`undo` (reverts the last prompt edit), :meth:`reset`
    (removes all prompts; the embedding stays), :meth:`choose`, :meth:`set_multimask`,
    :meth:`select_case`, :meth:`summary`, and :meth:`show` (a matplotlib figure); state in
    :attr:`mask`, :attr:`masks`, :attr:`scores`, :attr:`chosen_index`, :attr:`best_index`,
    :attr:`oracle_index`, :attr:`dice`, :attr:`iou`, :attr:`area`, :attr:`latencies_ms` (prompt →
    mask, per prediction). Invalid prompts raise ``ValueError``.

    Display: ``display(playground)`` or a notebook cell ending in it shows :attr:`widget` (the
    :attr:`view`'s). Stable hooks for browser tests (CSS classes, present whatever the frontend unless noted):

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
        if isinstance(display_size, bool) or not isinstance(display_size, (int, np.integer)) or display_size < 64:
            raise ValueError(f"display_size must be an integer number of pixels >= 64; got {display_size!r}.")
        self.frontend = resolve_frontend(frontend)
        self.display_size = int(display_size)
        super().__init__(predictor, case_or_image, cases=cases, multimask=multimask, name=name)
        view = ClickView if self.frontend == "click" else SlidersView
        self.view: SlidersView = view(self, self.display_size)

    # The view's parts, under the names the playground always had.
    @property
    def widget(self):
        """The ipywidgets tree (built on first use; headless code never needs it)."""
        return self.view.widget

    @property
    def canvas(self):
        """The click canvas (``"click"`` frontend, once the widget is built; else None)."""
        return self.view.canvas

    @property
    def message(self) -> str:
        """The widget's last error or hint ("" when none)."""
        return self.view.message

    @property
    def render_ms(self) -> list[float]:
        """Milliseconds per widget redraw (picture and panel)."""
        return self.view.render_ms

    @property
    def scale(self) -> float:
        """Display pixels per image pixel."""
        return self.view.scale

    def render(self) -> np.ndarray:
        """The picture the widget shows now, as an RGB array."""
        return self.view.render()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

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

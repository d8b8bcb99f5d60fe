"""The prompt playground's state: one image, its prompts and their undo history, SAM's masks and scores,
and their Dice / IoU against the ground truth. No widget here: the views (:mod:`.views`) observe it.

The image encoder runs once per image (the predictor is wrapped in :class:`utils.models.CachedPredictor`);
every prompt edit runs only the prompt encoder and mask decoder. Coordinates follow :mod:`utils.prompts`:
``(x, y)`` = (column, row) in image pixels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from utils.datasets import Case
from utils.images import to_mask, to_rgb_uint8
from utils.lessons.playground.decoder import ReusingDecoder
from utils.metrics import dice as dice_score
from utils.metrics import iou as iou_score
from utils.models import CachedPredictor
from utils.prompts import check_box, check_points

__all__ = ["EMBEDDING_CACHE_SIZE", "MULTIMASK_MODES", "CaseSource", "PlaygroundState"]

#: "auto": three candidate masks only for a lone point (SAM's advice for ambiguous prompts), else one.
MULTIMASK_MODES = ("auto", "multi", "single")
EMBEDDING_CACHE_SIZE = 8  # images whose embedding is kept; one SAM ViT-B embedding is 256x64x64 floats = 4 MB
CaseSource = Case | np.ndarray | Callable[[], Case | np.ndarray]


def _check_multimask(mode: str | bool) -> str:
    """``True`` → ``"multi"``, ``False`` → ``"single"``; else one of :data:`MULTIMASK_MODES`."""
    if mode is True:
        return "multi"
    if mode is False:
        return "single"
    if mode not in MULTIMASK_MODES:
        raise ValueError(f"multimask must be one of {', '.join(map(repr, MULTIMASK_MODES))} (or True/False).")
    return mode


class PlaygroundState:
    """Prompts on one image and what SAM answers; every edit can be undone.

    ``PlaygroundState(predictor, case_or_image, cases=None, multimask="auto", name=None)``: see
    :class:`utils.lessons.playground.PromptPlayground` (this class without the widget). Views call
    :meth:`subscribe` to hear of every change.
    """

    def __init__(
        self,
        predictor: Any,
        case_or_image: CaseSource,
        cases: Mapping[str, CaseSource] | None = None,
        multimask: str | bool = "auto",
        name: str | None = None,
    ) -> None:
        if not hasattr(predictor, "set_image") or not hasattr(predictor, "predict"):
            raise ValueError(
                "predictor must be a SamPredictor, e.g. utils.models.load_predictor('litemedsam'); "
                f"got {type(predictor).__name__}."
            )
        if not isinstance(predictor, CachedPredictor):
            predictor = CachedPredictor(predictor, max_items=EMBEDDING_CACHE_SIZE)
        self.predictor = predictor
        # predictor.predict's answers, bit for bit, without redoing the decoder's per-image work on every edit;
        # None makes every edit call predictor.predict (the bench times both).
        self.decoder: ReusingDecoder | None = ReusingDecoder(predictor)
        self._multimask = _check_multimask(multimask)
        first = name or getattr(case_or_image, "name", None) or "image"
        self._sources: dict[str, CaseSource] = {first: case_or_image}
        for key, source in (cases or {}).items():
            self._sources.setdefault(str(key), source)
        self.embed_ms: dict[str, float] = {}
        self.latencies_ms: list[float] = []
        self.n_predictions = 0
        self._listeners: list[Callable[[str], None]] = []
        self._features = None  # this image's embedding, to notice when the predictor moved on to another image
        self.select_case(first)

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """Call ``listener(event)`` after each change: ``"case"`` (a new image) or ``"prompt"`` (anything else)."""
        self._listeners.append(listener)

    def _notify(self, event: str) -> None:
        for listener in self._listeners:
            listener(event)

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
        self._embed()
        self.points: list[tuple[float, float, int]] = []
        self.box: np.ndarray | None = None
        self._history: list[tuple[tuple, np.ndarray | None]] = []
        self._predict()
        self._notify("case")

    def _embed(self) -> None:
        """Make this image the predictor's: the cache restores an image it has seen without encoding."""
        misses = self.predictor.misses
        start = time.perf_counter()
        self.predictor.set_image(self.image)
        if self.predictor.misses > misses:
            self.embed_ms[self.case_name] = 1000 * (time.perf_counter() - start)
        self._features = getattr(self.predictor, "features", None)

    def _activate(self) -> None:
        """Restore this image's embedding if the predictor was used for another image since (no encoder call)."""
        p = self.predictor
        if not (getattr(p, "is_image_set", False) and getattr(p, "features", None) is self._features):
            self._embed()

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
        self._notify("prompt")
        return True

    def reset(self) -> None:
        """Remove every prompt (the image embedding is kept; reset can itself be undone)."""
        if self.points or self.box is not None:
            self._edit([], None)

    def _edit(self, points: list, box: np.ndarray | None) -> None:
        self._history.append((tuple(self.points), self.box))
        self.points, self.box = points, box
        self._predict()
        self._notify("prompt")

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
        self._multimask = _check_multimask(mode)
        self._predict()
        self._notify("prompt")

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
        predict = self.predictor.predict if self.decoder is None else self.decoder.predict
        masks, scores, logits = predict(**self.prompt_arrays(), multimask_output=self.multimask_used)
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
    def choice(self) -> int | None:
        """Your :meth:`choose` choice (None: the IoU head's pick is shown)."""
        return self._choice

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
        self._notify("prompt")

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

"""Stand-ins the tests share: the tiny random SAM, a predictor that knows the answer, synthetic cases and files.

Plain functions and classes (fixtures built on them live in tests/conftest.py). Test modules import them with
``from fakes import ...``: tests/ is on sys.path because tests/conftest.py lives there.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from torch import nn

from utils import models
from utils.datasets import Case

# ------------------------------------------------------------------------------------- the tiny SAM


def load_tiny_sam() -> nn.Module:
    """A fresh tiny random SAM on the CPU (seeded: every call gives the same weights), its warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.MeaninglessModelWarning)
        return models.load_sam("tiny_sam", device="cpu")


def load_tiny_predictor() -> models.CoursePredictor:
    """A fresh predictor around the tiny random SAM (its ``encoder_calls`` start at 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", models.MeaninglessModelWarning)
        return models.load_predictor("tiny_sam", device="cpu")


# ---------------------------------------------------------------------------------- synthetic cases


def blob_case(name: str, center=(20, 28), radius=9, shape=(48, 64), modality="ct", spacing=(1.0, 1.0)) -> Case:
    """A disc on a gradient background; the image differs per name so a fake predictor can look it up."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    mask = (rows - center[0]) ** 2 + (cols - center[1]) ** 2 <= radius**2
    image = (np.add.outer(np.arange(shape[0]), np.arange(shape[1])) + 7 * len(name)) % 200
    image = np.where(mask, 230, image).astype(np.uint8)
    return Case(image=image, mask=mask, name=name, modality=modality, spacing=spacing)


def disk_case(seed: int, size: int = 64) -> Case:
    """A bright disk on a dark background: the box prompt alone says where it is (trivially learnable)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.35, 0.65, size=2) * size
    radius = rng.uniform(0.2, 0.3) * size
    mask = (rows - cy) ** 2 + (cols - cx) ** 2 < radius**2
    return Case(image=np.where(mask, 200, 40).astype(np.uint8), mask=mask, name=f"disk_{seed}", modality="synthetic")


class LookupPredictor:
    """A fake predictor that knows the answer: it finds the ground truth by the image it was given.

    ``multimask_output=True`` returns three masks: by default three copies of the truth; with
    ``misrank=True`` an empty mask that the "IoU head" scores highest, then the truth, then a shifted
    truth — so the IoU head's pick is wrong and the oracle's is right.
    """

    def __init__(self, cases, misrank: bool = False):
        self.truth = {c.image.tobytes(): c.mask for c in cases}
        self.misrank = misrank
        self.encoder_calls = 0
        self.name = "lookup"
        self.mask = None

    def set_image(self, image, image_format="RGB"):
        self.encoder_calls += 1
        self.mask = self.truth[np.ascontiguousarray(image).tobytes()]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=True, **_):
        if not multimask_output:
            return self.mask[None], np.array([0.9]), None
        if self.misrank:
            masks = np.stack([np.zeros_like(self.mask), self.mask, np.roll(self.mask, 3, axis=1)])
            return masks, np.array([0.95, 0.5, 0.7]), None
        return np.stack([self.mask] * 3), np.array([0.9, 0.8, 0.7]), None


# ---------------------------------------------------------------------------------- synthetic files


def npz_bytes(**arrays) -> bytes:
    """``arrays`` as the bytes of a compressed .npz file."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def synthetic_segmentation(n: int, h: int = 32, w: int = 40, rgb: bool = False, fg: int = 1, empty=(), seed=0):
    """Images and labels like MedSegBench's: a rectangle of ``fg`` per image (none for ``empty``)."""
    rng = np.random.default_rng(seed)
    shape = (n, h, w, 3) if rgb else (n, h, w)
    images = rng.integers(0, 256, size=shape, dtype=np.uint8)
    labels = np.zeros((n, h, w), dtype=np.uint8)
    for i in range(n):
        if i not in empty:
            labels[i, 2 + i % 5 : 12 + i % 7, 3 + i % 4 : 20 + i % 9] = fg
    return images, labels


def medsegbench_npz(sizes=(6, 3, 4), **kwargs) -> tuple[bytes, dict[str, np.ndarray]]:
    """A MedSegBench-layout .npz (train/val/test images and labels of ``sizes``): its bytes and its arrays."""
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        images, labels = synthetic_segmentation(n, seed=n, **kwargs)
        arrays[f"{split}_images"], arrays[f"{split}_label"] = images, labels
    return npz_bytes(**arrays), arrays


# ------------------------------------------------------------------------- a notebook's teaching cells


def teaching_cells(stem: str) -> list:
    """The code cells of ``notebooks/<stem>.ipynb`` tagged "teaching" (a lesson's algorithm written by hand)."""
    import nbformat

    from utils.tools import harness

    path = next(p for p in harness.find_notebooks() if p.stem == stem)
    return [c for c in nbformat.read(path, as_version=4).cells if "teaching" in c.metadata.get("tags", [])]


def run_teaching_cells(stem: str, *imports: str) -> dict:
    """Execute notebook ``stem``'s import cell (the code cell containing every string of ``imports``) and its
    teaching cells;
    return the namespace, so a test can compare the hand-written version with the ``utils`` function."""
    import nbformat

    from utils.tools import harness

    path = next(p for p in harness.find_notebooks() if p.stem == stem)
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    import_cell = next(c for c in cells if all(text in c.source for text in imports))
    teaching = teaching_cells(stem)
    assert len(teaching) >= 3 and all(len(c.source.splitlines()) <= 15 for c in teaching)
    namespace: dict = {}
    for cell in [import_cell, *teaching]:
        exec(compile(cell.source, f"{path.name}:{cell.id}", "exec"), namespace)
    return namespace


# ----------------------------------------------------------------- a model whose Dice depends only on its box


class BoxFiller:
    """Predicts the prompt box filled in: Dice then depends only on how much of its box the target fills."""

    name = "box_filler"

    def __init__(self):
        self.encoder_calls = 0

    def set_image(self, image):
        self.encoder_calls += 1
        self.shape = image.shape[:2]

    def predict(self, point_coords=None, point_labels=None, box=None, multimask_output=False):
        x0, y0, x1, y1 = np.round(box).astype(int)
        mask = np.zeros(self.shape, bool)
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
        return mask[None], np.array([0.9]), None

"""Exercises of notebook 07 (3-D with a 2-D model): the next slice's box, volumes with voxel spacing,
a stop rule of your own, and a per-slice intensity window."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise


def _solve_next_box(mask, margin=3):
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    box = np.array([cols[0] - margin, rows[0] - margin, cols[-1] + margin, rows[-1] + margin], dtype=float)
    return np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])  # keep it inside the image


@exercise(
    "07.next_box",
    "Build the box prompt for the next slice from the previous slice's mask `mask`: its tight box "
    "[x0, y0, x1, y1] (first/last column and row that hold the mask) grown by `margin` pixels on every side "
    "and clipped to the image.",
    solver=_solve_next_box,
    hint="x is the column: mask.any(axis=0) marks the columns that hold the mask; clip to 0..W-1 and 0..H-1",
    kind="check",
    warmup=True,
)
def _check_next_box(answer, mask, margin=3):
    from utils.prompts import next_box

    expected = next_box(mask, margin)
    value = np.asarray(answer, dtype=float).reshape(-1)
    if value.shape != (4,):
        return False, f"expected 4 numbers [x0, y0, x1, y1], got {value.size}"
    return bool(np.allclose(value, expected)), f"the next box is {expected.tolist()} (margin {margin} px)"


def _solve_volume_ml(gt, spacing, step=3):
    voxel_mm3 = np.prod(spacing)  # the volume of one voxel
    fine_ml = gt.sum() * voxel_mm3 / 1000  # 1 mL = 1000 mm³
    thick = gt[::step]  # keep every step-th slice: a scan with thicker slices
    thick_spacing = (spacing[0] * step, spacing[1], spacing[2])
    thick_ml = thick.sum() * np.prod(thick_spacing) / 1000
    return fine_ml, thick_ml


@exercise(
    "07.volume_ml",
    "Compute the structure's volume in mL from the ground truth `gt` and its voxel `spacing` (slice, row, col) "
    "in mm. Then simulate a scan with `step` times thicker slices (keep `gt[::step]`, whose slices are "
    "`spacing[0] * step` mm apart) and compute its volume too. Answer `(fine_ml, thick_ml)`.",
    solver=_solve_volume_ml,
    hint="one voxel is spacing[0] × spacing[1] × spacing[2] mm³, and 1 mL = 1000 mm³",
    kind="check",
)
def _check_volume_ml(answer, gt, spacing, step=3):
    from utils.metrics import volume_ml

    fine = volume_ml(gt, spacing)
    thick = volume_ml(gt[::step], (spacing[0] * step, spacing[1], spacing[2]))
    values = np.asarray(answer, dtype=float).reshape(-1)
    if values.shape != (2,):
        return False, f"expected two numbers (fine_ml, thick_ml), got {values.size}"
    ok = bool(np.allclose(values, [fine, thick], rtol=1e-6, atol=1e-9))
    return ok, f"{fine:.3f} mL at {spacing[0]:g} mm slices, {thick:.3f} mL at {spacing[0] * step:g} mm"


def _solve_stop_rule(min_area=10, max_area_ratio=2.0, min_overlap=0.5):
    def should_stop(mask, previous):
        area, previous_area = int(mask.sum()), int(previous.sum())
        if area < min_area:
            return True  # the structure vanished
        if max(area, previous_area) / min(area, previous_area) > max_area_ratio:
            return True  # the area jumped
        overlap = 2 * np.logical_and(mask, previous).sum() / (area + previous_area)
        return overlap < min_overlap  # the mask moved away from the previous one

    return should_stop


def _stop_rule_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pairs (name, mask, previous) built from one disk, covering every branch of the rule."""
    from scipy import ndimage

    rows, cols = np.indices((48, 64))
    example = (rows - 22) ** 2 + (cols - 26) ** 2 <= 8.5**2  # about 230 pixels, like a thalamus slice
    width = max(int(np.flatnonzero(example.any(axis=0)).size), 1)
    order = np.cumsum(example.ravel()).reshape(example.shape)  # 1, 2, 3, ... over the mask's pixels

    def first(n: int) -> np.ndarray:  # the mask's first n pixels in reading order
        return example & (order <= n)

    changed = [
        ("same mask", example),
        ("slightly smaller", ndimage.binary_erosion(example)),
        ("moved by its own width", np.roll(example, width, axis=1)),
        ("grown a lot", ndimage.binary_dilation(example, iterations=6)),
        ("shrunk to a third", first(int(example.sum()) // 3)),
        ("almost gone", first(5)),
        ("empty", np.zeros_like(example)),
    ]
    return [(name, mask, example) for name, mask in changed]


@exercise(
    "07.stop_rule",
    "Write `should_stop(mask, previous)` → True/False: stop when the new mask has fewer than `min_area` "
    "pixels, or its area differs from the previous one by more than a factor `max_area_ratio` (either way), "
    "or its Dice with the previous mask is below `min_overlap`. Set `answer = should_stop` (the function).",
    solver=_solve_stop_rule,
    hint="check the area first (an empty mask would divide by zero); Dice = 2|A ∩ B| / (|A| + |B|)",
    kind="check",
)
def _check_stop_rule(answer, min_area=10, max_area_ratio=2.0, min_overlap=0.5):
    from utils.lessons.volumetric import StopRule

    if not callable(answer):
        return False, "answer must be the function itself: answer = should_stop (no parentheses)"
    rule = StopRule(min_area=min_area, max_area_ratio=max_area_ratio, min_overlap=min_overlap)
    wrong = []
    for name, mask, previous in _stop_rule_cases():
        expected = rule.check(mask, previous) is not None
        if bool(answer(mask, previous)) != expected:
            wrong.append(f"{name} (should {'stop' if expected else 'go on'})")
    if wrong:
        return False, "wrong on: " + ", ".join(wrong)
    return True, "it agrees with utils.lessons.volumetric.StopRule on all 7 test pairs"


def _solve_slice_window(image, percentiles=(1.0, 99.0)):
    from utils.images import rescale_to_uint8

    foreground = image[image > image.min()]  # the head, not the air around it
    low, high = np.percentile(foreground, percentiles)
    return rescale_to_uint8(image, low=low, high=high)


@exercise(
    "07.slice_window",
    "Window one slice on its own: map the `percentiles` (low, high) of its foreground pixels (those brighter "
    "than the slice's minimum) to 0 and 255, clipping outside, and return a uint8 image of the same shape.",
    solver=_solve_slice_window,
    hint="np.percentile(image[image > image.min()], percentiles), then utils.images.rescale_to_uint8(image, low, high)",
    kind="check",
)
def _check_slice_window(answer, image, percentiles=(1.0, 99.0)):
    from utils.lessons.volumetric import normalise_slices

    expected = normalise_slices(np.asarray(image)[None], percentiles)[0]
    value = np.asarray(answer)
    if value.shape != expected.shape:
        return False, f"expected an image of shape {expected.shape}, got {value.shape}"
    error = int(np.abs(value.astype(int) - expected.astype(int)).max())
    return error <= 1, f"largest difference from the reference window: {error} grey level(s)"

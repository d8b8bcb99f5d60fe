"""Exercises of notebook 00 (set-up): predict the encoder's time from its arithmetic; build a box prompt."""

from __future__ import annotations

import numpy as np

from utils.exercises import exercise, grade_prediction

# ------------------------------------------------------------------ 00.encoder_floor (predict)

FLOOR_CHOICES = ("below 1x", "1x to 2x", "2x to 4x", "above 4x")


def _floor_ratio(encoder_s: float, gflop: float, tflops: float) -> tuple[float, float]:
    floor_s = gflop / (1000.0 * tflops)  # GFLOP / (GFLOP per second)
    return floor_s, encoder_s / floor_s


def _solve_encoder_floor(encoder_s, gflop, tflops):
    floor_s = gflop / (1000 * tflops)  # the time if every FLOP ran at the measured matmul rate
    ratio = encoder_s / floor_s
    return "below 1x" if ratio < 1 else "1x to 2x" if ratio < 2 else "2x to 4x" if ratio < 4 else "above 4x"


@exercise(
    "00.encoder_floor",
    "The image encoder needs `gflop` GFLOP per image and this device multiplies matrices at `tflops` TFLOP/s "
    "(both printed above). Dividing one by the other gives the *floor*: the encoder's time if every operation "
    "ran as fast as a large matrix product. Before the encoder is timed, predict how many times the floor the "
    f"measured time will be: one of {', '.join(repr(c) for c in FLOOR_CHOICES)}.",
    solver=_solve_encoder_floor,
    hint="floor = gflop / (1000 × tflops) seconds; what in a transformer is not a large matrix product?",
    kind="predict",
    choices=FLOOR_CHOICES,
)
def _check_encoder_floor(answer, encoder_s, gflop, tflops):
    floor_s, ratio = _floor_ratio(encoder_s, gflop, tflops)
    outcome = _solve_encoder_floor(encoder_s, gflop, tflops)
    why = (
        f"The encoder took {encoder_s:.3g} s; {gflop:.0f} GFLOP at {tflops:.3g} TFLOP/s would take {floor_s:.3g} s, "
        f"so it ran at {ratio:.1f}× the floor. "
    )
    if ratio >= 1:
        why += (
            "Not every operation is a large matrix product: softmax, layer norms, GELU, reshapes and memory "
            "traffic run below the matmul rate (the course's bench on 2 CPU cores: SAM ViT-B 1.6×, "
            "LiteMedSAM 2.0×; benchmarks/RESULTS.md). A busy machine raises the ratio further."
        )
    else:
        why += (
            "The encoder ran faster than the matmul test predicts: its big products use the device better "
            "than the test's single 2048² product (on a GPU a product that size does not fill the chip), so "
            "the measured rate understates what the device can do."
        )
    return grade_prediction(answer, outcome, FLOOR_CHOICES, why)


# ------------------------------------------------------------------ 00.box_margin (build)

MARGINS = (0, 2, 5, 10, 20)  # pixels added on every side of the tight box


def _solve_box_margin(**context):
    def box_with_margin(mask, margin):
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        box = np.array([cols[0] - margin, rows[0] - margin, cols[-1] + margin, rows[-1] + margin], dtype=float)
        height, width = mask.shape
        return np.clip(box, 0, [width - 1, height - 1, width - 1, height - 1])  # stay inside the image

    return box_with_margin


def _dice_of_box(predictor, box, gt) -> float:
    from utils.metrics import dice

    masks, _, _ = predictor.predict(box=np.asarray(box, dtype=float), multimask_output=False)
    return dice(masks[0], gt)


@exercise(
    "00.box_margin",
    "Write `box_with_margin(mask, margin)`: the box prompt [x0, y0, x1, y1] (x = column, y = row, inclusive "
    "pixel indices) of `mask` grown by `margin` pixels on every side and clipped to the image — the box a "
    "person draws a little loosely around a structure. The course then prompts the model with your box at "
    f"margins {MARGINS} px and measures the Dice of each mask, beside the course's own boxes "
    "(utils.prompts.next_box).",
    solver=_solve_box_margin,
    hint="np.flatnonzero(mask.any(axis=1)) gives the rows that hold the mask; then subtract/add the margin and "
    "np.clip to 0..W-1 (x) and 0..H-1 (y)",
    kind="build",
)
def _check_box_margin(answer, predictor, mask, margins=MARGINS):
    from utils.prompts import box_from_mask, check_box, next_box

    if not callable(answer):
        return False, "answer the function itself: answer = box_with_margin"
    mask = np.asarray(mask, dtype=bool)
    height, width = mask.shape
    tight = box_from_mask(mask)
    rows = []
    for margin in margins:
        box = np.asarray(answer(mask.copy(), margin), dtype=float).reshape(-1)
        if box.size != 4:
            return False, f"at margin {margin} your function returned {box.size} numbers, not [x0, y0, x1, y1]"
        if box[0] > box[2] or box[1] > box[3]:
            return False, f"at margin {margin}: x0 > x1 or y0 > y1 — is it [x0, y0, x1, y1] (column first)?"
        if box.min() < 0 or box[2] > width - 1 or box[3] > height - 1:
            shown = box.round(1).tolist()
            return False, f"at margin {margin} the box {shown} leaves the {width}×{height} image: clip it"
        check_box(box, (height, width))
        course = next_box(mask, margin)
        if np.abs(box - course).max() > 1:
            if margin > 0 and np.allclose(box, tight, atol=1):
                return False, f"at margin {margin} your box is still the tight box: grow it by the margin"
            if np.allclose(box, tight[[1, 0, 3, 2]], atol=1):
                return False, "that is (row, col) order: SAM wants x (column) first"
            return False, f"at margin {margin}: {box.round(1).tolist()} differs from {course.tolist()} by > 1 px"
        rows.append((margin, _dice_of_box(predictor, box, mask), _dice_of_box(predictor, course, mask)))
    best = max(rows, key=lambda row: row[1])
    measured = ", ".join(f"{m} px: {yours:.3f}" for m, yours, _ in rows)
    return True, (
        f"your boxes prompted the model; Dice by margin — {measured} (the course's boxes: "
        f"{', '.join(f'{course:.3f}' for *_, course in rows)}). Best here: {best[0]} px. A box prompt is not "
        "all-or-nothing: how tightly it is drawn moves the mask."
    )

"""utils.viz: each function draws what it says (checked on the artists), and bad input raises."""

import matplotlib

matplotlib.use("Agg")  # headless; must come before pyplot is imported

import math  # noqa: E402
import warnings  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from utils import viz  # noqa: E402
from utils.datasets import Case  # noqa: E402
from utils.viz import (  # noqa: E402
    LEGEND_LABELS,
    contour_compare,
    course_palette,
    overlay_grid,
    show_box,
    show_case,
    show_mask,
    show_points,
)

H, W = 32, 40


def make_case(name: str = "phantom-0", modality: str = "ultrasound", offset: int = 0) -> Case:
    image = np.tile(np.linspace(0, 255, W, dtype=np.uint8), (H, 1))  # grayscale -> RGB in Case
    mask = np.zeros((H, W), dtype=bool)
    mask[8 + offset : 20 + offset, 10:25] = True
    return Case(image=image, mask=mask, name=name, modality=modality, spacing=(0.5, 0.25))


@pytest.fixture(autouse=True)
def _close_figures(monkeypatch):
    def _no_show(*args, **kwargs):
        raise AssertionError("utils.viz must not call plt.show()")

    monkeypatch.setattr(plt, "show", _no_show)
    yield
    plt.close("all")


def _axes_with_image(case: Case):
    fig, ax = plt.subplots()
    ax.imshow(case.image)
    return fig, ax


def _rgb(color) -> tuple[float, float, float]:
    return to_rgba(color)[:3]


# ----------------------------------------------------------------------------- palette
def test_palette_is_read_only_and_labelled():
    assert set(LEGEND_LABELS) == set(course_palette)
    assert LEGEND_LABELS["ground_truth"] == "ground truth"
    assert LEGEND_LABELS["positive"] == "positive point"
    with pytest.raises(TypeError):
        course_palette["prediction"] = "black"  # type: ignore[index]
    with pytest.raises(ValueError, match="unknown legend entry"):
        viz.legend_handles(["groundtruth"])


# ----------------------------------------------------------------------------- show_mask
def test_show_mask_fill_is_opaque_exactly_on_the_mask():
    case = make_case()
    _, ax = _axes_with_image(case)
    assert show_mask(ax, case.mask, color="red", alpha=0.45) is ax
    assert len(ax.images) == 2
    rgba = np.asarray(ax.images[-1].get_array())
    assert rgba.shape == (H, W, 4)
    np.testing.assert_array_equal(rgba[..., 3] > 0, case.mask)
    np.testing.assert_allclose(rgba[case.mask][:, 3], 0.45, rtol=1e-6)
    np.testing.assert_allclose(rgba[case.mask][:, :3], np.tile([1.0, 0.0, 0.0], (int(case.mask.sum()), 1)))
    assert len(ax.collections) == 1  # the outline


def test_show_mask_default_colour_and_outline_only():
    case = make_case()
    _, ax = _axes_with_image(case)
    show_mask(ax, case.mask)
    rgba = np.asarray(ax.images[-1].get_array())
    np.testing.assert_allclose(rgba[10, 12, :3], _rgb(course_palette["prediction"]), atol=1e-6)

    _, ax2 = _axes_with_image(case)
    show_mask(ax2, case.mask, color=course_palette["ground_truth"], alpha=0.0)
    assert len(ax2.images) == 1  # no fill image, outline only
    assert len(ax2.collections) == 1


def test_show_mask_empty_mask_draws_no_contour_and_no_warning():
    case = make_case()
    _, ax = _axes_with_image(case)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        show_mask(ax, np.zeros((H, W), dtype=bool))
    assert len(ax.collections) == 0
    assert not (np.asarray(ax.images[-1].get_array())[..., 3] > 0).any()


def test_show_mask_rejects_mismatched_shape_label_maps_and_bad_alpha():
    case = make_case()
    _, ax = _axes_with_image(case)
    with pytest.raises(ValueError, match="must match pixel for pixel"):
        show_mask(ax, np.zeros((H + 1, W), dtype=bool))
    with pytest.raises(ValueError, match="binary mask"):
        show_mask(ax, np.arange(H * W).reshape(H, W) % 3)
    with pytest.raises(ValueError, match="alpha"):
        show_mask(ax, case.mask, alpha=1.5)


# ----------------------------------------------------------------------------- show_points
def test_show_points_two_groups_with_offsets_and_colours():
    _, ax = plt.subplots()
    coords = np.array([[5, 6], [10, 11], [20, 3]], dtype=float)
    assert show_points(ax, coords, [1, 0, 1]) is ax
    assert len(ax.collections) == 2
    positive, negative = ax.collections
    np.testing.assert_allclose(positive.get_offsets(), coords[[0, 2]])
    np.testing.assert_allclose(negative.get_offsets(), coords[[1]])
    np.testing.assert_allclose(positive.get_facecolors()[0][:3], _rgb(course_palette["positive"]))
    np.testing.assert_allclose(negative.get_facecolors()[0][:3], _rgb(course_palette["negative"]))
    np.testing.assert_allclose(positive.get_edgecolors()[0][:3], (1.0, 1.0, 1.0))
    assert positive.get_label() == "positive point" and negative.get_label() == "negative point"


def test_show_points_only_positive_and_single_point():
    _, ax = plt.subplots()
    show_points(ax, [7, 8], [1])
    assert len(ax.collections) == 1
    np.testing.assert_allclose(ax.collections[0].get_offsets(), [[7, 8]])


def test_show_points_rejects_bad_input():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 points but 3 labels"):
        show_points(ax, [[1, 2], [3, 4]], [1, 0, 1])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        show_points(ax, np.zeros((2, 3)), [1, 0])
    with pytest.raises(ValueError, match=r"1 \(positive.*\) or 0 \(negative.*\)"):
        show_points(ax, [[1, 2]], [-1])
    with pytest.raises(ValueError, match="NaN or inf"):
        show_points(ax, [[1, np.nan]], [1])


# ----------------------------------------------------------------------------- show_box
def test_show_box_adds_one_rectangle():
    _, ax = plt.subplots()
    assert show_box(ax, [2, 3, 12, 9]) is ax
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 1
    rect = rects[0]
    assert rect.get_xy() == (2, 3)
    assert rect.get_width() == 10 and rect.get_height() == 6
    assert not rect.get_fill()
    np.testing.assert_allclose(rect.get_edgecolor()[:3], _rgb(course_palette["box"]))
    assert rect.get_label() == "box"

    show_box(ax, np.array([[0, 0, 1, 1]]), color="cyan")  # (1, 4) is fine, custom colour
    np.testing.assert_allclose(ax.patches[-1].get_edgecolor()[:3], _rgb("cyan"))


def test_show_box_rejects_bad_input():
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"shape \(4,\) or \(1, 4\) as \[x0, y0, x1, y1\]; got shape \(3,\)"):
        show_box(ax, [1, 2, 3])
    with pytest.raises(ValueError, match="x0 <= x1"):
        show_box(ax, [10, 2, 3, 8])
    with pytest.raises(ValueError, match="NaN"):
        show_box(ax, [0, 0, np.nan, 4])


# ----------------------------------------------------------------------------- show_case
def test_show_case_draws_everything_and_titles_with_dice():
    case = make_case()
    pred = np.roll(case.mask, 2, axis=1)
    expected = 2 * (case.mask & pred).sum() / (case.mask.sum() + pred.sum())
    ax = show_case(case, pred=pred, box=[9, 7, 25, 20], points=([[17, 14], [2, 2]], [1, 0]))
    title = ax.get_title()
    assert "phantom-0" in title and "ultrasound" in title and f"Dice {expected:.3f}" in title
    assert len(ax.images) == 2  # image + prediction fill
    assert sum(isinstance(p, Rectangle) for p in ax.patches) == 1
    assert len(ax.collections) == 4  # prediction outline, ground-truth outline, 2 point groups
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["ground truth", "prediction", "box", "positive point", "negative point"]
    assert ax.get_xlim() == (-0.5, W - 0.5) and ax.get_ylim() == (H - 0.5, -0.5)


def test_show_case_plain_and_dice_argument():
    case = make_case()
    ax = show_case(case)
    assert ax.get_title() == "phantom-0 · ultrasound"
    assert len(ax.images) == 1 and len(ax.collections) == 1  # image + ground-truth outline
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["ground truth"]

    _, ax2 = plt.subplots()
    assert show_case(case, ax=ax2, pred=case.mask, dice=0.5, title="custom", legend=False) is ax2
    assert ax2.get_title() == "custom · Dice 0.500"
    assert ax2.get_legend() is None


def test_show_case_rejects_mismatched_prediction_and_bad_points():
    case = make_case()
    with pytest.raises(ValueError, match="pred has shape \\(16, 16\\) but the image is \\(32, 40\\)"):
        show_case(case, pred=np.zeros((16, 16), dtype=bool))
    with pytest.raises(ValueError, match="1 points but 2 labels"):
        show_case(case, points=([[1, 2]], [1, 0]))
    with pytest.raises(ValueError, match=r"box must have shape \(4,\)"):
        show_case(case, box=[1, 2])


def test_show_case_saves_a_png(tmp_path):
    case = make_case()
    ax = show_case(case, pred=case.mask, points=([[17, 14]], [1]))
    path = tmp_path / "case.png"
    ax.figure.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


# ----------------------------------------------------------------------------- overlay_grid
@pytest.mark.parametrize("n, ncols", [(5, 4), (4, 4), (3, 2), (2, 4)])
def test_overlay_grid_layout_and_hidden_cells(n, ncols):
    cases = [make_case(name=f"c{i}", offset=i) for i in range(n)]
    fig = overlay_grid(cases, ncols=ncols, size=1.5)
    used = min(ncols, n)  # ncols is capped at the number of cases
    assert len(fig.axes) == math.ceil(n / used) * used
    assert [ax.get_visible() for ax in fig.axes] == [True] * n + [False] * (len(fig.axes) - n)
    assert [ax.get_title() for ax in fig.axes[:n]] == [f"c{i} · ultrasound" for i in range(n)]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ground truth"]


def test_overlay_grid_with_predictions_titles_and_png(tmp_path):
    cases = [make_case(name=f"c{i}") for i in range(3)]
    preds = [cases[0].mask, None, np.zeros((H, W), dtype=bool)]
    fig = overlay_grid(cases, preds=preds, ncols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].get_visible()
    assert fig.axes[0].get_title().endswith("Dice 1.000")
    assert "Dice" not in fig.axes[1].get_title()
    assert fig.axes[2].get_title().endswith("Dice 0.000")
    assert [len(ax.images) for ax in fig.axes[:3]] == [2, 1, 2]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["ground truth", "prediction"]

    fig2 = overlay_grid(cases, titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig2.axes[:3]] == ["a", "b", "c"]

    path = tmp_path / "grid.png"
    fig.savefig(path, dpi=50)
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 1000


def test_overlay_grid_rejects_bad_input():
    cases = [make_case(name=f"c{i}") for i in range(2)]
    with pytest.raises(ValueError, match="preds has 1 entries but there are 2 cases"):
        overlay_grid(cases, preds=[cases[0].mask])
    with pytest.raises(ValueError, match="titles has 3 entries"):
        overlay_grid(cases, titles=["a", "b", "c"])
    with pytest.raises(ValueError, match="at least one case"):
        overlay_grid([])
    with pytest.raises(ValueError, match="must match pixel for pixel"):
        overlay_grid(cases, preds=[np.zeros((4, 4), dtype=bool), None])


# ----------------------------------------------------------------------------- contour_compare
def test_contour_compare_colours_tp_fp_fn_pixels():
    case = make_case()
    gt = np.zeros((H, W), dtype=bool)
    pred = np.zeros((H, W), dtype=bool)
    gt[5:15, 5:15] = True
    pred[10:20, 10:20] = True  # overlap 10:15 x 10:15 (25 px) -> TP 25, FP 75, FN 75
    _, ax = plt.subplots()
    assert contour_compare(ax, case.image, pred, gt) is ax
    overlay = np.asarray(ax.images[-1].get_array())
    expect = {(12, 12): "tp", (18, 18): "fp", (6, 6): "fn"}  # (row, col)
    for (row, col), key in expect.items():
        np.testing.assert_allclose(overlay[row, col, :3], _rgb(course_palette[key]), atol=1e-6)
        assert overlay[row, col, 3] > 0
    assert overlay[0, 0, 3] == 0 and overlay[25, 30, 3] == 0  # true negatives stay clear
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["TP (both): 25 px", "FP (prediction only): 75 px", "FN (ground truth only): 75 px"]
    assert "Dice 0.250" in ax.get_title()


def test_contour_compare_areas_in_mm2_and_bad_input():
    case = make_case()
    _, ax = plt.subplots()
    contour_compare(ax, case.image, case.mask, case.mask, spacing=case.spacing)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == f"TP (both): {case.mask.sum() * 0.5 * 0.25:.1f} mm²"
    assert labels[1].endswith(": 0.0 mm²")
    with pytest.raises(ValueError, match="gt has shape \\(8, 8\\) but the image is \\(32, 40\\)"):
        contour_compare(ax, case.image, case.mask, np.zeros((8, 8), dtype=bool))
    with pytest.raises(ValueError, match="spacing must be two positive"):
        contour_compare(ax, case.image, case.mask, case.mask, spacing=(0.5,))
    with pytest.raises(ValueError, match="float32"):
        contour_compare(ax, case.image.astype(np.float32), case.mask, case.mask)


# ----------------------------------------------------------------------------- zoom_to
def _square_view(region, box, points, margin=0.35, minimum=32):
    """The failure gallery's former private zoom (utils.evaluate), kept here as the reference."""
    rows, cols = np.nonzero(region)
    xs, ys = list(cols), list(rows)
    if box is not None:
        xs += [box[0], box[2]]
        ys += [box[1], box[3]]
    for x, y in points or ():
        xs.append(x)
        ys.append(y)
    height, width = region.shape
    half = max(max(xs) - min(xs), max(ys) - min(ys), minimum) * (0.5 + margin)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return (max(cx - half, -0.5), min(cx + half, width - 0.5)), (min(cy + half, height - 0.5), max(cy - half, -0.5))


def _padded_view(footprint, margin):
    """utils.lessons.volumetric's former private zoom, kept here as the reference."""
    rows = np.flatnonzero(footprint.any(axis=1))
    cols = np.flatnonzero(footprint.any(axis=0))
    height, width = footprint.shape
    return (
        (max(cols[0] - margin, 0) - 0.5, min(cols[-1] + margin, width - 1) + 0.5),
        (min(rows[-1] + margin, height - 1) + 0.5, max(rows[0] - margin, 0) - 0.5),
    )


def _limits(ax):
    return tuple(ax.get_xlim()), tuple(ax.get_ylim())


def test_zoom_to_squares_the_view_around_mask_box_and_points_as_the_failure_gallery_did():
    region = np.zeros((200, 160), bool)
    region[90:96, 40:50] = True
    for box, points, kwargs in (
        (None, None, {}),
        ((30.0, 85.0, 70.0, 110.0), None, {}),
        (None, ((45.0, 92.0), (12.0, 60.0)), {}),
        (None, None, {"margin": 0.6, "minimum": 48}),  # the adaptation gallery's setting
    ):
        _, ax = plt.subplots()
        ax.imshow(np.zeros(region.shape))
        assert viz.zoom_to(ax, region, box, points, **kwargs) is ax
        np.testing.assert_allclose(_limits(ax), _square_view(region, box, points, **kwargs))
    corner = np.zeros((40, 40), bool)
    corner[0:3, 0:3] = True
    _, ax = plt.subplots()
    viz.zoom_to(ax, corner)
    assert ax.get_xlim() == (-0.5, pytest.approx(1 + 32 * 0.85))  # centre 1, half-side 32 x 0.85; stops at the edge
    assert ax.get_ylim()[0] > ax.get_ylim()[1]  # rows grow downwards, as imshow draws them


def test_zoom_to_with_pad_keeps_the_volume_views_margin_and_leaves_empty_views_alone():
    footprint = np.zeros((30, 50), bool)
    footprint[3:12, 20:41] = True
    for pad in (0, 5, 40):
        _, ax = plt.subplots()
        ax.imshow(np.zeros(footprint.shape))
        viz.zoom_to(ax, footprint, pad=pad)
        np.testing.assert_allclose(_limits(ax), _padded_view(footprint, pad))
    _, ax = plt.subplots()
    ax.imshow(np.zeros(footprint.shape))
    before = _limits(ax)
    viz.zoom_to(ax, np.zeros_like(footprint))
    viz.zoom_to(ax, np.zeros_like(footprint), pad=3)
    assert _limits(ax) == before  # nothing to show: the whole image stays in view
    with pytest.raises(ValueError, match="2-D mask"):
        viz.zoom_to(ax, np.zeros((2, 3, 4), bool))
    with pytest.raises(ValueError, match="pad must be"):
        viz.zoom_to(ax, footprint, pad=-1)
    with pytest.raises(ValueError, match="margin and minimum"):
        viz.zoom_to(ax, footprint, margin=-0.1)
    with pytest.raises(ValueError, match="x0 <= x1"):
        viz.zoom_to(ax, footprint, box=[10, 0, 2, 4])


# ----------------------------------------------------------------------------- evaluation figures
def _evaluated(keep_masks: bool = True):
    from utils import evaluate

    from fakes import LookupPredictor, blob_case

    cases = [blob_case("a"), blob_case("b", center=(30, 40), radius=6, modality="mri")]
    df = evaluate.evaluate(LookupPredictor(cases, misrank=True), cases, ["point_center", "box"], keep_masks=keep_masks,
                           progress=False)  # fmt: skip
    return cases, df


def test_evaluation_figures_draw_one_panel_per_model():
    cases, df = _evaluated()
    by_mode = viz.plot_by_mode(df)
    assert [t.get_text() for t in by_mode.axes[0].get_xticklabels()] == ["point_center", "box"]
    assert by_mode.axes[0].get_title() == "lookup"
    two_models = viz.plot_by_mode(pd.concat([df, df.assign(model="other")]), modes=["box"])
    assert len(two_models.axes) == 2 and [t.get_text() for t in two_models.axes[1].get_xticklabels()] == ["box"]
    heatmap = viz.plot_modality_heatmap(df)
    texts = sorted(t.get_text() for t in heatmap.axes[0].texts)
    assert texts == ["0.00", "0.00", "1.00", "1.00"]  # the misranked point picks an empty mask; the box is exact
    gap = viz.plot_oracle_gap(df)
    assert "mean gap 1.000" in gap.axes[0].get_legend().get_texts()[0].get_text()
    failures = viz.plot_failures(df, cases, n=2, mode="point_center")
    assert len(failures.axes) == 2 and failures.axes[0].get_xlim()[1] < 64  # zoomed on the target


def test_evaluation_figures_reject_tables_they_cannot_draw():
    cases, df = _evaluated()
    with pytest.raises(ValueError, match="keep_masks"):
        viz.plot_failures(df.drop(columns="mask"), cases)
    with pytest.raises(ValueError, match="No rows for mode 'points_5'"):
        viz.plot_failures(df, cases, mode="points_5")
    with pytest.raises(ValueError, match="Unknown metric"):
        viz.plot_by_mode(df, metric="accuracy")
    with pytest.raises(ValueError, match="No multimask rows"):
        viz.plot_oracle_gap(df[df["mode"] == "box"])

"""utils.published: the published SAM numbers (with their sources) and this run's table beside them."""

from __future__ import annotations

import pytest

from utils import evaluate
from utils.published import published_comparison, published_results

from fakes import LookupPredictor, blob_case  # a predictor that knows the answer


def test_published_numbers_carry_sources_and_match_the_design():
    table = published_results()
    assert table["source"].ne("").all() and table["citation"].str.len().gt(20).all()
    assert table["value"].between(0, 1).all()
    summary = published_results("summary").set_index(["source", "prompt", "choice"])["value"]
    maz = "Mazurowski et al. 2023"
    assert summary[(maz, "1 point at largest object region", "iou_head")] == pytest.approx(0.461, abs=5e-4)
    assert summary[(maz, "1 box at largest object region", "iou_head")] == pytest.approx(0.589, abs=5e-4)
    assert summary[(maz, "1 box at each object region", "iou_head")] == pytest.approx(0.654, abs=5e-4)
    # the summary rows are the unweighted means of the per-task rows
    tasks = published_results("task")
    assert tasks["dataset"].nunique() == 28
    task_means = tasks.groupby(["prompt", "choice"])["value"].mean()
    for (prompt, choice), value in task_means.items():
        assert summary[(maz, prompt, choice)] == pytest.approx(value, abs=1e-3)
    sam_med2d = table[(table["source"] == "SAM-Med2D README") & (table["model"] == "SAM (1024x1024 input)")]
    assert dict(zip(sam_med2d["prompt"], sam_med2d["value"])) == {
        "Bbox": 0.7449, "1 pt": 0.3688, "3 pts": 0.42, "5 pts": 0.4757
    }  # fmt: skip
    assert set(table["course_mode"]) - {""} <= set(evaluate.MODES)  # every course mode named is one evaluate runs
    with pytest.raises(ValueError, match="level must be"):
        published_results("headline")


def test_published_comparison_puts_this_run_beside_the_papers():
    case = blob_case("a")
    df = evaluate.evaluate(LookupPredictor([case]), [case], ["point_center", "box"], progress=False)
    table = published_comparison(df)
    assert list(table.index) == ["point_center", "points_3", "points_5", "box"]
    assert table.loc["box", "lookup · dice"] == 1.0
    assert table.loc["box", "Mazurowski et al. 2023 · SAM ViT-H · iou"] == pytest.approx(0.589, abs=5e-4)
    chosen = published_comparison(df, modes=["box", "point_center"])  # asked-for modes, in that order
    assert list(chosen.index) == ["box", "point_center"]

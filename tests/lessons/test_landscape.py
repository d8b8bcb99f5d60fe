"""utils.lessons.landscape: the survey's table is complete, its numbers carry sources, and every link it makes works."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from utils.lessons import landscape
from utils.lessons.landscape import FAILURES, METHODS, NOTEBOOKS
from utils.machine import repo_root

FUNCTIONS = sorted({name for m in METHODS for name in m.functions})


def test_course_map_lists_every_notebook_in_order():
    on_disk = sorted(p.stem for p in (repo_root() / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert set(on_disk) <= set(NOTEBOOKS), f"add to landscape.NOTEBOOKS: {sorted(set(on_disk) - set(NOTEBOOKS))}"
    assert list(NOTEBOOKS) == sorted(NOTEBOOKS)
    assert [stem[:2] for stem in NOTEBOOKS] == [f"{i:02d}" for i in range(9)]


def test_every_method_points_at_known_notebooks_and_failures():
    for method in METHODS:
        assert method.notebooks, method.family
        assert set(method.notebooks) <= set(NOTEBOOKS), method.family
        assert set(method.addresses) <= set(FAILURES), method.family
        assert method.functions and all(name.startswith("utils.") for name in method.functions), method.family
    addressed = {key for m in METHODS for key in m.addresses}
    assert addressed == set(FAILURES), f"failures no method addresses: {set(FAILURES) - addressed}"


def test_the_survey_families_are_all_there():
    families = " ".join(m.family.lower() for m in METHODS)
    for family in ("benchmark", "adapters", "lora", "svd", "prompt", "auto-prompting", "3-d", "uncertainty"):
        assert family in families
    for paper in ("SAM 2", "MedSAM2", "MedSAM", "SAMed", "S-SAM", "Medical SAM Adapter", "SAM-Med2D"):
        assert any(paper in m.paper for m in METHODS), paper


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_named_function_resolves(name):
    obj = landscape.resolve(name)
    assert callable(obj)
    assert obj.__module__ == name.rsplit(".", 1)[0]  # defined where the table says, not re-exported


def test_resolve_names_what_is_missing():
    from utils import peft

    assert landscape.resolve("utils.peft.lora") is peft.lora
    with pytest.raises(ValueError, match="'utils.peft' has no attribute 'nope'"):
        landscape.resolve("utils.peft.nope")
    with pytest.raises(ValueError, match="'utils' has no attribute 'nowhere'"):
        landscape.resolve("utils.nowhere.lora")
    with pytest.raises(ValueError, match="dotted name"):
        landscape.resolve("lora")
    with pytest.raises(ValueError, match="no module"):
        landscape.resolve("surely_not_a_module.x")


def test_every_link_works():
    links = landscape.check_links()
    assert set(links["kind"]) == {"notebook", "function", "source file", "url"}
    broken = links[~links["ok"]]
    assert broken.empty, broken.to_string()


def test_check_links_can_fail(tmp_path):
    (tmp_path / "00_setup.ipynb").write_text("{}")
    bad = replace(
        METHODS[0],
        notebooks=("00_setup", "99_missing"),
        functions=("utils.peft.not_there",),
        url="http://arxiv.org/abs/2304.02643",
        sources=(("paper", "https://arxiv.org/pdf/2304.02643"),),
    )
    links = landscape.check_links((bad,), notebooks={"00_setup": ""}, folder=tmp_path).set_index("target")
    assert links.loc["00_setup", "ok"] and not links.loc["99_missing", "ok"]
    assert not links.loc["utils.peft.not_there", "ok"]
    assert links.loc["http://arxiv.org/abs/2304.02643", "problem"] == "not an https address"
    assert "abs/<id>" in links.loc["https://arxiv.org/pdf/2304.02643", "problem"]


def test_every_family_says_whether_it_is_the_surveys_or_the_courses():
    """The survey was last revised in 2023: a family it has names its section; later work is marked as added."""
    for method in METHODS:
        assert method.survey in (*landscape.SURVEY_SECTIONS, landscape.ADDED), method.family
        year = int(re.search(r"\b(20\d\d)\b", method.paper).group(1))
        if method.survey == landscape.ADDED:
            assert year >= 2024, f"{method.family}: a {year} paper could be in the survey"
    added = {m.family for m in METHODS if m.survey == landscape.ADDED}
    assert added == {"Fine-tuning: SVD", "Memory across frames: SAM 2", "Memory across slices: MedSAM2"}
    assert landscape.SURVEY_PAPER_LIST == "https://github.com/YichiZhang98/SAM4MIS"
    table = landscape.markdown_table()
    assert "| survey section |" in table.splitlines()[0] and f"*{landscape.ADDED}*" in table


def test_every_reported_number_has_a_source():
    for method in METHODS:
        assert method.sources, method.family
        for label, url in method.sources:
            assert label and url.startswith("https://")
        if re.search(r"\d", method.result.split("(")[0]) is None:
            assert method.result.startswith("—"), f"{method.family}: no number, so say '—' and what it reports"


def test_published_numbers_match_the_design_notes_and_the_course_data():
    text = " | ".join(m.result for m in METHODS)
    numbers = ("0.461", "0.589", "74.49", "36.88", "79.30", "70.01", "81.88", "20.64", "0.9225", "0.9330", "0.9107")
    for number in (*numbers, "0.4 %"):
        assert number in text, number
    from utils.published import published_results

    summary = published_results("summary")
    means = summary[(summary["source"] == "Mazurowski et al. 2023") & (summary["choice"] == "iou_head")]
    by_prompt = dict(zip(means["prompt"], means["value"].round(3)))
    assert by_prompt["1 point at largest object region"] == 0.461
    assert by_prompt["1 box at largest object region"] == 0.589


def test_notebooks_for():
    assert landscape.notebooks_for("no_3d_context") == ["07_volumetric"]
    assert "05_adapting_sam" in landscape.notebooks_for("domain_gap")
    only = (replace(METHODS[0], addresses=("silent_errors",), notebooks=("03_zero_shot_medical", "02_prompting_sam")),)
    assert landscape.notebooks_for("silent_errors", only) == ["02_prompting_sam", "03_zero_shot_medical"]
    with pytest.raises(ValueError, match="Unknown failure"):
        landscape.notebooks_for("slow")


def test_markdown_tables_link_everything():
    table = landscape.markdown_table()
    lines = table.splitlines()
    assert len(lines) == 2 + len(METHODS)
    for line in lines[2:]:
        assert len(re.findall(r"(?<!\\)\|", line)) == 7, line  # six columns: no stray pipe
    for stem in {s for m in METHODS for s in m.notebooks}:
        assert f"]({stem}.ipynb)" in table
    for name in FUNCTIONS:
        module = name.rsplit(".", 1)[0].replace(".", "/")
        assert f"[`{name}`](../{module}.py)" in table or f"[`{name}`](../{module}/__init__.py)" in table
    course_map = landscape.course_map_markdown()
    assert all(f"[{stem}]({stem}.ipynb)" in course_map for stem in NOTEBOOKS)


def test_methods_table_has_a_status_per_row():
    table = landscape.methods_table()
    assert len(table) == len(METHODS)
    assert set(table["status"]) <= {"implemented", "implemented differently", "partly", "used", "not implemented"}
    assert (table["status"] == "not implemented").sum() == 2  # SAM 2 and MedSAM2


def test_share_table_counts_on_the_meta_device():
    shares = landscape.share_table("sam_vit_b")
    assert list(shares.index) == ["decoder_only", "adapter", "lora", "svd", "full"]
    assert shares.loc["lora", "trainable"] == 12 * 4 * (768 + 2304)
    assert shares.loc["decoder_only", "trainable"] == 4_058_340  # SAM's mask decoder
    assert shares.loc["full", "share_%"] == pytest.approx(100.0)
    assert shares.loc["svd", "published_%"] == 0.4 and shares.loc["adapter", "published_%"] == 2.0
    assert shares["published_%"].isna().sum() == 3


def test_plot_shares_draws_bars_and_published_marks():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = landscape.plot_shares(landscape.share_table("sam_vit_b"))
    assert len(ax.patches) == 5 and len(ax.collections) == 1
    plt.close("all")

"""utils.cases: which cases a lesson runs on; the mode picks the data, the arguments pick every size."""

from __future__ import annotations

import pytest

from utils import cases as case_sets
from utils import datasets, phantoms

from fakes import blob_case


def _fake_medsegbench(failing: str = ""):
    def load(flag, split="test", n=None, seed=0):
        if flag == failing:
            raise OSError("no network")
        return [phantoms.make_phantom("xray", seed=seed + i, size=64) for i in range(n)]

    return load


def test_case_helpers():
    cases = [phantoms.make_phantom(s, seed=i, size=64) for s in ("ct", "mri") for i in range(3)]
    assert case_sets.case_dataset(cases[0]) == "phantom"
    assert case_sets.case_dataset(blob_case("colin27_thalamus-left_axial-080")) == "colin27"
    picked = case_sets.spread_cases(cases, 3)
    assert [c.name for c in picked] == ["phantom_ct_0", "phantom_mri_0", "phantom_ct_1"]
    assert len(case_sets.spread_cases(cases, 99)) == 6 and case_sets.spread_cases(cases, 0) == []
    table = case_sets.describe_cases(cases)
    assert table.loc["phantom", "n_cases"] == 6 and table.loc["phantom", "modality"] == "ct, mri"
    with pytest.raises(ValueError, match="k must be"):
        case_sets.spread_cases(cases, -1)


def test_zero_shot_cases_full_mode_skips_a_set_that_fails(monkeypatch):
    monkeypatch.setattr(datasets, "medsegbench", _fake_medsegbench(failing="busi"))
    with pytest.warns(UserWarning, match="busi skipped"):
        cases = case_sets.zero_shot_cases("full", n_per_source=2, n_phantoms=0, sets=("busi", "pandental"))
    assert len(cases) == 2
    monkeypatch.setattr(datasets, "medsegbench", _fake_medsegbench(failing="busi"))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="offline mode"):
        case_sets.zero_shot_cases("full", 2, 0, sets=("busi",))
    with pytest.raises(ValueError, match="mode must be"):
        case_sets.zero_shot_cases("auto", 1, 1)


def test_zero_shot_cases_sizes_are_the_callers():
    """No size depends on the mode: a smoke run at other sizes gets exactly those (make rehearse relies on it)."""
    with pytest.raises(TypeError):
        case_sets.zero_shot_cases("smoke")  # sizes have no default
    for bad in ({"n_per_source": 0, "n_phantoms": 1}, {"n_per_source": 1, "n_phantoms": -1}):
        with pytest.raises(ValueError, match="run.budget"):
            case_sets.zero_shot_cases("smoke", **bad)
    one = case_sets.zero_shot_cases("smoke", n_per_source=1, n_phantoms=1)
    more = case_sets.zero_shot_cases("smoke", n_per_source=2, n_phantoms=3)
    assert [c.modality for c in one].count("ultrasound") == 1 and [c.modality for c in more].count("ultrasound") == 3
    assert len(more) - 3 == 2 * (len(one) - 1)  # twice the real slices of each structure
    assert all(case_sets.case_dataset(c) != "phantom" for c in one[:-1])


def test_autoprompt_cases_smoke_and_bad_input():
    cases, polarities = case_sets.autoprompt_cases("smoke", 1)
    assert len(cases) == len(polarities) == 4
    assert [c.modality for c in cases[1:]] == ["dermoscopy", "ultrasound", "ct"]
    assert polarities == ["bright", "dark", "dark", "dark"]
    with pytest.raises(ValueError, match="mode must be"):
        case_sets.autoprompt_cases("fast", 1)
    with pytest.raises(ValueError, match="n_per_source"):
        case_sets.autoprompt_cases("offline", n_per_source=0)


def test_autoprompt_cases_full_mode_adds_medsegbench_and_takes_every_size_from_the_caller(monkeypatch):
    monkeypatch.setattr(datasets, "medsegbench", _fake_medsegbench(failing="busi"))
    for scan in ("colin27", "mni152"):
        slices = lambda structures, n_slices, scan=scan: [blob_case(f"{scan}_{i}") for i in range(n_slices)]  # noqa: E731
        monkeypatch.setattr(datasets, f"{scan}_cases", slices)
    with pytest.warns(UserWarning, match="busi skipped"):
        cases, polarities = case_sets.autoprompt_cases("full", 3)
    sources = [case_sets.case_dataset(c) if c.modality != "xray" else "isic2016" for c in cases]
    counts = {s: sources.count(s) for s in dict.fromkeys(sources)}
    assert counts == {"isic2016": 3, "colin27": 3, "mni152": 3, "phantom": 9}  # 3 of each source, busi skipped
    assert polarities == ["dark"] * 3 + ["bright"] * 6 + ["dark"] * 9

"""utils.exercises: checks give feedback, solutions pass their own checks, notebooks embed them."""

import re

import nbformat
import pytest

from utils import exercises
from utils.tools import harness


@pytest.fixture
def toy():
    def solve(numbers):
        return sum(numbers)

    @exercises.exercise("99.toy_sum", "Add the numbers.", solver=solve, hint="use sum()", kind="check")
    def check_toy(answer, numbers):
        return answer == sum(numbers), f"expected the sum of {len(numbers)} numbers"

    yield "99.toy_sum"
    exercises.REGISTRY.pop("99.toy_sum")
    exercises._RESULTS.pop("99.toy_sum", None)


def test_check_reports_passed_failed_and_unanswered(toy, capsys):
    assert exercises.check(toy, None, numbers=[1, 2]) is False
    assert "not answered" in capsys.readouterr().out
    assert exercises.check(toy, 4, numbers=[1, 2]) is False
    out = capsys.readouterr().out
    assert "❌" in out and "hint: use sum()" in out
    assert exercises.check(toy, "x" * 3, numbers=[1, 2]) is False  # wrong type: feedback, no crash
    assert exercises.check(toy, 3, numbers=[1, 2]) is True
    assert "✅" in capsys.readouterr().out
    assert exercises.results()[toy] == "passed"
    summary = exercises.summary("99.")
    assert summary["total"] == 1 and summary["passed"] == 1


def test_use_solution_plugs_in_the_reference(toy):
    assert exercises.check(toy, None, use_solution=True, numbers=[2, 5]) is True
    assert exercises.solution(toy, numbers=[2, 5]) == 7


def test_solution_markdown_is_collapsed_and_shows_the_code(toy):
    text = exercises.solution_markdown(toy)
    assert text.startswith("<details>") and text.rstrip().endswith("</details>")
    assert "return sum(numbers)" in text


def test_unknown_and_duplicate_exercises_raise(toy):
    with pytest.raises(ValueError, match="Unknown exercise 'nope'"):
        exercises.check("nope", 1)
    with pytest.raises(ValueError, match="registered twice"):
        exercises.exercise(toy, "again", solver=lambda: 0, kind="check")(lambda answer: (True, ""))
    with pytest.raises(ValueError, match="kind 'quiz'"):
        exercises.exercise("99.quiz", "?", solver=lambda: 0, kind="quiz")
    with pytest.raises(ValueError, match="lists its choices"):
        exercises.exercise("99.guess", "?", solver=lambda: 0, kind="predict")


def test_a_prediction_is_answered_either_way_and_explained():
    choices = ("box", "point")
    assert exercises.grade_prediction("box", "box", choices, "boxes won by 0.3 Dice") == (
        True, "your prediction held. boxes won by 0.3 Dice")  # fmt: skip
    passed, feedback = exercises.grade_prediction("point", "box", choices, "boxes won by 0.3 Dice")
    assert passed and feedback.startswith("this run says 'box', not 'point'") and "0.3 Dice" in feedback
    passed, feedback = exercises.grade_prediction("boxes", "box", choices, "")
    assert not passed and "'box', 'point'" in feedback


def test_summary_counts_kinds(toy):
    exercises.check(toy, 3, numbers=[1, 2])
    assert exercises.summary("99.")["kinds"] == {"check": 1, "predict": 0, "build": 0}


def _notebook_keys(path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return re.findall(r'exercises\.check\(\s*"([^"]+)"', code)


@pytest.mark.parametrize("path", harness.find_notebooks(), ids=lambda p: p.stem)
def test_every_notebook_asks_for_a_prediction_and_a_build(path):
    exercises._load_all()
    kinds = {exercises.REGISTRY[key].kind for key in _notebook_keys(path)}
    assert {"predict", "build"} <= kinds, f"{path.name}: exercises of kinds {sorted(kinds)} only"


def test_few_warmups_course_wide():
    asked = {key for path in harness.find_notebooks() for key in _notebook_keys(path)}
    exercises._load_all()
    warmups = sorted(key for key in asked if exercises.REGISTRY[key].warmup)
    assert len(warmups) <= exercises.MAX_WARMUPS, f"{len(warmups)} warm-up exercises: {warmups}"
    unasked = sorted(set(exercises.REGISTRY) - asked - {k for k in exercises.REGISTRY if k.startswith(("9", "T."))})
    assert not unasked, f"registered but asked in no notebook: {unasked}"


@pytest.mark.parametrize("path", harness.find_notebooks(), ids=lambda p: p.stem)
def test_notebook_exercises_have_checks_and_current_hidden_solutions(path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    keys = re.findall(r'exercises\.check\(\s*"([^"]+)"', code)
    for key in keys:
        assert exercises.solution_markdown(key) in markdown, f"{path.name}: hidden solution for {key} is stale"
    stem_number = path.stem[:2]
    if stem_number not in ("00", "08"):
        assert len(set(keys)) >= 3, f"{path.name} needs at least 3 auto-checked exercises"

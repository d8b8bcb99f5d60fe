"""utils.harness: papermill runs a notebook with MODE injected; the summary reads its results.json."""

import json

import nbformat
import pytest

from utils import harness


def _notebook(path, body: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('MODE = "auto"\nDEVICE = "auto"\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


GOOD = """
from utils.env import start_run
run = start_run("01_demo", mode=MODE, device=DEVICE, seed=SEED)
run.banner(models=["none"], data=["none"])
run.save_results(headline={"answer": 42, "mode_was": run.mode}, detail=[1, 2])
"""


@pytest.mark.slow
def test_run_notebook_injects_mode_and_reads_headline(tmp_path):
    nb = _notebook(tmp_path / "01_demo.ipynb", GOOD)
    out = tmp_path / "out"
    (out / "01_demo").mkdir(parents=True)
    (out / "01_demo" / "results.json").write_text('{"stale": true}')
    run = harness.run_notebook(nb, mode="smoke", out_root=out)
    assert run.status == "ok", run.error
    assert run.mode == "smoke" and run.headline == {"answer": 42, "mode_was": "smoke"}
    saved = json.loads((out / "01_demo" / "results.json").read_text())
    assert saved["results"]["detail"] == [1, 2] and "stale" not in saved
    executed = nbformat.read(out / "01_demo.ipynb", as_version=4)
    assert any('MODE = "smoke"' in cell.source for cell in executed.cells)  # papermill's injected cell
    table = harness.format_summary([run])
    assert "01_demo" in table and "answer=42" in table and "smoke" in table and "ok" in table


@pytest.mark.slow
def test_failures_are_reported_not_hidden(tmp_path):
    broken = _notebook(tmp_path / "02_broken.ipynb", "raise RuntimeError('boom')")
    silent = _notebook(tmp_path / "03_silent.ipynb", "x = 1")
    runs = harness.run_course("smoke", notebooks=[broken, silent], out_root=tmp_path / "out")
    assert [r.status for r in runs] == ["failed", "failed"]
    assert "boom" in runs[0].error
    assert "no results.json" in runs[1].error


def test_find_notebooks_is_ordered_and_summary_formats(tmp_path):
    for name in ("02_b.ipynb", "00_a.ipynb", "notes.ipynb", "10_c.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in harness.find_notebooks(tmp_path)] == ["00_a.ipynb", "02_b.ipynb", "10_c.ipynb"]
    runs = [harness.NotebookRun("00_a", "ok", 1.234, "offline", {"dice": 0.81234})]
    lines = harness.format_summary(runs).splitlines()
    assert lines[0].split() == ["notebook", "mode", "status", "wall", "headline"]
    assert "dice=0.812" in lines[2] and "1.2 s" in lines[2]
    with pytest.raises(ValueError, match="Unknown mode"):
        harness.run_notebook(tmp_path / "00_a.ipynb", mode="quick")


STUDENT = """
from utils import exercises
from utils.env import start_run
run = start_run("04_student", mode=MODE, device=DEVICE, seed=SEED)
exercises.exercise("T.sum", "add", solver=lambda: 3)(lambda answer: (answer == 3, ""))
exercises.exercise("T.product", "multiply", solver=lambda: 2)(lambda answer: (answer == 2, ""))
exercises.exercise("T.left", "skip me", solver=lambda: 1)(lambda answer: (answer == 1, ""))
exercises.check("T.sum", 3)
exercises.check("T.product", 5)
exercises.check("T.left", None)
"""


@pytest.mark.slow
def test_check_student_notebook_grades_each_exercise(tmp_path, capsys):
    nb = _notebook(tmp_path / "04_student.ipynb", STUDENT)
    statuses = harness.check_student_notebook(nb, out_root=tmp_path / "out")
    assert statuses == {"T.sum": "passed", "T.product": "failed", "T.left": "unanswered"}
    assert "1 of 3 exercises passed." in capsys.readouterr().out

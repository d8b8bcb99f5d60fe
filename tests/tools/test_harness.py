"""utils.tools.harness: papermill runs a notebook with MODE injected; the summary reads its results.json."""

import io
import json

import nbformat
import pytest

from utils.tools import harness


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
def test_run_notebook_injects_mode_and_reads_headline(tmp_path, capfd):
    nb = _notebook(tmp_path / "01_demo.ipynb", GOOD)
    out = tmp_path / "out"
    (out / "01_demo").mkdir(parents=True)
    (out / "01_demo" / "results.json").write_text('{"stale": true}')
    run = harness.run_notebook(nb, mode="smoke", out_root=out)
    assert run.status == "ok", run.error
    # the kernel (a subprocess writing to this process's stderr) no longer warns about plain TCP
    assert "without encryption" not in capfd.readouterr().err
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
exercises.exercise("T.sum", "add", solver=lambda: 3, kind="check")(lambda answer: (answer == 3, ""))
exercises.exercise("T.product", "multiply", solver=lambda: 2, kind="check")(lambda answer: (answer == 2, ""))
exercises.exercise("T.left", "skip me", solver=lambda: 1, kind="check")(lambda answer: (answer == 1, ""))
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


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def papermill_calls(monkeypatch):
    """Record papermill's arguments instead of starting a kernel."""
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda input_path, output_path, **kwargs: calls.append(kwargs))
    return calls


def test_course_kernel_is_used_when_registered(monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    monkeypatch.setattr(
        KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/k/python3", "sam-course": "/k/s"}
    )
    assert harness.course_kernel() == "sam-course" == harness.COURSE_KERNEL
    monkeypatch.setattr(KernelSpecManager, "find_kernel_specs", lambda self: {"python3": "/k/python3"})
    assert harness.course_kernel() == "python3"


def test_run_notebook_uses_the_course_kernel_and_an_encrypted_connection(tmp_path, monkeypatch, papermill_calls):
    import zmq

    monkeypatch.setattr(harness, "course_kernel", lambda: "sam-course")
    monkeypatch.setattr(harness.sys, "stderr", io.StringIO())  # not a terminal: no progress bar
    nb = _notebook(tmp_path / "01_demo.ipynb", GOOD)
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out")
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out", kernel_name="python3")
    monkeypatch.setattr(zmq, "has", lambda capability: False)  # a zmq without CurveZMQ: leave the default
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out")
    first, second, third = papermill_calls
    assert (first["kernel_name"], second["kernel_name"]) == ("sam-course", "python3")
    assert first["progress_bar"] is False
    assert first["config"].KernelManager.transport_encryption == "auto"
    assert "config" not in third


def test_progress_bar_follows_the_terminal_or_the_flag(tmp_path, monkeypatch, papermill_calls):
    nb = _notebook(tmp_path / "01_demo.ipynb", GOOD)
    monkeypatch.setattr(harness.sys, "stderr", _Terminal())
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out")
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out", progress=False)
    monkeypatch.setattr(harness.sys, "stderr", io.StringIO())
    harness.run_notebook(nb, mode="smoke", out_root=tmp_path / "out", progress=True)
    assert [call["progress_bar"] for call in papermill_calls] == [True, False, True]


def test_cli_passes_kernel_and_progress_through(tmp_path, monkeypatch, papermill_calls, capsys):
    nb = _notebook(tmp_path / "01_demo.ipynb", GOOD)
    out = str(tmp_path / "out")
    assert harness.main(["--mode", "smoke", "--out", out, "--kernel", "python3", "--progress", str(nb)]) == 1
    assert harness.main(["--mode", "smoke", "--out", out, "--no-progress", str(nb)]) == 1  # (no results.json)
    assert [(c["kernel_name"], c["progress_bar"]) for c in papermill_calls] == [
        ("python3", True),
        (harness.course_kernel(), False),
    ]
    assert "kernel python3" in capsys.readouterr().out

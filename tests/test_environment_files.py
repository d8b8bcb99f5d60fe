"""The setup files agree: environment.yml mirrors requirements.txt; CI and the README call the same commands."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def test_environment_yml_mirrors_requirements_txt():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict) and "pip" in item)
    assert pip_section == _requirements()
    assert "python=3.11" in env["dependencies"]


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
    for target in ("course:", "test:", "lab:"):
        assert f"\n{target}" in makefile
    assert "python3 -m venv" in makefile.replace("$(PYTHON)", "python3")

"""utils.colab: every badge and clone command points at the configured repository; make colab rewrites them."""

import shutil

import pytest

from utils import colab, harness
from utils.env import repo_root

NOTEBOOKS = harness.find_notebooks()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_badge_and_install_cell_match_the_configured_repo(path):
    repo, branch = colab.configured_repo()
    links = colab.find_links(path.read_text())
    assert links["colab"], f"{path.name} has no Open-in-Colab badge"
    for link in links["colab"]:
        assert (link["repo"], link["branch"]) == (repo, branch)
        assert link["path"] == f"notebooks/{path.name}"  # the badge opens this very notebook
    assert len(links["clone"]) == 1, f"{path.name} needs exactly one Colab install cell"
    assert (links["clone"][0]["repo"], links["clone"][0]["branch"]) == (repo, branch)


def test_readme_badges_point_at_existing_notebooks():
    repo, branch = colab.configured_repo()
    for link in colab.find_links((repo_root() / "README.md").read_text())["colab"]:
        assert (link["repo"], link["branch"]) == (repo, branch)
        assert (repo_root() / link["path"]).is_file(), link["path"]


def test_set_repo_rewrites_a_copy_of_the_course(tmp_path):
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo_root() / name, root / name)
    for path in NOTEBOOKS:
        shutil.copy(path, root / "notebooks" / path.name)
    changed = colab.set_repo("someone/fork", "dev", root=root)
    assert root / "pyproject.toml" in changed and len(changed) >= 1 + len(NOTEBOOKS)
    assert colab.configured_repo(root) == ("someone/fork", "dev")
    for path in (root / "notebooks").glob("*.ipynb"):
        links = colab.find_links(path.read_text())
        assert {(x["repo"], x["branch"]) for x in links["colab"] + links["clone"]} == {("someone/fork", "dev")}
    assert colab.set_repo("someone/fork", "dev", root=root) == []  # idempotent


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

"""Colab links: one configured GitHub repository, and the badges and install cells that point at it.

The repository and branch live in ``pyproject.toml`` under ``[tool.sam-course]``. Every notebook's
title cell carries an "Open in Colab" badge for its own path, and its first code cell clones that
repository when it runs in Colab. ``make colab REPO=owner/name [BRANCH=main]`` (this module's CLI)
rewrites all of them, and the README's course map, so a fork's links point at the fork.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

from .env import repo_root

__all__ = ["badge_markdown", "badge_url", "configured_repo", "find_links", "set_repo"]

_REPO_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_BRANCH_PATTERN = re.compile(r"^[A-Za-z0-9_./-]+$")
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# github.com/<owner>/<name>/blob/<branch>/notebooks/<file>.ipynb inside a Colab URL
_COLAB_LINK = re.compile(
    r"https://colab\.research\.google\.com/github/(?P<repo>[^/\s)]+/[^/\s)]+)/blob/(?P<branch>[^\s)]+?)/(?P<path>notebooks/[^\s)]+\.ipynb)"
)
_CLONE = re.compile(
    r"git clone (?P<opts>[^\n]*?)-b (?P<branch>\S+) https://github\.com/(?P<repo>[^/\s]+/[^/\s]+?)\.git"
)


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
    """Colab badge links and ``git clone`` commands found in ``text`` (a notebook's JSON or the README)."""
    return {
        "colab": [m.groupdict() for m in _COLAB_LINK.finditer(text)],
        "clone": [m.groupdict() for m in _CLONE.finditer(text)],
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
    return _CLONE.sub(lambda m: f"git clone {m.group('opts')}-b {branch} https://github.com/{repo}.git", text)


def set_repo(repo: str, branch: str = "main", root: Path | None = None) -> list[Path]:
    """Point every badge, clone command and the configuration at ``repo``/``branch``; return changed files."""
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Point Colab badges and install cells at a GitHub repository.")
    parser.add_argument("--repo", required=True, help="owner/name on GitHub")
    parser.add_argument("--branch", default="main")
    args = parser.parse_args(argv)
    changed = set_repo(args.repo, args.branch)
    print(f"Colab links now point at {args.repo}@{args.branch}; {len(changed)} file(s) changed.")
    for path in changed:
        print(f"  {path.relative_to(repo_root())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The repository URL, from one place: ``[project.urls] Repository`` in pyproject.toml.

  python docs/scripts/repo_url.py          # rewrite the notebooks' badge and install cell

Each notebook in ``colab/`` opens with a Markdown cell and an install cell. With a GitHub
URL the Markdown cell starts with an "Open in Colab" badge for that repository and the
install cell's ``REPO_URL`` is the URL; without one (none is published yet) there is no
badge and ``REPO_URL = None``, never a placeholder. ``tests/test_docs.py`` checks that the
notebooks, the README and the site agree with pyproject.toml.
"""

from __future__ import annotations

import glob
import os
import re
import tomllib

import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
GITHUB = re.compile(r"^https://github\.com/([^/]+)/([^/.]+?)(?:\.git)?/?$")
REPO_URL_LINE = re.compile(r"^REPO_URL = .*$", re.M)


def repository_url() -> str | None:
    """``[project.urls] Repository`` of pyproject.toml, or None when it is not set."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    return project.get("urls", {}).get("Repository")


def badge(url: str | None, notebook: str) -> str | None:
    """The Markdown of the notebook's Colab badge for ``url``; None without a GitHub URL."""
    match = GITHUB.match(url or "")
    if not match:
        return None
    owner, repo = match.groups()
    target = f"https://colab.research.google.com/github/{owner}/{repo}/blob/main/colab/{notebook}"
    return f"[![Open In Colab]({BADGE_IMAGE})]({target})"


def synced(nb, name: str, url: str | None):
    """The notebook with its first cell's badge and its install cell's REPO_URL set."""
    lines = [ln for ln in nb.cells[0].source.split("\n") if BADGE_IMAGE not in ln]
    while lines and not lines[0].strip():
        lines.pop(0)
    wanted = badge(url, name)
    nb.cells[0].source = "\n".join(([wanted, ""] if wanted else []) + lines)
    nb.cells[1].source = REPO_URL_LINE.sub(f"REPO_URL = {url!r}", nb.cells[1].source, count=1)
    return nb


def main() -> None:
    url = repository_url()
    for path in sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb"))):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        after = nbformat.writes(synced(nb, os.path.basename(path), url))
        if after != before:
            with open(path, "w", encoding="utf-8") as f:
                f.write(after + "\n")
            print("updated", os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()

"""MkDocs hook: links from the pages to repository files outside docs/ become site files.

A page links to a test, a config or a result file with a path relative to itself, as in
the repository (``[tests/test_reliability.py](../tests/test_reliability.py)``), so the
link works when the Markdown is read on a code host and checks as a path in a clone. This
hook copies each such file into the site under ``src/`` and rewrites the link to point
there, so MkDocs' own validation checks it: a path to a missing file is left alone and
fails ``mkdocs build --strict`` as a broken link.
"""

from __future__ import annotations

import os
import posixpath
import re

from mkdocs.structure.files import File

# Inline links and images: ](target) or ](target#anchor); no spaces in targets here.
LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")
# page src_uri -> {link target as written: site path under src/}
_REWRITES: dict[str, dict[str, str]] = {}


def _repo_target(page_path: str, target: str, docs_dir: str, root: str) -> str | None:
    """The repository-relative path ``target`` names, if it is a file outside docs/."""
    if "://" in target or target.startswith(("mailto:", "/")):
        return None
    path = os.path.normpath(os.path.join(os.path.dirname(page_path), target))
    inside_docs = os.path.commonpath([path, docs_dir]) == docs_dir
    inside_root = os.path.commonpath([path, root]) == root
    if inside_docs or not inside_root or not os.path.isfile(path):
        return None
    return os.path.relpath(path, root).replace(os.sep, "/")


def on_files(files, config):
    docs_dir = os.path.abspath(config["docs_dir"])
    root = os.path.dirname(os.path.abspath(config["config_file_path"]))
    added = set()
    _REWRITES.clear()
    for page in list(files.documentation_pages()):
        with open(page.abs_src_path, encoding="utf-8") as f:
            text = f.read()
        for match in LINK.finditer(text):
            rel = _repo_target(page.abs_src_path, match.group(2), docs_dir, root)
            if rel is None:
                continue
            _REWRITES.setdefault(page.src_uri, {})[match.group(2)] = f"src/{rel}"
            if rel not in added:
                added.add(rel)
                files.append(File.generated(config, f"src/{rel}", abs_src_path=f"{root}/{rel}"))
    return files


def on_page_markdown(markdown, page, config, files):
    rewrites = _REWRITES.get(page.file.src_uri)
    if not rewrites:
        return markdown
    here = posixpath.dirname(page.file.src_uri)

    def rewrite(match):
        site_path = rewrites.get(match.group(2))
        if site_path is None:
            return match.group(0)
        new = posixpath.relpath(site_path, here or ".")
        return f"{match.group(1)}{new}{match.group(3) or ''}{match.group(4)}"

    return LINK.sub(rewrite, markdown)

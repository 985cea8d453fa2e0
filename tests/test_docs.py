"""The documentation: the site in docs/ builds with `mkdocs build --strict` (no broken link or
anchor, no page left out of the nav), the nav names pages that exist, and the README stays
short, links only to files and headings that exist, and shows the test command CI runs."""

import importlib.util
import os
import re
import subprocess
import sys
import unicodedata

import pytest
import yaml

from tests import REPO_ROOT

README = REPO_ROOT / "README.md"
DOCS = REPO_ROOT / "docs"
MKDOCS_YML = REPO_ROOT / "mkdocs.yml"
README_MAX_LINES = 250  # the README is the front page; the manual is the site

LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target), target without spaces


def _nav_pages(nav):
    """Every page path in mkdocs.yml's nav (entries are 'page.md' or {title: page | [...]})."""
    for entry in nav:
        if isinstance(entry, str):
            yield entry
        elif isinstance(entry, dict):
            for value in entry.values():
                yield from _nav_pages([value] if isinstance(value, str) else value)


def _slugify(text):
    """A heading's anchor as MkDocs writes it (Python-Markdown's toc slugify), which is also
    GitHub's for the plain headings used here."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = text.replace("`", "").replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(markdown_text):
    """Anchors of the headings of a markdown file, outside fenced code blocks."""
    anchors, fenced = set(), False
    for line in markdown_text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)):
            anchors.add(_slugify(m.group(1)))
    return anchors


def test_nav_pages_exist_and_every_page_is_in_the_nav():
    config = yaml.safe_load(MKDOCS_YML.read_text())
    assert config["theme"]["name"] == "material"
    assert config.get("docs_dir", "docs") == "docs"
    nav = list(_nav_pages(config["nav"]))
    assert len(nav) == len(set(nav)), "a page is twice in the nav"
    missing = [page for page in nav if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages that are not in docs/: {missing}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert not pages - set(nav), f"pages in docs/ that the nav leaves out: {pages - set(nav)}"


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines (at most {README_MAX_LINES}): move the detail to a "
        f"page in docs/ and link to it"
    )


def test_readme_links_resolve():
    text = README.read_text()
    bad = []
    for target in LINK_RE.findall(text):
        if re.match(r"[a-z]+:", target):  # https:, mailto: (not checked offline)
            continue
        path, _, anchor = target.partition("#")
        file = REPO_ROOT / path if path else README
        if not file.exists():
            bad.append(f"{target}: no file {path}")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text()):
            bad.append(f"{target}: {path or 'README.md'} has no heading with anchor #{anchor}")
    assert not bad, "README.md links that do not resolve:\n" + "\n".join(bad)
    # The README points into the site, not around it.
    assert any(t.startswith("docs/") for t in LINK_RE.findall(text))


def test_readme_shows_the_test_command_ci_runs():
    assert "./run.sh test" in (REPO_ROOT / ".ci" / "run").read_text()
    setup = README.read_text().split("## Set-up", 1)[1]
    assert re.search(r"^\./run\.sh test\b", setup, re.M), "the README's set-up lost ./run.sh test"


def test_site_builds_strictly(tmp_path):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(
                f"{module} is not installed: the docs extra (pip install -e '.[docs]', part of "
                f"the test extra that ./run.sh installs) builds the site"
            )
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner, not a build warning
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(MKDOCS_YML), "--site-dir", str(site)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}{result.stderr}"
    for page in _nav_pages(yaml.safe_load(MKDOCS_YML.read_text())["nav"]):
        stem = page.removesuffix(".md")  # 'data' -> data/index.html, 'results/index' -> results/
        folder = stem.removesuffix("index") if stem.split("/")[-1] == "index" else stem
        assert (site / folder / "index.html").is_file(), f"{page} was not built"

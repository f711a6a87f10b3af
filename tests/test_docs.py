"""The documentation site: every python block of its pages runs, and the site builds with no
warnings and no broken internal link or anchor.

Each page's blocks run in order in one namespace, in a fresh python process (pages register
event classes under names of their own, which must not meet the test-suite's) whose working
directory is a temporary folder. A block is left out only when the line before it says why:
``<!-- docs-test: skip (the reason) -->``. A page that opens a PostgreSQL store names the
server as ``postgresql://postgres@127.0.0.1:5432/test?schema=NAME``; here it gets the
test-suite's server and a private schema instead, dropped afterwards.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Reference pages written before the site, whose python blocks are fragments of a larger
# program (a store URL, a recorder class or a NATS client the reader brings): the guides run
# the same calls whole.
FRAGMENTS = {
    "publishing.md": "fragments: a relay over a store and a NATS client the reader brings; "
    "guides/publishing.md runs a relay whole",
    "backends.md": "fragments of a third-party backend (its recorder classes and test module); "
    "tests/test_toy_backend.py is the whole of it",
}

_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
_SKIP = re.compile(r"^\s*<!-- docs-test: skip \((?P<reason>[^)]+)\) -->\s*$")
_DOCS_POSTGRES = re.compile(r"postgresql://postgres@127\.0\.0\.1:5432/test(?:\?schema=(\w+))?")

# Runs in the child process: argv[1] is the page, stdin the blocks as [[first line, code]].
# Each block is compiled as if it stood at its line of the page, so a traceback shows the
# page's own line.
_RUNNER = """
import json, sys
page, blocks = sys.argv[1], json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for first_line, source in blocks:
    exec(compile("\\n" * (first_line - 1) + source, page, "exec"), namespace)
"""


class Block:
    """A fenced python block of a page: its first code line, its code, why it is skipped."""

    def __init__(self, first_line: int, code: str, skip: str | None) -> None:
        self.first_line, self.code, self.skip = first_line, code, skip


def python_blocks(page: Path) -> list[Block]:
    """The page's ```python blocks, in order (indented ones, in lists, dedented)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks, index = [], 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        start = index + 1
        index = start
        while index < len(lines) and not lines[index].strip().startswith(fence):
            index += 1
        if opening["info"].strip().split(" ")[0] in ("python", "py"):
            before = next((line for line in reversed(lines[: start - 1]) if line.strip()), "")
            skip = _SKIP.match(before)
            code = "\n".join(line[indent:] for line in lines[start:index]) + "\n"
            blocks.append(Block(start + 1, code, skip["reason"] if skip else None))
        index += 1
    return blocks


def pages() -> list[Path]:
    """Every Markdown page of the site."""
    return sorted(DOCS.rglob("*.md"))


def page_params() -> Iterator[object]:
    for page in pages():
        name = page.relative_to(DOCS).as_posix()
        if not python_blocks(page):
            continue
        marks = []
        if any(_DOCS_POSTGRES.search(block.code) for block in python_blocks(page)):
            marks.append(pytest.mark.postgres)
        yield pytest.param(page, id=name, marks=marks)


def test_pages_with_python_fragments_are_listed_with_a_reason() -> None:
    for name in FRAGMENTS:
        assert (DOCS / name).exists(), f"{name} is gone: take it out of FRAGMENTS"
        assert python_blocks(DOCS / name), f"{name} has no python blocks: take it out of FRAGMENTS"


def test_python_blocks_are_found_where_they_are_written(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n```python\nx = 1\n```\n\n<!-- docs-test: skip (needs a broker) -->\n"
        "```python\nbroker()\n```\n\n1. A step:\n\n    ```python\n    y = x + 1\n    ```\n"
        "\n```bash\nfacta --help\n```\n",
        encoding="utf-8",
    )
    found = [(block.first_line, block.code, block.skip) for block in python_blocks(page)]
    assert found == [
        (4, "x = 1\n", None),
        (9, "broker()\n", "needs a broker"),
        (15, "y = x + 1\n", None),
    ]


@pytest.mark.parametrize("page", list(page_params()))
def test_every_python_block_of_the_page_runs(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    name = page.relative_to(DOCS).as_posix()
    if name in FRAGMENTS:
        pytest.skip(FRAGMENTS[name])
    blocks = [block for block in python_blocks(page) if block.skip is None]
    if not blocks:
        pytest.skip(f"every python block of {name} is marked to skip")
    schemas: dict[str, str] = {}

    def private(match: re.Match[str]) -> str:
        assert match[1], f"{name}: a PostgreSQL URL names a schema (?schema=...) in the docs"
        schema = schemas.setdefault(match[1], f"{match[1]}_{uuid.uuid4().hex[:12]}")
        server: str = request.getfixturevalue("postgres_url")
        return f"{server}?schema={schema}"

    sources = [[block.first_line, _DOCS_POSTGRES.sub(private, block.code)] for block in blocks]
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(page)],
            input=json.dumps(sources),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
    finally:
        if schemas:
            import psycopg

            with psycopg.connect(request.getfixturevalue("postgres_url"), autocommit=True) as conn:
                for schema in schemas.values():
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr}"


class _Links(HTMLParser):
    """The ids a page defines and the links it makes."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for anchor in (values.get("id"), values.get("name") if tag == "a" else None):
            if anchor:
                self.ids.add(anchor)
        for attribute in ("href", "src"):
            link = values.get(attribute)
            if link and tag in ("a", "link", "script", "img", "source", "iframe"):
                self.links.append(link)


def broken_links(site: Path) -> list[str]:
    """Every internal link of the built site whose file or anchor does not exist."""
    parsed: dict[Path, _Links] = {}

    def parse(path: Path) -> _Links:
        if path not in parsed:
            parser = _Links()
            parser.feed(path.read_text(encoding="utf-8"))
            parsed[path] = parser
        return parsed[path]

    broken = []
    for page in sorted(site.rglob("*.html")):
        for link in parse(page).links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc:
                continue  # another site: not this check's business
            if not parts.path:
                target = page
            elif parts.path.startswith("/"):  # 404.html's links: the site is served at the root
                target = (site / unquote(parts.path).lstrip("/")).resolve()
            else:
                target = (page.parent / unquote(parts.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            where = f"{page.relative_to(site)}: {link}"
            if site.resolve() not in target.resolve().parents:
                broken.append(f"{where} (outside the site)")
            elif not target.exists():
                broken.append(f"{where} (no such file)")
            elif (
                parts.fragment
                and target.suffix == ".html"
                and unquote(parts.fragment) not in parse(target).ids
            ):
                broken.append(f"{where} (no such anchor)")
    return broken


def test_the_link_checker_finds_a_missing_page_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "guide").mkdir()
    (tmp_path / "index.html").write_text(
        '<h1 id="top">x</h1><a href="guide/">ok</a><a href="#top">ok</a>'
        '<a href="guide/#nowhere">bad</a><a href="gone/">bad</a><a href="https://x.org/">ok</a>',
        encoding="utf-8",
    )
    (tmp_path / "guide" / "index.html").write_text('<a href="../#top">ok</a>', encoding="utf-8")
    assert broken_links(tmp_path) == [
        "index.html: guide/#nowhere (no such anchor)",
        "index.html: gone/ (no such file)",
    ]


@pytest.mark.slow
def test_the_site_builds_with_no_warnings_and_no_broken_link(tmp_path: Path) -> None:
    missing = [
        name
        for name in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_click")
        if importlib.util.find_spec(name.split(".")[0]) is None
    ]
    if missing:
        pytest.skip(
            f"the docs tools are not installed ({', '.join(missing)}): pip install --group docs"
        )
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert broken_links(site) == []

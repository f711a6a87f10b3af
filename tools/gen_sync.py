"""Generate the sync twin of every async module under src/facta.

Every ``src/facta/**/X_async.py`` is the source; its twin ``X.py`` (same folder) is generated and
committed. The rewrite works on tokens (as the ``unasync`` project does), so comments and layout
survive; the result is then sorted and formatted with ruff so that it is stable.

Per-line directives in the async source:
    ``<code>  # sync: <line>``  the twin has ``<line>`` here instead (same indentation);
    ``<code>  # sync: drop``    the twin has no such line.

Usage: ``python tools/gen_sync.py`` writes every twin; ``--check`` writes nothing and exits 1
listing the twins that are missing or stale.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "facta"
SUFFIX = "_async"
HEADER = "# WARNING: generated from {source} by tools/gen_sync.py; do not edit."
HEADER_RE = re.compile(r"# WARNING: generated from (\S+) by tools/gen_sync\.py; do not edit\.")

NAMES = {
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
    "__anext__": "__next__",
    "aclose": "close",
    "StopAsyncIteration": "StopIteration",
    "asynccontextmanager": "contextmanager",
    "AbstractAsyncContextManager": "AbstractContextManager",
    "anext": "next",
    "aiter": "iter",
}
# asyncio.<attr> -> <module>.<attr>
ASYNCIO_ATTRS = {
    "sleep": "time",
    "Lock": "threading",
    "Event": "threading",
    "Condition": "threading",
    "Semaphore": "threading",
    "BoundedSemaphore": "threading",
}
ASYNC_PREFIX_RE = re.compile(r"^(_*)Async(?=[A-Z])")
WORD_RE = re.compile(r"\b[A-Za-z_][A-Za-z0-9_]*\b")
DIRECTIVE_RE = re.compile(r"#\s*sync:\s*(.*?)\s*$")
# Tokens whose text is prose or a quoted annotation: only whole words are renamed there.
TEXT_TOKENS = {tokenize.STRING, tokenize.COMMENT} | (
    {tokenize.FSTRING_MIDDLE} if hasattr(tokenize, "FSTRING_MIDDLE") else set()
)


def rename(name: str) -> str:
    """The sync spelling of one identifier."""
    if name in NAMES:
        return NAMES[name]
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX) and not name.startswith("__"):
        return name[: -len(SUFFIX)]
    return ASYNC_PREFIX_RE.sub(r"\1", name)


def unasync(source: str) -> str:
    """Rewrite async source text into its sync twin (before formatting)."""
    line_starts = [0]
    for line in source.splitlines(keepends=True):
        line_starts.append(line_starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        row, col = pos
        return min(line_starts[min(row - 1, len(line_starts) - 1)] + col, len(source))

    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    edits: list[tuple[int, int, str]] = []  # (start, end, replacement), in source order
    directives: dict[int, str] = {}  # 0-based line -> replacement line or "drop"
    for i, tok in enumerate(tokens):
        start, end = offset(tok.start), offset(tok.end)
        if tok.type == tokenize.NAME:
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if tok.string == "await" or (
                tok.string == "async"
                and following is not None
                and following.string in {"def", "with", "for"}
            ):
                while end < len(source) and source[end] in " \t":
                    end += 1  # drop the space after the keyword too
                edits.append((start, end, ""))
            elif (
                tok.string == "asyncio"
                and i + 2 < len(tokens)
                and tokens[i + 1].string == "."
                and tokens[i + 2].string in ASYNCIO_ATTRS
            ):
                edits.append((start, end, ASYNCIO_ATTRS[tokens[i + 2].string]))
            elif (new := rename(tok.string)) != tok.string:
                edits.append((start, end, new))
        elif tok.type in TEXT_TOKENS:
            if tok.type == tokenize.COMMENT and (match := DIRECTIVE_RE.match(tok.string)):
                directives[tok.start[0] - 1] = match.group(1)
                continue
            text = source[start:end]
            new_text = WORD_RE.sub(lambda m: rename(m.group()), text)
            if new_text != text:
                edits.append((start, end, new_text))

    out: list[str] = []
    cursor = 0
    for start, end, replacement in edits:
        out.append(source[cursor:start])
        out.append(replacement)
        cursor = end
    out.append(source[cursor:])
    # Token edits never add or remove newlines, so line numbers still match the source.
    src_lines = source.splitlines()
    lines = "".join(out).splitlines()
    result: list[str] = []
    for number, line in enumerate(lines):
        if number not in directives:
            result.append(line)
        elif directives[number] != "drop":
            indent = src_lines[number][: len(src_lines[number]) - len(src_lines[number].lstrip())]
            result.append(indent + directives[number])
    return "\n".join(result) + "\n"


def find_ruff() -> list[str] | None:
    """The ruff command: the one beside this interpreter (the venv's), else on PATH."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    ruff = shutil.which("ruff", path=path)
    return [ruff] if ruff else None


def ruff_tidy(text: str, target: Path, ruff: list[str] | None) -> str:
    """Sort imports (renames change their order) and format, as ruff would for `target`."""
    if ruff is None:
        return text
    for args in (["check", "--fix-only", "--select", "I,RUF022", "--quiet"], ["format", "--quiet"]):
        done = subprocess.run(
            [*ruff, *args, "--stdin-filename", str(target), "-"],
            input=text,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"ruff {args[0]} failed on the twin of {target}:\n{done.stderr}")
        text = done.stdout
    return text


def twin_of(source: Path) -> Path:
    return source.with_name(source.name.removesuffix(f"{SUFFIX}.py") + ".py")


def sources() -> list[Path]:
    if not PACKAGE.is_dir():
        return []
    return sorted(
        p for p in PACKAGE.rglob(f"*{SUFFIX}.py") if p.name != f"{SUFFIX}.py" and p.is_file()
    )


def orphans(expected: set[Path]) -> list[Path]:
    """Generated files whose async source is gone."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")) if PACKAGE.is_dir() else []:
        with path.open(encoding="utf-8") as f:
            first = f.readline()
        if HEADER_RE.match(first) and path not in expected:
            found.append(path)
    return found


def generate(source: Path, ruff: list[str] | None) -> str:
    rel = source.relative_to(ROOT).as_posix()
    body = unasync(source.read_text(encoding="utf-8"))
    return ruff_tidy(HEADER.format(source=rel) + "\n" + body, twin_of(source), ruff)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a twin is missing or stale"
    )
    args = parser.parse_args(argv)

    ruff = find_ruff()
    if ruff is None:
        print("gen_sync: ruff not found; twins are not formatted", file=sys.stderr)
    problems: list[str] = []
    written = 0
    all_sources = sources()
    for source in all_sources:
        twin = twin_of(source)
        text = generate(source, ruff)
        current = twin.read_text(encoding="utf-8") if twin.exists() else None
        if current == text:
            continue
        rel = twin.relative_to(ROOT).as_posix()
        if args.check:
            problems.append(f"{rel}: {'missing' if current is None else 'stale'}")
        else:
            twin.write_text(text, encoding="utf-8")
            written += 1
            print(f"gen_sync: wrote {rel}")
    for orphan in orphans({twin_of(s) for s in all_sources}):
        rel = orphan.relative_to(ROOT).as_posix()
        if args.check:
            problems.append(f"{rel}: generated, but its async source is gone")
        else:
            orphan.unlink()
            print(f"gen_sync: removed {rel} (its async source is gone)")

    if problems:
        print("gen_sync: sync twins out of date (run `python tools/gen_sync.py`):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.check:
        print(f"gen_sync: {len(all_sources)} sync twin(s) up to date")
    elif written == 0:
        print(f"gen_sync: {len(all_sources)} sync twin(s) already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())

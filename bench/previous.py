"""Other commits, benchmarked beside this one: each with its own source and benchmark.

``facta-memory-0.1`` runs the memory store of facta 0.1 (the last commit before the version
became 0.2.0.dev0) through that commit's ``bench/worker.py``, whose workloads are the same as
these, so "no slower than the previous release" is measured in the same run, not remembered.
Any system can be run so: ``--systems facta-sqlite,facta-sqlite@HEAD~1`` interleaves a change
with the code before it (an A/B in one run). A tree is taken out of git once per commit
(``git archive``) into ``bench/results/``.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

__all__ = ["RELEASE", "command", "knows", "split"]

# The last commit of 0.1: its child, a2c14da, is "Version 0.2.0.dev0".
RELEASE = "a2c14da^"
ROOT = Path(__file__).resolve().parent.parent
# The git checkout to take commits from: this tree, unless the benchmark runs from a copy
# taken out of git itself (then FACTA_BENCH_GIT names the checkout).
GIT = Path(os.environ.get("FACTA_BENCH_GIT", ROOT))
# Sizes fields this benchmark added after the release (its worker refuses unknown fields).
_NEW_SIZES = ("w4_big_length", "w4_big_every", "w4_any_loads")


def split(system: str) -> tuple[str, str | None]:
    """``facta-sqlite@abc123`` -> ``("facta-sqlite", "abc123")``; the 0.1 systems name the
    release's; other names run this tree's code (None)."""
    name, _, commit = system.partition("@")
    if name.endswith("-0.1") or name.endswith("-0.1-async"):
        return name.replace("-0.1", ""), RELEASE
    return name, commit or None


def knows(case_id: str) -> bool:
    """Whether the release's benchmark has this case."""
    return not case_id.startswith("W4-1M") and case_id != "W6-statements"


def _tree(revision: str) -> Path:
    """A commit's source and benchmark, extracted once per commit."""
    commit = subprocess.run(
        ["git", "rev-parse", revision], cwd=GIT, capture_output=True, text=True, check=True
    ).stdout.strip()
    where = ROOT / "bench" / "results" / f"previous-{commit[:10]}"
    if not (where / "bench" / "worker.py").exists():
        archive = subprocess.run(
            ["git", "archive", "--format=tar", commit, "src", "bench"],
            cwd=GIT,
            capture_output=True,
            check=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(where, filter="data")
    return where


def command(
    python: str, system: str, sizes: dict[str, Any], schema: str
) -> tuple[list[str], Path, dict[str, str]]:
    """How to start another commit's worker for ``system`` (``facta-memory-0.1[-async]``,
    or ``NAME@COMMIT``): the command, its folder and the environment variables to add."""
    import json

    name, revision = split(system)
    assert revision is not None
    tree = _tree(revision)
    if revision == RELEASE:
        sizes = {key: value for key, value in sizes.items() if key not in _NEW_SIZES}
    argv = [python, str(tree / "bench" / "worker.py"), name, json.dumps(sizes), schema]
    return argv, tree, {"PYTHONPATH": str(tree / "src")}

"""Every script in examples/ runs with this python, exits 0 and prints what it should."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

EXPECTED = {
    "quickstart.py": ["ada 100 2", "105"],
    "async_quickstart.py": [
        "open: ['ship it'] version 3",
        "3 TaskDone TaskDone(title='write docs')",
    ],
    "domain_ids.py": ["already registered:", "is at version 1", "order-2026-0042 1"],
    "personal_data.py": [
        'stored: False {"customer_id":"c-1","email":{"$facta_sealed"',
        "customer-1 (forgotten) gold",
        "customer-2 bob@example.org free",
    ],
    "inbox.py": [
        "orders published 3 events",
        "orders-again published 3 events",
        "inbox applied 3 events and dropped 3 repeats",
        "revenue [('order-1', 35), ('order-2', 12)]",
    ],
    "publishing.py": [
        "subscriber saw order-2 OrderPlaced(total=12)",
        "relay published 2 events",
        'OrderPlaced.order-1 {"total":30}',
    ],
}


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_and_prints_what_it_should(name: str, tmp_path: Path) -> None:
    done = run_example(name, tmp_path)
    assert done.returncode == 0, done.stderr
    for expected in EXPECTED[name]:
        assert expected in done.stdout


def test_every_example_is_checked_here() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


def test_the_readme_quickstart_is_the_quickstart_example() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```python\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README.md has no python code block"
    example = (EXAMPLES / "quickstart.py").read_text(encoding="utf-8")
    assert block.group(1) in example
    assert len(block.group(1)) > len(example) * 0.8


def test_the_inbox_section_of_the_publishing_guide_is_the_inbox_example() -> None:
    guide = (ROOT / "docs" / "publishing.md").read_text(encoding="utf-8")
    section = guide.split("## The receiving side: inboxes", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert block is not None, "the inboxes section has no python code block"
    example = (EXAMPLES / "inbox.py").read_text(encoding="utf-8")
    assert example.endswith(block.group(1))
    assert len(block.group(1)) > len(example) * 0.8

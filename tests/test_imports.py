"""tools/check_imports.py: the import graph of src/facta has no cycle, keeps concrete backends
out of the layers above them, and no module reaches into another's private names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "check_imports.py"


def run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


def tree(root: Path, files: dict[str, str]) -> Path:
    """A package under ``root/src/facta`` made of ``files`` (paths relative to it)."""
    for name, text in {"__init__.py": "", **files}.items():
        path = root / "src" / "facta" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_facta_has_no_import_cycle_layer_breach_or_private_access() -> None:
    done = run(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_clean_package_passes(tmp_path: Path) -> None:
    done = run(tree(tmp_path, {"a.py": "from facta import b\n", "b.py": "import facta.c\n"}))
    assert done.returncode == 0, done.stdout
    assert "3 modules" in done.stdout


def test_a_cycle_is_listed_with_each_import_that_closes_it(tmp_path: Path) -> None:
    files = {"a.py": "import os\nfrom facta.b import x\n", "b.py": "def f():\n    import facta.a\n"}
    done = run(tree(tmp_path, files))
    assert done.returncode == 1
    assert "import cycle facta.a -> facta.b -> facta.a" in done.stdout
    assert "src/facta/a.py:2" in done.stdout
    assert "src/facta/b.py:2" in done.stdout


def test_a_cycle_through_a_package_init_counts_the_package(tmp_path: Path) -> None:
    files = {"p/__init__.py": "from facta.p.m import x\n", "p/m.py": "from facta.p import y\n"}
    done = run(tree(tmp_path, files))
    assert "import cycle facta.p -> facta.p.m -> facta.p" in done.stdout


def test_imports_only_for_type_checking_make_no_cycle(tmp_path: Path) -> None:
    files = {
        "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from facta.b import B\n",
        "b.py": "from facta.a import A\n",
    }
    assert run(tree(tmp_path, files)).returncode == 0


@pytest.mark.parametrize(
    ("module", "text"),
    [
        ("projections/runner.py", "from facta.backends.sqlite import backend\n"),
        ("projections/runner.py", "from facta.backends import memory\n"),
        ("cli/app.py", "import importlib\nimportlib.import_module('facta.backends.postgres')\n"),
        ("checking_async.py", "from facta.backends.postgres.recorder import R\n"),
        ("check_report.py", "import facta.backends.sqlite_async\n"),
        (
            "testing/contract.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from facta.backends.memory import backend\n",
        ),
    ],
)
def test_the_layers_above_the_backends_may_not_import_a_concrete_one(
    tmp_path: Path, module: str, text: str
) -> None:
    backends = {
        "backends/__init__.py": "",
        "backends/memory/__init__.py": "",
        "backends/sqlite/__init__.py": "",
        "backends/sqlite_async.py": "",
        "backends/postgres/__init__.py": "",
        "backends/postgres/recorder.py": "",
        "cli/__init__.py": "",
        "projections/__init__.py": "",
        "testing/__init__.py": "",
    }
    done = run(tree(tmp_path, {**backends, module: text}))
    assert done.returncode == 1
    assert f"src/facta/{module}:" in done.stdout
    assert "imports the concrete backend facta.backends." in done.stdout


def test_the_layers_may_import_the_backend_discovery(tmp_path: Path) -> None:
    files = {
        "backends/__init__.py": "",
        "projections/__init__.py": "",
        "projections/runner.py": "from facta.backends import Backend\nimport facta.backends\n",
        "connect.py": "from facta.backends.memory import backend\n",
        "backends/memory/__init__.py": "",
    }
    assert run(tree(tmp_path, files)).returncode == 0


@pytest.mark.parametrize(
    ("module", "text", "message"),
    [
        ("repository.py", "from facta.store import _check\n", "private name _check"),
        ("repository.py", "from facta import store\nstore._check(1)\n", "private _check"),
        ("repository.py", "import facta.store\nfacta.store._check(1)\n", "private _check"),
        ("repository.py", "from facta.store import Store\nStore._cache\n", "private _cache"),
        ("repository.py", "def f(self):\n    self.store._prepare()\n", "_prepare of a store"),
        ("cli/app.py", "def f(s):\n    s._recorder._book\n", "_book of a recorder"),
        ("cli/app.py", "from facta.testing import _support\n", "private to package"),
    ],
)
def test_private_names_stay_in_their_module(
    tmp_path: Path, module: str, text: str, message: str
) -> None:
    files = {"store.py": "", "testing/__init__.py": "", "testing/_support.py": ""}
    done = run(tree(tmp_path, {**files, "cli/__init__.py": "", module: text}))
    assert done.returncode == 1
    assert f"src/facta/{module}:" in done.stdout
    assert message in done.stdout


def test_what_looks_private_but_is_not_passes(tmp_path: Path) -> None:
    files = {
        "store.py": "class S:\n    def f(self):\n        return self._x, self._recorder.read()\n",
        "events.py": "from facta.store import S\nS(1)._replace(a=1)\nS.__name__\n",
        "backends/__init__.py": "",
        "backends/memory.py": "def f(store):\n    store._log.append(1)\n",
        "testing/__init__.py": "",
        "testing/_support.py": "",
        "testing/contract.py": "from facta.testing._support import x\n",
    }
    done = run(tree(tmp_path, files))
    assert done.returncode == 0, done.stdout

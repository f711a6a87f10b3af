"""The examples in facta's docstrings run and print what they show.

Generated sync twins repeat their async source's docstrings, so only sources are run.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import facta


def _documented_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(facta.__path__, "facta."):
        spec = importlib.util.find_spec(info.name)
        assert spec is not None
        assert spec.origin is not None
        source = Path(spec.origin).read_text(encoding="utf-8")
        if not source.startswith("# WARNING: generated") and ">>>" in source:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _documented_modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert failures == 0

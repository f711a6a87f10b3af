"""The application's code, found the way ``python -m`` would: modules of the working directory."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

__all__ = ["import_attribute", "import_module"]


def import_module(name: str) -> ModuleType:
    """Import an application module; ``ValueError`` (a one-line error) if it does not import."""
    _find_working_directory()
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ValueError(f"cannot import {name!r}: {e}") from e


def import_attribute(spec: str, option: str) -> Any:
    """What ``MODULE:ATTR`` (``ATTR`` may be dotted) points at; ``option`` names it in errors."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{option} {spec!r} is not MODULE:ATTR (e.g. app.models:Balances)")
    _find_working_directory()
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{option} {spec!r}: {e}") from e
    return target


def _find_working_directory() -> None:
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

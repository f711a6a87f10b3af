"""How the command fails on bad input: one line on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import re

import click

__all__ = ["Failed", "one_line"]


class Failed(click.ClickException):
    """A user-caused error: one line on stderr and exit code 2."""

    exit_code = 2


def one_line(error: BaseException) -> str:
    """The error's message on one line (driver messages may span several)."""
    return re.sub(r"\s*\n\s*", " ", str(error).strip())

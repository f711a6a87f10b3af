"""Checkpoints as the command line prints and reads them: ``42``, or ``7:42`` on PostgreSQL."""

from __future__ import annotations

import click

from facta.events import Checkpoint

__all__ = ["checkpoint_text", "parse_checkpoint"]


def parse_checkpoint(text: str, param_hint: str = "--after") -> Checkpoint:
    """``"42"`` or ``"7:42"`` (transaction:position, as PostgreSQL checkpoints print)."""
    parts = text.split(":")
    try:
        numbers = [int(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 0:
        raise click.BadParameter(
            f"{text!r} is not a checkpoint: give a position (42) or TRANSACTION:POSITION (7:42)",
            param_hint=param_hint,
        )
    return Checkpoint(*numbers) if len(numbers) == 2 else Checkpoint(0, numbers[0])


def checkpoint_text(checkpoint: Checkpoint) -> str:
    """A checkpoint as ``--after`` reads it: the bare position when there is no transaction id."""
    transaction_id, position = checkpoint
    return f"{transaction_id}:{position}" if transaction_id else str(position)

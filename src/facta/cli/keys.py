"""``facta forget`` and ``facta keys``: destroy a subject's data key; make and rotate master keys.

Personal fields (:mod:`facta.personal`) are sealed with per-subject data keys, wrapped under a
master key that only the application holds: the commands that decode events (``check``,
``projections run`` and ``rebuild``) take it with ``--keys-file`` or ``--keys-env``.
Forgetting needs no master key: it only destroys a stored key.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from facta.cli.errors import Failed
from facta.cli.stores import Access, open_store
from facta.cli.urls import URL_HELP, url_and, url_argument
from facta.personal.providers import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    generate_master_key,
)

__all__ = ["forget", "key_options", "keys", "provider"]

F = TypeVar("F", bound=Callable[..., Any])


def key_options(function: F) -> F:
    """``--keys-file PATH`` / ``--keys-env VAR``: the master key that opens personal fields."""
    function = click.option(
        "--keys-env",
        metavar="VAR",
        help="Read the master key of personal fields from this environment variable.",
    )(function)
    return click.option(
        "--keys-file",
        metavar="PATH",
        help="Read the master key of personal fields (base64, 32 bytes) from this file.",
    )(function)


def provider(file: str | None, env: str | None, option: str = "--keys") -> KeyProvider | None:
    """The key provider a command's ``OPTION-file`` / ``OPTION-env`` name; None for neither."""
    if file is not None and env is not None:
        raise click.UsageError(f"give {option}-file or {option}-env, not both")
    if file is not None:
        return FileKeyProvider(file)
    if env is not None:
        return EnvKeyProvider(env)
    return None


@click.command(epilog=URL_HELP)
@url_and("subject")
def forget(url: str, subject: str) -> None:
    """Forget SUBJECT: destroy its data key, so that its personal fields, in every event and
    snapshot, read back as facta.Forgotten from now on (processes running with the key cached
    stop using it within their key cache time). Needs no master key. Rebuild the read models
    that copied its data afterwards."""
    with open_store(url, Access.EXISTING) as store:
        had_key = store.forget(subject)
    if had_key:
        click.echo(f"forgot {subject!r}: its data key is destroyed")
    else:
        click.echo(
            f"{subject!r} has no data key (nothing of it was sealed, or it was forgotten "
            "already); nothing changed"
        )


@click.group()
def keys() -> None:
    """Master keys of personal data: make a new one, re-wrap a store's data keys under one."""


@keys.command("new")
@click.option(
    "--file",
    "path",
    metavar="PATH",
    help="Write the key to this new file, readable by you only, instead of printing it.",
)
def new_key(path: str | None) -> None:
    """Make a new random master key (base64 of 32 bytes)."""
    key = generate_master_key()
    if path is None:
        click.echo(key)
        return
    try:  # never over an existing file: it may hold the key that opens a store
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Failed(f"{path} exists already; a master key is never overwritten") from None
    except OSError as e:
        raise Failed(f"cannot write {path}: {e}") from e
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(key + "\n")
    click.echo(f"wrote a new master key to {Path(path)} (id {FileKeyProvider(path).key_id})")


@keys.command("rotate", epilog=URL_HELP)
@url_argument
@click.option("--from-file", metavar="PATH", help="The current master key, from a file.")
@click.option("--from-env", metavar="VAR", help="The current master key, from a variable.")
@click.option("--to-file", metavar="PATH", help="The new master key, from a file.")
@click.option("--to-env", metavar="VAR", help="The new master key, from a variable.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
def rotate(
    url: str,
    from_file: str | None,
    from_env: str | None,
    to_file: str | None,
    to_env: str | None,
    batch_size: int,
) -> None:
    """Re-wrap every data key of the store under a new master key. Safe to run again: keys
    already under the new key are left, so an interrupted rotation is finished by rerunning
    it. Meanwhile run the application with a KeyRing of both keys; once it uses the new key
    alone, destroy the old one."""
    old = provider(from_file, from_env, "--from")
    new = provider(to_file, to_env, "--to")
    if old is None or new is None:
        raise click.UsageError(
            "give the current key (--from-file/--from-env) and the new one (--to-file/--to-env)"
        )
    with open_store(url, Access.EXISTING, keys=old) as store:
        count = store.rotate_master_key(new, batch_size=batch_size)
    click.echo(
        f"re-wrapped {count} data key{'' if count == 1 else 's'} under master key "
        f"{new.key_id!r}; open the store with that key from now on"
    )

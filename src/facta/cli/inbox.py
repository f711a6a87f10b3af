"""``facta inbox``: run an inbox that applies another service's events, received through a
broker, to a projection of this store; show what an inbox holds.

The source is chosen by the scheme of the ``--from`` URL, in :data:`SOURCES`; its module is
imported only when its scheme is used, so only that broker's client library (an extra) needs
to be installed. The projection is the application's, found by ``--projection module:attr``
(as ``facta projections run`` finds one): the store decodes with the application's event
classes, which importing it registers.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

import facta
from facta import backends
from facta.cli.errors import Failed
from facta.cli.modules import import_attribute
from facta.cli.stores import Access, open_store
from facta.cli.urls import URL_HELP, url_and
from facta.codec import Codec
from facta.errors import ConfigurationError
from facta.projections import AsyncProjection, OnError, Projection, statuses
from facta.publishing import Gaps, Inbox, Source
from facta.records import HeldMessage

__all__ = ["SOURCES", "inbox", "source_for"]

# Broker URL scheme -> (module, class, the options that class takes beside the URL).
SOURCES: dict[str, tuple[str, str, frozenset[str]]] = {
    "nats": ("facta.publishing.nats", "JetStreamSource", frozenset({"stream", "consumer"})),
    "amqp": ("facta.publishing.rabbitmq", "RabbitMQSource", frozenset({"prefix", "queue"})),
    "amqps": ("facta.publishing.rabbitmq", "RabbitMQSource", frozenset({"prefix", "queue"})),
    "redis": ("facta.publishing.redis", "RedisSource", frozenset({"prefix", "group"})),
    "rediss": ("facta.publishing.redis", "RedisSource", frozenset({"prefix", "group"})),
}
# The option each of those is given with, for messages.
_FLAGS = {
    "stream": "--stream",
    "consumer": "--consumer",
    "prefix": "--prefix",
    "queue": "--queue",
    "group": "--group",
}


@click.group(epilog=URL_HELP)
def inbox() -> None:
    """Apply another service's events from a broker to a projection (run), or show what an
    inbox holds (status)."""


@inbox.command(epilog=URL_HELP)
@url_and("name")
@click.option(
    "--from",
    "origin",
    required=True,
    metavar="BROKER_URL",
    help="Where the events come from: a broker URL (schemes: "
    + ", ".join(f"{scheme}://" for scheme in sorted(SOURCES))
    + ").",
)
@click.option(
    "-p",
    "--projection",
    "spec",
    required=True,
    metavar="MODULE:ATTR",
    help="The projection to apply them to: a Projection or AsyncProjection subclass (made "
    "with no arguments) or instance, e.g. myapp.read_models:Orders.",
)
@click.option("--stream", metavar="NAME", help="nats:// only: the JetStream stream (FACTA).")
@click.option("--consumer", metavar="NAME", help="nats:// only: the durable consumer (NAME).")
@click.option(
    "--prefix",
    metavar="PREFIX",
    help="amqp://, redis:// only: the relay's prefix, which names its exchange or Redis keys "
    "(facta).",
)
@click.option("--queue", metavar="NAME", help="amqp:// only: the queue (EXCHANGE.inbox.NAME).")
@click.option("--group", metavar="NAME", help="redis:// only: the consumer group (NAME).")
@click.option(
    "--gaps",
    type=click.Choice([gaps.value for gaps in Gaps]),
    default=Gaps.PARK.value,
    show_default=True,
    help="An event past the next version of its stream: park it until the ones before it "
    "come, refuse it (the broker delivers it again later), or accept it (the source carries "
    "only some of each stream's events).",
)
@click.option(
    "--join-midway",
    is_flag=True,
    help="Start a stream the inbox has not seen at whatever version comes first.",
)
@click.option(
    "--dead-letter",
    is_flag=True,
    help="Keep a message that cannot be applied in the inbox's dead letters and go on, "
    "instead of stopping at it.",
)
@click.option(
    "--batch-size",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Messages applied per transaction, at most.",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds to wait for messages before looking again.",
)
@click.option("--wait", is_flag=True, help="If NAME runs elsewhere, wait for it to stop.")
def run(
    url: str,
    name: str,
    origin: str,
    spec: str,
    stream: str | None,
    consumer: str | None,
    prefix: str | None,
    queue: str | None,
    group: str | None,
    gaps: str,
    join_midway: bool,
    dead_letter: bool,
    batch_size: int,
    poll_interval: float,
    wait: bool,
) -> None:
    """Run inbox NAME: apply the events the broker delivers to the projection, each once and
    each stream in order, until Ctrl-C or SIGTERM."""
    given = dict(stream=stream, consumer=consumer, prefix=prefix, queue=queue, group=group)
    source = source_for(origin, **{option: v for option, v in given.items() if v is not None})
    projection = _projection(spec)
    existing = {"create": False} if "create" in backends.find(url).options else {}

    async def receive() -> Inbox:
        loop = asyncio.get_running_loop()
        async with (
            facta.connect_async(url, codec=Codec(), **existing) as store,
            Inbox(
                store,
                projection,
                source,
                name=name,
                gaps=Gaps(gaps),
                join_midway=join_midway,
                on_error=OnError.DEAD_LETTER if dead_letter else OnError.STOP,
                batch_size=batch_size,
                poll_interval=poll_interval,
                wait=wait,
            ) as receiving,
        ):
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, receiving.stop)
            try:
                click.echo(f"receiving {name!r} from {_shown(origin)}", err=True)
                await receiving.run()
            finally:
                for number in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(number)
        return receiving

    with _logging_to_stderr():
        try:
            done = asyncio.run(receive())
        except KeyboardInterrupt:  # before the inbox was open: nothing was applied
            click.echo(f"interrupted before inbox {name!r} started", err=True)
            return
    click.echo(
        f"stopped {name!r}: {done.applied} events applied, {done.duplicates} duplicates "
        f"dropped, {done.parked} parked, {done.dead_lettered} sent to the dead letters",
        err=True,
    )


@inbox.command(epilog=URL_HELP)
@url_and("name")
def status(url: str, name: str) -> None:
    """Inbox NAME's state, and the messages it holds: parked ones (waiting for their stream's
    earlier versions) and dead letters (with why)."""
    with open_store(url, Access.READ) as store:
        found = [s for s in statuses(store) if s.name == name]
        held = store.recorder.checkpoints(name).held()
    if not found and not held:
        raise Failed(f"no inbox named {name!r} has run on this store")
    state = found[0].state if found else "stopped"
    click.echo(f"inbox {name!r}: {state}")
    if found and found[0].error:
        click.echo(f"  {found[0].error}")
    parked = [m for m in held if m.error is None]
    dead = [m for m in held if m.error is not None]
    click.echo(f"parked: {len(parked)}" + (" (waiting for earlier versions)" if parked else ""))
    for message in parked:
        click.echo(f"  {_held(message)}")
    click.echo(f"dead letters: {len(dead)}")
    for message in dead:
        click.echo(f"  {_held(message)}: {message.error}")


def source_for(origin: str, **options: str) -> Source:
    """The source the ``--from`` URL names, by its scheme (:data:`SOURCES`), given the options
    it takes."""
    scheme = origin.split("://", 1)[0].lower() if "://" in origin else ""
    if scheme not in SOURCES:
        known = ", ".join(f"{s}://" for s in sorted(SOURCES))
        raise ConfigurationError(
            f"--from {_shown(origin)!r} names no broker facta knows; the schemes are: {known}"
        )
    module_name, class_name, takes = SOURCES[scheme]
    foreign = sorted(set(options) - takes)
    if foreign:
        raise ConfigurationError(
            f"{_FLAGS.get(foreign[0], foreign[0])} does not apply to {scheme}:// sources; "
            f"they take {', '.join(_FLAGS[option] for option in sorted(takes))}"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        extra = module_name.rsplit(".", 1)[-1]
        raise ConfigurationError(
            f"{scheme}:// sources need {e.name}, which is not installed: "
            f"pip install 'facta[{extra}]'"
        ) from e
    source: object = getattr(module, class_name)(origin, **options)
    if not isinstance(source, Source):
        raise TypeError(f"{module_name}.{class_name} is not a facta.publishing.Source")
    return source


def _projection(spec: str) -> AsyncProjection[Any] | Projection[Any]:
    target = import_attribute(spec, "--projection")
    projection = target() if isinstance(target, type) else target
    if not isinstance(projection, AsyncProjection | Projection):
        raise ValueError(
            f"--projection {spec!r} is a {type(projection).__qualname__}, not a "
            "facta.projections Projection or AsyncProjection"
        )
    return projection


def _held(message: HeldMessage) -> str:
    if message.stream_id is None:
        return f"a message on {message.subject!r}, held {message.held_at:%Y-%m-%d %H:%M:%S}"
    return (
        f"{message.stream_id} v{message.version} (event {message.event_id}), held "
        f"{message.held_at:%Y-%m-%d %H:%M:%S}"
    )


def _shown(url: str) -> str:
    """A broker URL without its password."""
    scheme, separator, rest = url.rpartition("://")
    credentials, at, host = rest.rpartition("@")
    if not at:
        return url
    user = credentials.partition(":")[0]
    return f"{scheme}{separator}{user}@{host}" if user else f"{scheme}{separator}{host}"


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """Show the inbox's warnings (back-off, dead letters) on stderr while the command runs."""
    logger = logging.getLogger("facta.publishing")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)

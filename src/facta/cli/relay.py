"""``facta relay``: run a relay that publishes a store's events to a broker; show each relay.

The broker is chosen by the scheme of the ``--to`` URL, in :data:`BROKERS`; its module is
imported only when its scheme is used, so only that broker's client library (an extra) needs
to be installed. Relays keep their checkpoints in the store's projection table, beside the
projections', so ``relay status`` lists what ``facta projections`` lists.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click

import facta
from facta import backends
from facta.cli.checkpoints import checkpoint_text
from facta.cli.errors import Failed
from facta.cli.stores import Access, StoredJSON, open_store, replica_option, replica_options
from facta.cli.urls import URL_HELP, url_and
from facta.errors import ConfigurationError
from facta.projections import statuses
from facta.publishing import Broker, Relay
from facta.store_async import AsyncEventStore

__all__ = ["BROKERS", "relay"]

# Broker URL scheme -> (module, class): each class is made as ``cls(url, prefix=prefix)``.
BROKERS: dict[str, tuple[str, str]] = {
    "nats": ("facta.publishing.nats", "JetStreamBroker"),
    "amqp": ("facta.publishing.rabbitmq", "RabbitMQBroker"),
    "amqps": ("facta.publishing.rabbitmq", "RabbitMQBroker"),
    "redis": ("facta.publishing.redis", "RedisBroker"),
    "rediss": ("facta.publishing.redis", "RedisBroker"),
}

_TO_HELP = "Where to publish: a broker URL, e.g. nats://127.0.0.1:4222 (schemes: {})."


@click.group(epilog=URL_HELP)
def relay() -> None:
    """Publish the store's events to a message broker (run), or show each relay (status)."""


@relay.command(epilog=URL_HELP)
@url_and("name")
@click.option(
    "--to",
    "target",
    required=True,
    metavar="BROKER_URL",
    help=_TO_HELP.format(", ".join(f"{scheme}://" for scheme in sorted(BROKERS))),
)
@click.option(
    "--stream",
    metavar="NAME",
    help="The JetStream stream to publish to (nats:// only; FACTA by default).",
)
@click.option(
    "--prefix",
    default="facta",
    show_default=True,
    help="First token of every subject (routing key): PREFIX.TYPE.STREAM_ID.",
)
@click.option(
    "--types",
    multiple=True,
    metavar="TYPE",
    help="Publish only events of this type name (repeatable); every event by default.",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Events read, and published in flight at once, per batch.",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.01),
    help="Seconds between looks at the log when no wake-up comes.",
)
@click.option("--wait", is_flag=True, help="If NAME runs elsewhere, wait for it to stop.")
@replica_option
def run(
    url: str,
    name: str,
    target: str,
    stream: str | None,
    prefix: str,
    types: tuple[str, ...],
    batch_size: int,
    poll_interval: float,
    wait: bool,
    replicas: tuple[str, ...],
) -> None:
    """Run relay NAME: publish the log after its checkpoint, then each event as it commits,
    until Ctrl-C or SIGTERM. Delivery is at least once, in the log's order; the checkpoint
    moves only past what the broker acknowledged."""
    broker = broker_for(target, prefix=prefix, stream=stream)

    def relay_for(store: AsyncEventStore) -> Relay:
        return Relay(
            store,
            broker,
            name=name,
            prefix=prefix,
            types=types or None,
            batch_size=batch_size,
            poll_interval=poll_interval,
            wait=wait,
        )

    with _logging_to_stderr():
        try:
            relay = asyncio.run(_run(url, relay_for, target, replica_options(url, replicas)))
        except KeyboardInterrupt:  # before the relay was open: nothing was published
            click.echo(f"interrupted before relay {name!r} started", err=True)
            return
    click.echo(
        f"stopped {name!r} at checkpoint {checkpoint_text(relay.checkpoint)} "
        f"({relay.published} events published)",
        err=True,
    )


async def _run(
    url: str,
    relay_for: Callable[[AsyncEventStore], Relay],
    target: str,
    replicas: dict[str, object],
) -> Relay:
    """Open the store and the relay, run it until a signal asks it to stop, close both."""
    loop = asyncio.get_running_loop()
    async with (
        facta.connect_async(url, codec=StoredJSON(), **_existing(url), **replicas) as store,
        relay_for(store) as relay,
    ):
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, relay.stop)
        try:
            click.echo(
                f"relaying {relay.name!r} to {target} after checkpoint "
                f"{checkpoint_text(relay.checkpoint)}",
                err=True,
            )
            await relay.run()
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
    return relay


@relay.command(epilog=URL_HELP)
@click.argument("first", required=False, metavar="[URL]")
@click.argument("second", required=False, metavar="[NAME]")
def status(first: str | None, second: str | None) -> None:
    """Each relay (or relay NAME): its checkpoint, its lag (events behind) and its state.

    Relays share the store's checkpoint table with projections, so projections show too.
    """
    url, name = _url_and_name(first, second)
    with open_store(url, Access.READ) as store:
        found = statuses(store)
    if name is not None:
        found = [s for s in found if s.name == name]
        if not found:
            raise Failed(f"no relay named {name!r} has run on this store")
    if not found:
        click.echo("no relay has run on this store yet")
        return
    width = max(4, *(len(s.name) for s in found))
    click.echo(f"{'NAME':<{width}}  {'CHECKPOINT':>14}  {'LAG':>8}  STATE")
    for found_status in found:
        checkpoint = checkpoint_text(found_status.checkpoint)
        click.echo(
            f"{found_status.name:<{width}}  {checkpoint:>14}  {found_status.lag:>8}  "
            f"{found_status.state}"
        )
        if found_status.error:
            click.echo(f"{'':<{width}}  {found_status.error}")


def _url_and_name(first: str | None, second: str | None) -> tuple[str, str | None]:
    """``[URL] [NAME]``: a lone argument is the URL if it has a scheme, else the NAME (with
    the URL from ``$FACTA_URL``)."""
    if second is not None:
        return first or "", second
    if first is not None and "://" in first:
        return first, None
    url = os.environ.get("FACTA_URL", "")
    if not url:
        raise click.UsageError("give the store's URL (or set FACTA_URL)")
    return url, first


def broker_for(target: str, *, prefix: str, stream: str | None = None) -> Broker:
    """The broker the ``--to`` URL names, by its scheme (:data:`BROKERS`)."""
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    known = ", ".join(f"{s}://" for s in sorted(BROKERS))
    if scheme not in BROKERS:
        raise ConfigurationError(
            f"--to {target!r} names no broker facta knows; the broker URL schemes are: {known}"
        )
    if stream is not None and scheme != "nats":
        raise ConfigurationError("--stream names a JetStream stream: give it with nats:// only")
    module_name, class_name = BROKERS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        extra = module_name.rsplit(".", 1)[-1]
        raise ConfigurationError(
            f"{scheme}:// brokers need {e.name}, which is not installed: "
            f"pip install 'facta[{extra}]'"
        ) from e
    options = {"prefix": prefix} if stream is None else {"prefix": prefix, "stream": stream}
    broker: object = getattr(module, class_name)(target, **options)
    if not isinstance(broker, Broker):
        raise TypeError(f"{module_name}.{class_name} is not a facta.publishing.Broker")
    return broker


def _existing(url: str) -> dict[str, object]:
    """The options ``open_store`` gives for ``Access.EXISTING``: never create a store."""
    return {"create": False} if "create" in backends.find(url).options else {}


@contextmanager
def _logging_to_stderr() -> Iterator[None]:
    """Show the relay's warnings (back-off, reconnects) on stderr while the command runs."""
    logger = logging.getLogger("facta.publishing")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)

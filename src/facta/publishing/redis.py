"""Redis Streams: a relay appends each event to one stream, with its checkpoint, exactly once;
an inbox reads it through a consumer group (:class:`RedisSource`).

Every event is one entry (``XADD``) of the stream ``<prefix>:events``, whose fields are
``event_id``, ``subject``, ``data`` (the stored bytes) and the facta headers. One stream keeps
the log's order for every consumer (``XREAD``, consumer groups) and the key count fixed; per
subject streams would mean one key per event stream, readable in order only one at a time.
The relay's checkpoint lives beside it, in ``<prefix>:relay:<relay>`` as
``transaction_id:position``.

A batch and its checkpoint are written by one Lua script, which Redis runs alone and
persists and replicates as one ``MULTI``/``EXEC`` block: all of it or none. The script skips
the messages at or before the checkpoint it finds, so a batch sent again (the relay died
before its store saved the checkpoint, or the reply to a script that ran was lost) adds
nothing; a relay resumes from :meth:`RedisBroker.checkpoint`. Redis gets each event once.

Needs the ``redis`` extra (redis-py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from facta.errors import ConfigurationError, FactaError
from facta.events import Checkpoint
from facta.publishing.broker import Broker, BrokerUnavailable, Message
from facta.publishing.source import Delivery, Source

__all__ = ["RedisBroker", "RedisSource"]

log = logging.getLogger("facta.publishing")

# KEYS: the stream, the relay's checkpoint. ARGV: maxlen ('' for none), the message count,
# then per message its checkpoint (transaction id, position), its field count and fields.
# Checkpoints are compared as decimal strings (length, then digits): exact past 2^53.
_PUBLISH = """
local function later(t1, p1, t2, p2)
  local function compare(a, b)
    if #a ~= #b then return #a < #b and -1 or 1 end
    for i = 1, #a do
      local x, y = string.byte(a, i), string.byte(b, i)
      if x ~= y then return x < y and -1 or 1 end
    end
    return 0
  end
  local c = compare(t1, t2)
  if c == 0 then c = compare(p1, p2) end
  return c > 0
end
local t, p = '0', '0'
local stored = redis.call('GET', KEYS[2])
if stored then
  t, p = string.match(stored, '^(%d+):(%d+)$')
  if not t then
    return redis.error_reply('CHECKPOINT ' .. stored)
  end
end
local maxlen, i, added = ARGV[1], 3, 0
for _ = 1, tonumber(ARGV[2]) do
  local mt, mp, first, last = ARGV[i], ARGV[i + 1], i + 3, i + 2 + tonumber(ARGV[i + 2])
  if later(mt, mp, t, p) then
    if maxlen == '' then
      redis.call('XADD', KEYS[1], '*', unpack(ARGV, first, last))
    else
      redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, first, last))
    end
    t, p, added = mt, mp, added + 1
  end
  i = last + 1
end
if added > 0 then redis.call('SET', KEYS[2], t .. ':' .. p) end
return added
"""

# Error codes of a Redis that is up but will not write now: waited out like an outage.
_REFUSING = {
    "BUSY",
    "CLUSTERDOWN",
    "LOADING",
    "MASTERDOWN",
    "MISCONF",
    "NOREPLICAS",
    "OOM",
    "READONLY",
    "TRYAGAIN",
}


class RedisBroker(Broker):
    """Appends a relay's events to the Redis stream ``<prefix>:events`` at ``url``
    (``redis://``, ``rediss://`` or ``unix://``); use it as an async context manager or give
    it to a relay.

    ``maxlen`` trims the stream to about that many entries (``XADD MAXLEN ~``; None keeps
    every entry). ``timeout`` bounds connecting and each command, in seconds. Keeps the
    relay's checkpoint with the stream (``keeps_checkpoints``): exactly once.
    """

    keeps_checkpoints = True

    def __init__(
        self,
        url: str,
        prefix: str = "facta",
        *,
        maxlen: int | None = None,
        timeout: float = 10.0,
    ) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"a Redis URL starts with redis://, rediss:// or unix://, got {_address(url)!r}"
            )
        if maxlen is not None and (not isinstance(maxlen, int) or maxlen < 1):
            raise ValueError(f"maxlen must be an int >= 1 or None, got {maxlen!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url, self.address, self.prefix = url, _address(url), prefix
        self.stream = f"{prefix}:events"
        self.maxlen, self.timeout = maxlen, timeout
        self._password = urlsplit(url).password or ""
        self._client: redis.asyncio.Redis | None = None
        self._script: AsyncScript | None = None

    def checkpoint_key(self, relay: str) -> str:
        """The key holding ``relay``'s checkpoint."""
        return f"{self.prefix}:relay:{relay}"

    async def open(self) -> None:
        """Connect and check that Redis answers (``PING``)."""
        client, _ = self._connect()
        try:
            await client.ping()
        except redis.exceptions.RedisError as e:
            raise self._error(e, "cannot connect to") from e

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        """Append the messages after ``relay``'s checkpoint and store the last one's, in one
        script: every message is in the stream when this returns, each once."""
        if not messages:
            return 0
        client, script = self._connect()
        arguments: list[str | bytes | int] = [
            "" if self.maxlen is None else self.maxlen,
            len(messages),
        ]
        for message in messages:
            fields: list[str | bytes] = [
                "event_id",
                message.event_id,
                "subject",
                message.subject,
                "data",
                message.data,
            ]
            for name, value in message.headers.items():
                fields += (name, value)
            arguments += (*message.checkpoint, len(fields), *fields)
        key = self.checkpoint_key(relay)
        try:
            added = await script(keys=[self.stream, key], args=arguments, client=client)
        except redis.exceptions.RedisError as e:
            raise self._error(e, f"cannot append to stream {self.stream!r} of", key) from e
        if added != len(messages):
            log.info(
                "relay %r: %d of %d messages were in Redis stream %r already (at or before "
                "the checkpoint in %r); they were not added again",
                relay,
                len(messages) - int(added),
                len(messages),
                self.stream,
                key,
            )
        return len(messages)

    async def checkpoint(self, relay: str) -> Checkpoint | None:
        """``relay``'s checkpoint as Redis has it, with the events it published; None if it
        published nothing here yet."""
        client, _ = self._connect()
        key = self.checkpoint_key(relay)
        try:
            stored = await client.get(key)
        except redis.exceptions.RedisError as e:
            raise self._error(e, f"cannot read checkpoint {key!r} from") from e
        if stored is None:
            return None
        text = stored.decode(errors="replace") if isinstance(stored, bytes) else stored
        transaction_id, colon, position = text.partition(":")
        if not (colon and transaction_id.isdigit() and position.isdigit()):
            raise self._not_a_checkpoint(key, text)
        return Checkpoint(int(transaction_id), int(position))

    async def close(self) -> None:
        """Disconnect; safe to call twice."""
        client, self._client, self._script = self._client, None, None
        if client is not None:
            try:
                await client.aclose()
            except (redis.exceptions.RedisError, OSError) as e:
                log.debug("closing the Redis connection to %s failed: %s", self.address, e)

    def _connect(self) -> tuple[redis.asyncio.Redis, AsyncScript]:
        """The client (it connects on first use, again after a lost connection) and the
        publishing script."""
        if self._client is None or self._script is None:
            # No retries of its own: the relay backs off (and says so) through outages.
            self._client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._script = self._client.register_script(_PUBLISH)
        return self._client, self._script

    def _error(
        self, error: redis.exceptions.RedisError, doing: str, key: str | None = None
    ) -> Exception:
        """BrokerUnavailable when Redis cannot be reached or refuses writes for now; otherwise
        an error the relay does not wait out (a key another program owns, a missing
        permission): a person decides."""
        text = str(error) or repr(error)
        if self._password:
            text = text.replace(self._password, "***")
        code = getattr(error, "status_code", None) or text.partition(" ")[0]
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
            code in _REFUSING
        ):
            return BrokerUnavailable(f"{doing} Redis at {self.address}: {text}")
        if code == "CHECKPOINT" and key is not None:  # the script's: 'CHECKPOINT <value>'
            return self._not_a_checkpoint(key, text.partition(" ")[2])
        if code == "WRONGTYPE":
            return ConfigurationError(
                f"{doing} Redis at {self.address}: {text}; {self.stream!r} is not a stream, "
                "another program uses it: choose another prefix"
            )
        return FactaError(f"{doing} Redis at {self.address}: {text}")

    def _not_a_checkpoint(self, key: str, value: str) -> ConfigurationError:
        return ConfigurationError(
            f"Redis key {key!r} at {self.address} holds {value!r}, not a relay's checkpoint "
            "(transaction_id:position); another program uses it: choose another prefix"
        )


def _address(url: str) -> str:
    """``scheme://user@host:port/db``: where the server is, without the password."""
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    user = user.partition(":")[0]
    if parts.scheme in ("redis", "rediss") and not host.rpartition(":")[2].isdigit():
        host = f"{host or 'localhost'}:6379"
    return f"{parts.scheme}://{user + '@' if user else ''}{host}{parts.path}"


class RedisSource(Source):
    """Reads the stream a :class:`RedisBroker` of the same ``prefix`` writes
    (``<prefix>:events`` at ``url``) through a consumer group, for an inbox.

    The group is named after the inbox unless ``group`` is given, and made when missing,
    reading from ``start``: ``"0"`` (every entry the stream holds) or ``"$"`` (only entries
    added after it was made; give the inbox ``join_midway`` then). ``consumer`` names this
    reader in the group. Entries are acknowledged (``XACK``) once the inbox committed them.
    An entry read but not acknowledged stays pending in the group: the source reads its own
    pending entries first when it opens (after a crash), claims those of other consumers of
    the group (``XAUTOCLAIM``: one inbox reads a group at a time, so they are dead), and reads
    them again once ``refuse``'s delay has passed. ``timeout`` bounds connecting and each
    command, in seconds.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "facta",
        *,
        group: str | None = None,
        consumer: str = "inbox",
        start: str = "0",
        timeout: float = 10.0,
    ) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigurationError(
                f"a Redis URL starts with redis://, rediss:// or unix://, got {_address(url)!r}"
            )
        if start not in ("0", "$"):
            raise ValueError(f"start must be '0' (every entry) or '$' (new ones), got {start!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        self.url, self.address, self.prefix = url, _address(url), prefix
        self.stream = f"{prefix}:events"
        self.group, self.consumer, self.start, self.timeout = group, consumer, start, timeout
        self._password = urlsplit(url).password or ""
        self._client: redis.asyncio.Redis | None = None
        self._group = group or ""
        self._pending: str | None = "0"  # reading our own pending entries, after this id
        self._again_at: float | None = None  # when refused entries are to be read again

    async def open(self, inbox: str) -> None:
        """Connect, make the group if missing, and claim what other consumers left pending."""
        await self.close()
        self._group = self.group or inbox
        self._client = client = redis.asyncio.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            try:
                await client.xgroup_create(self.stream, self._group, self.start, mkstream=True)
            except redis.exceptions.ResponseError as e:
                if not str(e).startswith("BUSYGROUP"):
                    raise
            claim_from = "0-0"
            while True:
                found: Any = await client.xautoclaim(
                    self.stream, self._group, self.consumer, 0, claim_from, count=1000
                )
                claim_from = _text(found[0])
                if claim_from == "0-0":
                    break
        except redis.exceptions.RedisError as e:
            await self.close()
            raise self._error(e, "cannot open consumer group") from e
        self._pending, self._again_at = "0", None

    async def receive(self, limit: int, wait: float) -> list[Delivery]:
        """Our own pending entries first (after opening, or when refused ones are due), then
        new ones (``XREADGROUP ... >``), waiting up to ``wait`` s for them."""
        client = self._connected()
        if self._again_at is not None and time.monotonic() >= self._again_at:
            self._pending, self._again_at = "0", None
        try:
            if self._pending is not None:
                found = await self._read(client, self._pending, limit, None)
                if found:
                    self._pending = _text(found[-1][0])
                    return await self._deliveries(client, found)
                self._pending = None
            block = int(min(wait, self.timeout / 2) * 1000)
            found = await self._read(client, ">", limit, block or None)
        except redis.exceptions.RedisError as e:
            raise self._error(e, "cannot read from") from e
        return await self._deliveries(client, found)

    async def _read(
        self, client: redis.asyncio.Redis, after: str, limit: int, block: int | None
    ) -> list[tuple[Any, Any]]:
        answer: Any = await client.xreadgroup(
            self._group, self.consumer, {self.stream: after}, count=limit, block=block
        )
        if not answer:
            return []
        if isinstance(answer, dict):  # RESP3
            return list(next(iter(answer.values()))[0])
        return list(answer[0][1])

    async def _deliveries(
        self, client: redis.asyncio.Redis, entries: list[tuple[Any, Any]]
    ) -> list[Delivery]:
        deliveries, gone = [], []
        for entry_id, fields in entries:
            if not fields:  # trimmed or deleted since it was read: nothing to deliver
                gone.append(entry_id)
                continue
            text = {_text(name): value for name, value in fields.items()}
            data = text.pop("data", b"")
            subject = _text(text.pop("subject", b""))
            text.pop("event_id", None)
            headers = {name: _text(value) for name, value in text.items()}
            deliveries.append(Delivery(subject, headers, bytes(data), entry_id))
        if gone:
            await client.xack(self.stream, self._group, *gone)
        return deliveries

    async def acknowledge(self, deliveries: Sequence[Delivery]) -> None:
        """``XACK`` the entries: they leave the group's pending list."""
        if not deliveries:
            return
        client = self._connected()
        try:
            await client.xack(self.stream, self._group, *(_entry_id(d) for d in deliveries))
        except redis.exceptions.RedisError as e:
            raise self._error(e, "cannot acknowledge entries of") from e

    async def refuse(self, deliveries: Sequence[Delivery], delay: float) -> None:
        """Leave them pending; read the pending entries again once ``delay`` passed."""
        if deliveries:
            due = time.monotonic() + delay
            self._again_at = due if self._again_at is None else min(self._again_at, due)

    async def close(self) -> None:
        """Disconnect; what was not acknowledged stays pending in the group."""
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (redis.exceptions.RedisError, OSError) as e:
                log.debug("closing the Redis connection to %s failed: %s", self.address, e)

    def _connected(self) -> redis.asyncio.Redis:
        if self._client is None:
            raise BrokerUnavailable(f"not connected to Redis at {self.address}")
        return self._client

    def _error(self, error: redis.exceptions.RedisError, doing: str) -> Exception:
        """BrokerUnavailable when waiting may mend it (Redis unreachable, refusing, or the
        group gone: opening again makes it); otherwise an error that stops the inbox."""
        text = str(error) or repr(error)
        if self._password:
            text = text.replace(self._password, "***")
        where = f"{doing} stream {self.stream!r} (group {self._group!r}) of Redis at {self.address}"
        code = text.partition(" ")[0]
        if isinstance(error, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError) or (
            code in _REFUSING or code == "NOGROUP"
        ):
            return BrokerUnavailable(f"{where}: {text}")
        if code == "WRONGTYPE":
            return ConfigurationError(
                f"{where}: {text}; {self.stream!r} is not a stream, another program uses it: "
                "give the source the prefix its relay publishes with"
            )
        return FactaError(f"{where}: {text}")


def _entry_id(delivery: Delivery) -> bytes | str:
    if not isinstance(delivery.receipt, bytes | str):
        raise TypeError(f"not a delivery of a RedisSource: {delivery.receipt!r}")
    return delivery.receipt


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

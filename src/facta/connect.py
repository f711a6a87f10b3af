"""Open an event store from a URL: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``.

The URL's scheme picks the backend (:mod:`facta.backends`, extensible through entry points);
keyword options go to the backend, except ``max_event_size`` and ``compress_above``, which
configure the codec, and ``keys`` and ``key_cache_seconds``, the key provider of personal data
(:mod:`facta.personal`) and how long the store keeps a data key it fetched.

>>> with connect("memory://") as store:
...     store.stream_version("nothing-here")
0
"""

from __future__ import annotations

from facta import backends
from facta.codec import Codec
from facta.errors import ConfigurationError
from facta.personal.keychain import DEFAULT_CACHE_SECONDS
from facta.personal.providers import KeyProvider
from facta.store import EventStore
from facta.store_async import AsyncEventStore

__all__ = ["connect", "connect_async"]

_CODEC_OPTIONS = ("max_event_size", "compress_above")
_KEY_OPTIONS = ("keys", "key_cache_seconds")


def connect(url: str, *, codec: Codec | None = None, **options: object) -> EventStore:
    """A sync event store for ``url``; use it as a context manager.

    Options depend on the backend (for example ``pool_size``, ``pool_timeout``, ``schema``
    and ``migrate`` on PostgreSQL; ``read_only`` and ``create`` everywhere); an unknown one
    raises ``ConfigurationError`` listing those that exist. ``keys`` is the key provider
    that events with personal fields need (``facta.personal.EnvKeyProvider(...)``, ...).
    """
    backend = backends.find(url)
    keys, cache = _keys(options)
    codec = _codec(url, backend, codec, options)
    return EventStore(backend.recorder(url, **options), codec, keys, key_cache_seconds=cache)


def connect_async(url: str, *, codec: Codec | None = None, **options: object) -> AsyncEventStore:
    """An async event store for ``url``; use it as an async context manager."""
    backend = backends.find(url)
    keys, cache = _keys(options)
    codec = _codec(url, backend, codec, options)
    recorder = backend.async_recorder(url, **options)
    return AsyncEventStore(recorder, codec, keys, key_cache_seconds=cache)


def _keys(options: dict[str, object]) -> tuple[KeyProvider | None, float]:
    """The ``keys`` and ``key_cache_seconds`` options (personal data), taken out of
    ``options``."""
    keys = options.pop("keys", None)
    if keys is not None and not isinstance(keys, KeyProvider):
        raise ConfigurationError(
            f"keys= takes a facta.personal.KeyProvider (EnvKeyProvider, FileKeyProvider, "
            f"KeyRing or your own subclass), got {type(keys).__qualname__}"
        )
    cache = options.pop("key_cache_seconds", DEFAULT_CACHE_SECONDS)
    if isinstance(cache, bool) or not isinstance(cache, int | float) or not cache >= 0:
        raise ConfigurationError(f"key_cache_seconds is a number of seconds >= 0, got {cache!r}")
    return keys, float(cache)


def _codec(
    url: str, backend: backends.Backend, codec: Codec | None, options: dict[str, object]
) -> Codec:
    """The store's codec; takes the codec's options out of ``options`` and checks the rest."""
    unknown = sorted(set(options) - set(backend.options) - set(_CODEC_OPTIONS))
    if unknown:
        known = ", ".join(sorted({*backend.options, *_CODEC_OPTIONS, "codec", *_KEY_OPTIONS}))
        raise ConfigurationError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for "
            f"{url.split('://', 1)[0]}:// stores; the options are: {known}"
        )
    settings = {name: options.pop(name) for name in _CODEC_OPTIONS if name in options}
    if codec is None:
        return Codec(**settings)  # type: ignore[arg-type]  # Codec checks the values
    if settings:
        raise ConfigurationError(
            f"give {' and '.join(settings)} to the Codec you pass, not beside it"
        )
    return codec

"""Personal fields: sealed per subject on every backend, forgotten for good, never an exception.

Each test opens its store with a key provider (the shared ``store`` fixtures have none); the
``url`` fixture runs it on memory, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import msgspec
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import facta
from facta.cli import main
from facta.personal import (
    STREAM,
    AesKeyProvider,
    EnvKeyProvider,
    FileKeyProvider,
    Forgotten,
    KeyRing,
    KeysUnavailable,
    MasterKeyError,
    NoKeyProvider,
    Personal,
    Subject,
    generate_master_key,
    is_forgotten,
)
from facta.personal.cipher import cipher, new_key
from facta.personal.data_keys import DataKey, DataKeys
from facta.projections import (
    OnError,
    Projection,
    ProjectionError,
    ProjectionRunner,
    add_inline,
    handles,
)
from facta.publishing import Broker, Message, Relay

# -- the model -------------------------------------------------------------------------------


@facta.event("personal_test.CustomerRegistered")
@dataclass(frozen=True)
class CustomerRegistered:
    customer_id: Annotated[str, Subject]
    email: Annotated[str, Personal]
    name: Annotated[str, Personal]
    plan: str


@facta.event("personal_test.AddressChanged")
class AddressChanged(msgspec.Struct, frozen=True):
    customer_id: Annotated[str, Subject]
    address: Annotated[dict[str, str], Personal]
    born: Annotated[date | None, Personal] = None


@facta.event("personal_test.Referred")
@dataclass(frozen=True)
class Referred:
    """Two subjects: the customer's note, and the referrer's name."""

    customer_id: Annotated[str, Subject]
    referrer_id: str
    referrer_name: Annotated[str, Personal(subject="referrer_id")]
    note: Annotated[str, Personal]


@facta.event("personal_test.Nicknamed")
class Nicknamed(msgspec.Struct, frozen=True, rename="camel"):
    """The subject is the stream; a renamed JSON key."""

    nick_name: Annotated[str, Personal(subject=STREAM)]


@facta.event("personal_test.Ordered")
@dataclass(frozen=True)
class Ordered:
    amount: int


@dataclass
class CustomerState:
    email: Annotated[str, Personal(subject=STREAM)]
    orders: int


class Customer(facta.Aggregate):
    """A customer whose stream id is its subject; snapshotted every 5 events."""

    type_name = "personal_test.Customer"
    snapshot_every = 5
    snapshot_type = CustomerState

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.email: object = ""
        self.orders = 0

    def apply(self, event: object) -> None:
        match event:
            case CustomerRegistered(email=email):
                self.email = email
            case Ordered():
                self.orders += 1

    def snapshot_state(self) -> CustomerState:
        assert isinstance(self.email, str)
        return CustomerState(self.email, self.orders)

    def restore_state(self, state: CustomerState) -> None:
        self.email, self.orders = state.email, state.orders


def registered(n: int) -> CustomerRegistered:
    return CustomerRegistered(f"c{n}", f"person{n}@example.org", f"Person Number{n}", "gold")


@pytest.fixture
def keys() -> AesKeyProvider:
    return AesKeyProvider(generate_master_key())


@pytest.fixture
def opened(url: str, keys: AesKeyProvider) -> Iterator[facta.EventStore]:
    with facta.connect(url, keys=keys) as store:
        yield store


def stored_bytes(store: facta.EventStore, readable: Callable[[facta.EventStore], None]) -> bytes:
    """Every stored event's data and metadata, and every snapshot state, as one blob."""
    readable(store)
    rows = store.recorder.read_all(facta.Checkpoint(), None, 100_000)
    blob = b"".join(row.data + row.metadata for row in rows)
    for stream_id, _ in store.streams():
        blob += b"".join(s.state for s in store.read_snapshots(stream_id))
    return blob


# -- sealing and opening -----------------------------------------------------------------------


def test_personal_fields_are_stored_sealed_and_read_back_as_appended(
    opened: facta.EventStore, readable: Callable[[facta.EventStore], None]
) -> None:
    events: list[object] = [
        registered(1),
        AddressChanged("c1", {"street": "1 Main St", "city": "Springfield"}, date(1990, 5, 17)),
        Referred("c1", "c2", "Referrer Two", "met at the fair"),
        Nicknamed("Shorty McShortface"),
        Ordered(3),
    ]
    opened.append("customer-1", events, facta.NO_STREAM)
    readable(opened)
    assert [e.data for e in opened.read_stream("customer-1")] == events
    assert [e.data for e in opened.read_all()] == events
    assert [e for page in opened.replay_stream("customer-1") for _, e in page] == events
    blob = stored_bytes(opened, readable)
    for secret in (b"person1@", b"Main St", b"1990-05-17", b"Referrer Two", b"fair", b"Shorty"):
        assert secret not in blob
    assert b"gold" in blob
    assert b'"amount":3' in blob


def test_a_forgotten_subjects_fields_read_as_forgotten_and_others_are_untouched(
    opened: facta.EventStore, readable: Callable[[facta.EventStore], None]
) -> None:
    opened.append("a", [registered(1), Referred("c1", "c2", "Referrer Two", "hi")], facta.NO_STREAM)
    opened.append("b", [registered(2), Nicknamed("Bee")], facta.NO_STREAM)
    assert opened.forget("c2") is True
    assert opened.forget("c2") is False  # twice is harmless
    assert opened.forget("b") is True  # Nicknamed's subject is its stream
    readable(opened)
    read = [e.data for e in opened.read_all()]
    assert read == [
        registered(1),
        Referred("c1", "c2", Forgotten, "hi"),  # type: ignore[arg-type]
        CustomerRegistered("c2", Forgotten, Forgotten, "gold"),  # type: ignore[arg-type]
        Nicknamed(Forgotten),  # type: ignore[arg-type]
    ]
    assert isinstance(read[2], CustomerRegistered)
    assert is_forgotten(read[2].email)


def test_forgetting_holds_for_other_stores_once_their_cached_key_expires(
    url: str, keys: AesKeyProvider
) -> None:
    if url == "memory://":
        pytest.skip("a memory store is one object: there is no other store to see it")
    with (
        facta.connect(url, keys=keys, key_cache_seconds=0) as reader,
        facta.connect(url, keys=keys) as writer,
    ):
        writer.append("s", [registered(7)], facta.NO_STREAM)
        assert next(iter(reader.read_stream("s"))).data.email == "person7@example.org"
        writer.forget("c7")
        assert next(iter(reader.read_stream("s"))).data.email is Forgotten


def test_a_subject_seen_again_after_forgetting_gets_a_new_key(opened: facta.EventStore) -> None:
    opened.append("s", [registered(3)], facta.NO_STREAM)
    opened.forget("c3")
    opened.append("s", [registered(3)], 1)
    first, second = (e.data for e in opened.read_stream("s"))
    assert first.email is Forgotten
    assert second == registered(3)


def test_loads_and_snapshots_of_a_forgotten_subject_hold_forgotten(
    opened: facta.EventStore, readable: Callable[[facta.EventStore], None]
) -> None:
    customers = facta.Repository(opened, Customer)
    customer = Customer("cust-9")
    customer.record(CustomerRegistered("cust-9", "nine@example.org", "Nine", "basic"))
    for _ in range(5):
        customer.record(Ordered(1))
    customers.save(customer)
    (snapshot,) = opened.read_snapshots("cust-9")
    assert b"nine@" not in snapshot.state
    assert snapshot.encoding & facta.codec.SEALED
    assert customers.load("cust-9").email == "nine@example.org"
    opened.forget("cust-9")
    loaded = customers.load("cust-9")  # from the snapshot, sealed under the stream's key
    assert (loaded.email, loaded.orders, loaded.version) == (Forgotten, 5, 6)
    assert [e.data.email for e in opened.read_stream("cust-9", 1, 1)] == [Forgotten]


async def test_the_async_store_seals_opens_and_forgets(url: str, keys: AesKeyProvider) -> None:
    async with facta.connect_async(url, keys=keys) as store:
        await store.append("s", [registered(4), registered(5)], facta.NO_STREAM)
        assert await store.forget("c4")
        read = [e.data async for e in store.read_stream("s")]
        pages = [e async for page in store.replay_stream("s") for _, e in page]
        assert (
            read
            == pages
            == [
                CustomerRegistered("c4", Forgotten, Forgotten, "gold"),  # type: ignore[arg-type]
                registered(5),
            ]
        )
        customers = facta.AsyncRepository(store, Customer)
        customer = Customer("cust-a")
        customer.record(CustomerRegistered("cust-a", "a@example.org", "A", "basic"))
        for _ in range(5):
            customer.record(Ordered(1))
        await customers.save(customer)
        await store.forget("cust-a")
        assert (await customers.load("cust-a")).email is Forgotten


async def test_racing_writers_of_a_new_subject_share_one_key(
    url: str, keys: AesKeyProvider
) -> None:
    if url == "memory://":
        pytest.skip("each memory:// store is another store")
    stores = [facta.connect_async(url, keys=keys) for _ in range(4)]
    try:
        await asyncio.gather(
            *(
                s.append(f"race-{i}", [registered(42)], facta.NO_STREAM)
                for i, s in enumerate(stores)
            )
        )
        for i in range(4):
            assert [e.data async for e in stores[0].read_stream(f"race-{i}")] == [registered(42)]
    finally:
        for s in stores:
            await s.close()


def test_pydantic_models_seal_their_personal_fields_by_alias(keys: AesKeyProvider) -> None:
    import pydantic

    class Signed(pydantic.BaseModel, frozen=True):
        customer_id: Annotated[str, Subject]
        email: Annotated[str, Personal] = pydantic.Field(alias="eMail")
        age: Annotated[int, Personal] = 0

    registry = facta.EventRegistry()
    registry.register(Signed, "Signed")
    with facta.connect("memory://", keys=keys, codec=facta.Codec(registry)) as store:
        signed = Signed(customer_id="c1", eMail="x@example.org", age=33)
        store.append("s", [signed], facta.NO_STREAM)
        assert b"x@example.org" not in store.recorder.read_stream("s", 1, 1, 1)[0].data
        assert [e.data for e in store.read_stream("s")] == [signed]
        store.forget("c1")
        (read,) = [e.data for e in store.read_stream("s")]
    assert (read.customer_id, read.email, read.age) == ("c1", Forgotten, Forgotten)


# -- keys: missing, wrong, rotated -------------------------------------------------------------


def test_a_store_without_a_key_provider_refuses_personal_fields_and_writes_nothing(
    url: str,
) -> None:
    with facta.connect(url) as store:
        with pytest.raises(NoKeyProvider, match=r"has personal fields.*keys=.*nothing was written"):
            store.append("s", [Ordered(1), registered(1)], facta.NO_STREAM)
        assert store.stream_version("s") == 0
        store.append("plain", [Ordered(1)], facta.NO_STREAM)  # other events as ever


def test_reading_sealed_fields_without_a_key_provider_says_what_to_do(
    url: str, keys: AesKeyProvider
) -> None:
    if url == "memory://":
        pytest.skip("a memory store is gone once closed")
    with facta.connect(url, keys=keys) as store:
        store.append("s", [registered(1)], facta.NO_STREAM)
    with facta.connect(url) as store, pytest.raises(KeysUnavailable) as raised:
        list(store.read_stream("s"))
    assert "stream 's' version 1" in str(raised.value)
    assert "without a key provider" in str(raised.value)
    assert isinstance(raised.value, facta.DecodeError)


def test_a_wrong_master_key_is_refused_before_anything_is_written(
    url: str, keys: AesKeyProvider
) -> None:
    if url == "memory://":
        pytest.skip("a memory store is gone once closed")
    with facta.connect(url, keys=keys) as store:
        store.append("s", [registered(1)], facta.NO_STREAM)
    wrong = AesKeyProvider(generate_master_key())
    with facta.connect(url, keys=wrong) as store:
        with pytest.raises(MasterKeyError, match=r"subject 'c1'.*master key"):
            list(store.read_stream("s"))
        with pytest.raises(MasterKeyError):  # a new subject: refused before its key is made
            store.append("t", [registered(2)], facta.NO_STREAM)
        assert store.stream_version("t") == 0
    same_id = AesKeyProvider(generate_master_key(), key_id=keys.key_id)  # a mistaken id
    with (
        facta.connect(url, keys=same_id) as store,
        pytest.raises(MasterKeyError, match="does not unwrap"),
    ):
        list(store.read_stream("s"))


def test_rotating_the_master_key_rewraps_every_data_key(url: str, keys: AesKeyProvider) -> None:
    if url == "memory://":
        pytest.skip("a memory store is gone once closed")
    new = AesKeyProvider(generate_master_key())
    with facta.connect(url, keys=keys) as store:
        for n in range(5):
            store.append(f"s{n}", [registered(n)], facta.NO_STREAM)
        store.forget("c0")
        assert store.rotate_master_key(new, batch_size=2) == 4
        assert store.rotate_master_key(new) == 0  # resumable: done keys are left
    with facta.connect(url, keys=keys) as store, pytest.raises(MasterKeyError):
        list(store.read_stream("s1"))
    with facta.connect(url, keys=KeyRing(new, keys)) as store:
        assert [e.data for e in store.read_stream("s1")] == [registered(1)]
        assert next(iter(store.read_stream("s0"))).data.email is Forgotten


def test_env_and_file_providers_read_the_application_s_master_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = generate_master_key()
    (tmp_path / "master.key").write_text(key + "\n")
    monkeypatch.setenv("TEST_FACTA_MASTER_KEY", key)
    from_file = FileKeyProvider(tmp_path / "master.key")
    from_env = EnvKeyProvider("TEST_FACTA_MASTER_KEY")
    assert from_file.key_id == from_env.key_id == AesKeyProvider(key).key_id
    assert key not in repr(from_file)
    assert key not in from_file.key_id
    wrapped = from_file.wrap(b"k" * 32, b"ctx")
    assert from_env.unwrap(wrapped, from_env.key_id, b"ctx") == b"k" * 32
    with pytest.raises(MasterKeyError):
        from_env.unwrap(wrapped, from_env.key_id, b"another subject")
    monkeypatch.setenv("TEST_FACTA_MASTER_KEY", "not a key")
    with pytest.raises(MasterKeyError, match="TEST_FACTA_MASTER_KEY is not a master key"):
        EnvKeyProvider("TEST_FACTA_MASTER_KEY")
    monkeypatch.delenv("TEST_FACTA_MASTER_KEY")
    with pytest.raises(MasterKeyError, match="is not set"):
        EnvKeyProvider("TEST_FACTA_MASTER_KEY")
    with pytest.raises(MasterKeyError, match="cannot read the master key file"):
        FileKeyProvider(tmp_path / "missing.key")


def test_connect_refuses_keys_that_are_not_a_key_provider() -> None:
    with pytest.raises(facta.ConfigurationError, match="KeyProvider"):
        facta.connect("memory://", keys=generate_master_key())


# -- markings that cannot work, values that cannot be stored -----------------------------------


@dataclass(frozen=True)
class NoSubject:
    email: Annotated[str, Personal]


@dataclass(frozen=True)
class Inner:
    email: Annotated[str, Personal(subject=STREAM)]


@dataclass(frozen=True)
class Nested:
    inner: list[Inner]


@dataclass(frozen=True)
class PersonalSubject:
    who: Annotated[str, Subject, Personal(subject="who")]


class Packed(msgspec.Struct, array_like=True):
    email: Annotated[str, Personal(subject=STREAM)]


def test_markings_that_cannot_work_are_refused_naming_the_field(keys: AesKeyProvider) -> None:
    registry = facta.EventRegistry()
    cases = {
        NoSubject: "names no subject",
        Nested: "only an event's own fields are sealed",
        PersonalSubject: "cannot be personal itself",
        Packed: "array_like",
    }
    for cls in cases:
        registry.register(cls, cls.__name__)
    with facta.connect("memory://", keys=keys, codec=facta.Codec(registry)) as store:
        for cls, message in cases.items():
            event = cls(*(["x"] if cls is not Nested else [[Inner("x")]]))
            with pytest.raises(facta.InvalidEvent, match=message):
                store.append("s", [event], facta.ANY)
        assert store.stream_version("s") == 0


def test_a_subject_that_is_no_id_is_refused(opened: facta.EventStore) -> None:
    for bad in ("", "a\x00b"):
        with pytest.raises(facta.InvalidEvent, match="a subject is a non-empty str"):
            opened.append("s", [CustomerRegistered(bad, "e", "n", "p")], facta.ANY)
    assert opened.stream_version("s") == 0


def test_a_forgotten_value_is_never_stored_again(opened: facta.EventStore) -> None:
    opened.append("s", [registered(1)], facta.NO_STREAM)
    opened.forget("c1")
    copy = next(iter(opened.read_stream("s"))).data
    with pytest.raises(facta.InvalidEvent, match=r"facta\.Forgotten"):
        opened.append("s", [copy], facta.ANY)
    assert opened.stream_version("s") == 1


# -- upcasters, projections, check, the command line ------------------------------------------


def test_upcasters_see_the_plain_value_or_forgotten(keys: AesKeyProvider) -> None:
    @dataclass(frozen=True)
    class Old:
        customer_id: Annotated[str, Subject]
        mail: Annotated[str, Personal]

    @dataclass(frozen=True)
    class New:
        customer_id: Annotated[str, Subject]
        email: Annotated[str, Personal]
        domain: str

    seen: list[object] = []

    def upcast(fields: dict[str, Any]) -> dict[str, Any]:
        mail = fields.pop("mail")
        seen.append(mail)
        domain = "" if mail is Forgotten else mail.split("@")[1]
        return {**fields, "email": mail, "domain": domain}

    old_registry, registry, upcasters = (
        facta.EventRegistry(),
        facta.EventRegistry(),
        facta.Upcasters(),
    )
    old_registry.register(Old, "Contact", 1)
    registry.register(New, "Contact", 2)
    upcasters.register("Contact", 1, upcast)
    with facta.connect("memory://", keys=keys, codec=facta.Codec(old_registry)) as store:
        store.append("s", [Old("c1", "ada@example.org"), Old("c2", "bob@example.org")], 0)
        store.codec = facta.Codec(registry, upcasters)
        store.forget("c2")
        read = [e.data for e in store.read_stream("s")]
    assert read == [New("c1", "ada@example.org", "example.org"), New("c2", Forgotten, "")]  # type: ignore[arg-type]
    assert seen == ["ada@example.org", Forgotten]


class Directory(Projection[sqlite3.Connection]):
    """A read model holding personal data: it must take Forgotten, and is rebuilt after a
    forget."""

    name = "personal_test_directory"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS directory (customer_id TEXT PRIMARY KEY, email TEXT)"
        )

    def reset(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM directory")

    @handles(CustomerRegistered)
    def registered(self, event: facta.RecordedEvent[CustomerRegistered], db: Any) -> None:
        email = None if is_forgotten(event.data.email) else event.data.email
        db.execute("INSERT INTO directory VALUES (?, ?)", (event.data.customer_id, email))


class Failing(Projection[Any]):
    name = "personal_test_failing"

    @handles(CustomerRegistered)
    def registered(self, event: facta.RecordedEvent[CustomerRegistered], db: Any) -> None:
        raise ValueError(f"cannot mail {event.data.email} ({event.data.name!r})")


def test_dead_letters_and_a_failed_projection_keep_no_personal_data(
    tmp_path: Path, keys: AesKeyProvider
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url, keys=keys) as store:
        store.append("s", [registered(1)], facta.NO_STREAM)
        with ProjectionRunner(store, Failing(), on_error=OnError.DEAD_LETTER) as runner:
            runner.catch_up()
            (parked,) = runner.dead_letters()
        assert "person1@" not in parked.error
        assert "<personal data>" in parked.error
        store.append("t", [registered(2)], facta.NO_STREAM)
        with ProjectionRunner(store, Failing()) as runner, pytest.raises(ProjectionError) as raised:
            runner.catch_up()
        assert "person2@" in str(raised.value)  # the caller sees it; the store keeps none
        status = {s.name: s for s in store.recorder.projection_statuses()}["personal_test_failing"]
    assert status.error is not None
    assert "person2@" not in status.error
    with sqlite3.connect(tmp_path / "events.db") as db:
        stored = repr(db.execute("SELECT * FROM facta_dead_letters, facta_projections").fetchall())
    assert "person1" not in stored
    assert "person2" not in stored


def test_projections_and_inline_projections_get_the_plain_values(
    tmp_path: Path, keys: AesKeyProvider
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    seen: list[object] = []

    class Inline(Projection[Any]):
        name = "personal_test_inline"

        @handles(CustomerRegistered)
        def registered(self, event: facta.RecordedEvent[CustomerRegistered], db: Any) -> None:
            seen.append(event.data.email)

    with facta.connect(url, keys=keys) as store:
        add_inline(store, Inline())
        store.append("s", [registered(1), registered(2)], facta.NO_STREAM)
        store.forget("c2")
        with ProjectionRunner(store, Directory()) as runner:
            runner.rebuild()
    assert seen == ["person1@example.org", "person2@example.org"]
    with sqlite3.connect(tmp_path / "events.db") as db:
        rows = db.execute("SELECT * FROM directory ORDER BY customer_id").fetchall()
    assert rows == [("c1", "person1@example.org"), ("c2", None)]


def test_subscriptions_open_sealed_fields(opened: facta.EventStore) -> None:
    opened.append("s", [registered(1)], facta.NO_STREAM)
    opened.forget("c1")
    opened.append("t", [registered(2)], facta.NO_STREAM)
    found: list[object] = []
    with opened.subscribe(poll_interval=0.05) as subscription:
        for event in subscription:
            found.append(event.data.email)
            if len(found) == 2:
                break
    assert found == [Forgotten, "person2@example.org"]


class Collect(Broker):
    """A broker that acknowledges everything and keeps it."""

    def __init__(self) -> None:
        self.received: list[Message] = []

    async def open(self) -> None:
        pass

    async def publish(self, relay: str, messages: Sequence[Message]) -> int:
        self.received.extend(messages)
        return len(messages)

    async def close(self) -> None:
        pass


async def test_relays_publish_the_sealed_bytes_of_forgotten_and_other_subjects(
    url: str,
    keys: AesKeyProvider,
    readable_async: Callable[[facta.AsyncEventStore], Awaitable[None]],
) -> None:
    async with facta.connect_async(url, keys=keys) as store:
        await store.append("s", [registered(1), registered(2)], facta.NO_STREAM)
        await store.forget("c1")
        await readable_async(store)
        broker = Collect()
        async with Relay(store, broker, name="personal_test_relay") as relay:
            assert await relay.catch_up() == 2
        stored = [row.data for row in await store.recorder.read_stream("s", 1, None, 10)]
    assert [m.data for m in broker.received] == stored
    assert [m.headers["Facta-Encoding"] for m in broker.received] == ["2", "2"]
    assert all(b"person" not in m.data for m in broker.received)


def test_check_reads_personal_fields_with_the_master_key_and_fails_without(
    tmp_path: Path, keys: AesKeyProvider
) -> None:
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url, keys=keys) as store:
        customers = facta.Repository(store, Customer)
        customer = Customer("cust-1")
        customer.record(registered(1))
        for _ in range(5):
            customer.record(Ordered(1))
        customers.save(customer)
        store.forget("c1")  # the event's subject, not the snapshot's (the stream)
        assert facta.check_store(store, [Customer]).ok
    with facta.connect(url) as store:
        report = facta.check_store(store, [Customer])
    assert not report.ok
    assert "without a key provider" in str(report.failures[0])


def test_the_command_line_forgets_rotates_and_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(main, ["keys", "new", "--file", "old.key"]).exit_code == 0
    assert runner.invoke(main, ["keys", "new", "--file", "new.key"]).exit_code == 0
    again = runner.invoke(main, ["keys", "new", "--file", "old.key"])
    assert again.exit_code == 2
    assert "never overwritten" in again.output
    assert len(runner.invoke(main, ["keys", "new"]).output.strip()) == 44
    url = f"sqlite:///{tmp_path / 'events.db'}"
    with facta.connect(url, keys=FileKeyProvider("old.key")) as store:
        store.append("s", [registered(1), registered(2)], facta.NO_STREAM)
    shown = runner.invoke(main, ["show", url, "s"])
    assert shown.exit_code == 0
    assert "$facta_sealed" in shown.output
    assert "person1" not in shown.output
    forgot = runner.invoke(main, ["forget", url, "c1"])
    assert forgot.exit_code == 0
    assert "forgot 'c1'" in forgot.output
    assert "has no data key" in runner.invoke(main, ["forget", url, "c1"]).output
    rotate = ["keys", "rotate", url, "--from-file", "old.key", "--to-file", "new.key"]
    rotated = runner.invoke(main, rotate)
    assert rotated.exit_code == 0
    assert "re-wrapped 1 data key " in rotated.output
    check = runner.invoke(main, ["check", url, "-i", __name__, "--keys-file", "new.key"])
    assert check.exit_code == 0, check.output
    wrong = runner.invoke(main, ["check", url, "-i", __name__, "--keys-file", "old.key"])
    assert wrong.exit_code == 2
    assert "cannot be unwrapped" in wrong.output
    with facta.connect(url, keys=FileKeyProvider("new.key")) as store:
        emails = [e.data.email for e in store.read_stream("s")]
    assert emails == [Forgotten, "person2@example.org"]


# -- another backend: the toy, through its key table -------------------------------------------


def test_a_third_party_backend_with_a_key_table_holds_personal_data(keys: AesKeyProvider) -> None:
    toy = importlib.import_module("toy_backend")  # tests/ is on the path under pytest
    with facta.EventStore(toy.ToyRecorder(), keys=keys) as store:
        store.append("s", [registered(1), registered(2)], facta.NO_STREAM)
        assert store.forget("c1")
        assert [e.data.email for e in store.read_all()] == [Forgotten, "person2@example.org"]
        assert store.rotate_master_key(AesKeyProvider(generate_master_key())) == 1


# -- properties ----------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@facta.event("personal_test.Anything")
@dataclass(frozen=True)
class Anything:
    who: Annotated[str, Subject]
    value: Annotated[Any, Personal]
    text: Annotated[str, Personal]
    plain: Any = None


_CODEC = facta.Codec(compress_above=64)
_KEY = DataKey("k", cipher(new_key()))


@settings(max_examples=200, deadline=None)
@given(
    who=st.text(min_size=1).filter(lambda s: "\x00" not in s),
    value=JSON,
    text=st.text(),
    plain=JSON,
)
def test_sealed_fields_read_back_equal_and_forgotten_ones_as_forgotten(
    who: str, value: Any, text: str, plain: Any
) -> None:
    event = Anything(who, value, text, plain)
    keys = DataKeys({who: _KEY})
    type_name, version, encoding, data = _CODEC.encode("stream", event, keys)
    assert encoding & facta.codec.SEALED
    opened = DataKeys(found={(who, "k"): _KEY})
    assert _CODEC.decode(type_name, version, encoding, data, keys=opened) == event
    forgotten = DataKeys(found={(who, "k"): None})
    read = _CODEC.decode(type_name, version, encoding, data, keys=forgotten)
    assert read == Anything(who, Forgotten, Forgotten, plain)  # type: ignore[arg-type]

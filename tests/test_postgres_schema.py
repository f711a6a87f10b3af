"""The PostgreSQL store's schema: migrations, the options that open it, stores side by side.

facta's tables are all named ``facta_*`` and ``facta_migrations`` alone says a schema holds a
store: a store lives beside an application's own ``events`` table, a 0.1 store is renamed by
migration 0002 with its data intact, and a ``facta_events`` table facta did not make is
refused.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg import sql

import facta
from facta.backends.postgres.migrations import latest_version, migrations
from facta.backends.postgres.recorder import PostgresRecorder
from facta.backends.postgres.settings import split_url
from facta.codec import Codec
from facta.errors import (
    ConfigurationError,
    NotAFactaStore,
    SchemaVersionError,
    StoreError,
)
from facta.events import EMPTY_METADATA, Checkpoint
from facta.projections import Projection, ProjectionRunner
from facta.snapshots import SnapshotRecord, checksum
from facta.testing.events import Happened

pytestmark = pytest.mark.postgres

ALL = list(range(1, latest_version() + 1))  # every migration, in order
PATIENCE = 60.0  # seconds a read waits for other sessions' transactions to end
FACTA_TABLES = {
    "facta_migrations",
    "facta_streams",
    "facta_events",
    "facta_snapshots",
    "facta_projections",
    "facta_dead_letters",
    "facta_data_keys",
    "facta_inbox_streams",
    "facta_inbox_held",
    "facta_sliced_projections",
    "facta_slice_leases",
    "facta_projection_workers",
}

# facta 0.1's schema, as its 0001_events.sql created it (formatted with {schema}) ...
V0_1_LAYOUT = """-- facta PostgreSQL schema, version 1: streams, the events table (the global log), snapshots.
-- {schema} stands for the store's quoted schema name (a literal brace would have to be doubled).

-- One row per stream: its current version. An append locks its stream's row first, so
-- writers of one stream queue up here: the loser of a race sees the winner's version and
-- never inserts an event (never burns a position).
CREATE TABLE {schema}.streams (
    stream_id text COLLATE "C" NOT NULL PRIMARY KEY,  -- "C": code point order, as in Python
    version   bigint NOT NULL
) WITH (fillfactor = 70);  -- room for HOT updates: the version changes on every append

CREATE TABLE {schema}.events (
    transaction_id bigint NOT NULL,  -- the writer's pg_current_xact_id()
    position       bigint GENERATED ALWAYS AS IDENTITY,
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,  -- 1, 2, 3 ... per stream, no gaps
    event_id       uuid NOT NULL,
    type           text COLLATE "C" NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,  -- codec stages: 0 plain JSON, 1 zlib
    data           bytea NOT NULL,
    metadata       bytea NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- The global log is read in (transaction_id, position) order; see the store's read_all.
    CONSTRAINT events_pkey PRIMARY KEY (transaction_id, position),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE TABLE {schema}.snapshots (
    stream_id      text COLLATE "C" NOT NULL,
    version        bigint NOT NULL,
    aggregate_type text NOT NULL,
    schema_version integer NOT NULL,
    encoding       smallint NOT NULL,
    checksum       bigint NOT NULL,
    state          bytea NOT NULL,
    PRIMARY KEY (stream_id, version)
);
"""
# ... and the projection tables its runners created on first use.
V0_1_PROJECTIONS = """
CREATE TABLE {schema}.projection_checkpoints (
    name text PRIMARY KEY, transaction_id bigint NOT NULL, position bigint NOT NULL,
    state text NOT NULL, types text[] NOT NULL, error text,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {schema}.projection_dead_letters (
    projection text NOT NULL, transaction_id bigint NOT NULL, position bigint NOT NULL,
    stream_id text NOT NULL, version bigint NOT NULL, event_id uuid NOT NULL, type text NOT NULL,
    error text NOT NULL, failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, transaction_id, position)
)"""


class Nothing(Projection[Any]):
    name = "nothing"


# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def url(postgres_url: str, pg_schema: str) -> str:
    return f"{postgres_url}?schema={pg_schema}"


@pytest.fixture
def other_schema(postgres_url: str) -> Iterator[str]:
    """A second private schema, dropped after the test."""
    name = f"facta_test_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def run(postgres_url: str, schema: str, statements: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run SQL (``{schema}`` stands for the quoted schema) in one transaction; the last rows."""
    with psycopg.connect(postgres_url) as conn:
        cur = conn.execute(sql.SQL(statements).format(schema=sql.Identifier(schema)), params)
        return cur.fetchall() if cur.description else []


def relations(postgres_url: str, schema: str) -> set[str]:
    """Every table, index and sequence in ``schema`` (none if it does not exist)."""
    rows = run(
        postgres_url,
        schema,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s",
        schema,
    )
    return {row[0] for row in rows}


def tables(postgres_url: str, schema: str) -> set[str]:
    rows = run(
        postgres_url,
        schema,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
        schema,
    )
    return {row[0] for row in rows}


def schema_exists(postgres_url: str, schema: str) -> bool:
    return bool(run(postgres_url, schema, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema))


def versions(postgres_url: str, schema: str) -> list[int]:
    rows = run(postgres_url, schema, "SELECT version FROM {schema}.facta_migrations ORDER BY 1")
    return [row[0] for row in rows]


def migrate(url: str) -> list[int]:
    """What ``facta migrate URL`` does: open without migrating, then apply the migrations."""
    with facta.connect(url, migrate=False) as store:
        return pg(store).migrate()


def pg(store: facta.EventStore) -> PostgresRecorder:
    assert isinstance(store.recorder, PostgresRecorder)
    return store.recorder


def readable(store: facta.EventStore) -> facta.EventStore:
    """``store``, once its global log shows every committed event (see wait_until_readable)."""
    assert pg(store).wait_until_readable(PATIENCE), pg(store).reader_lag()
    return store


# -- migrations ---------------------------------------------------------------------------------


def test_0001_is_facta_0_1s_layout_unchanged_and_the_others_follow() -> None:
    assert [number for number, _ in migrations()] == ALL
    assert ALL[:3] == [1, 2, 3]
    assert migrations()[0][1] == V0_1_LAYOUT


def test_migrate_creates_the_schema_and_returns_the_versions_it_applied(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    assert migrate(url) == ALL
    assert tables(postgres_url, pg_schema) == FACTA_TABLES
    assert versions(postgres_url, pg_schema) == ALL


def test_migrate_of_an_up_to_date_schema_applies_nothing(url: str) -> None:
    migrate(url)
    assert migrate(url) == []


def test_migrations_run_from_many_threads_at_once_apply_each_version_once(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    start = threading.Barrier(4)

    def run_one() -> list[int]:
        start.wait()
        return migrate(url)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run_one(), range(4)))
    assert sorted(results) == [[], [], [], ALL]
    assert versions(postgres_url, pg_schema) == ALL


def test_a_store_migrates_its_schema_on_first_use(url: str) -> None:
    with facta.connect(url) as store:
        store.append("s", [Happened(1)], facta.ANY)
    assert migrate(url) == []


def test_a_store_connects_only_when_first_used(url: str, postgres_url: str, pg_schema: str) -> None:
    with facta.connect(url):
        pass
    assert not schema_exists(postgres_url, pg_schema)


def test_a_store_refuses_a_schema_newer_than_it_knows_naming_both_versions(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    migrate(url)
    run(postgres_url, pg_schema, "INSERT INTO {schema}.facta_migrations (version) VALUES (999)")
    with (
        facta.connect(url) as store,
        pytest.raises(SchemaVersionError, match=rf"version 999.* up to {latest_version()}"),
    ):
        store.stream_version("s")
    with pytest.raises(SchemaVersionError, match="999"):
        migrate(url)


def test_a_store_told_not_to_migrate_refuses_an_empty_schema_and_creates_nothing(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    with (
        facta.connect(url, migrate=False) as store,
        pytest.raises(SchemaVersionError, match="run `facta migrate URL`"),
    ):
        store.stream_version("s")
    assert not schema_exists(postgres_url, pg_schema)


def test_a_store_told_not_to_migrate_uses_a_migrated_schema(url: str) -> None:
    migrate(url)
    with facta.connect(url, migrate=False) as store:
        assert store.append("s", [Happened(1)], facta.ANY).version == 1


# -- the URL and its schema ---------------------------------------------------------------------


def test_the_schema_option_wins_over_the_url_parameter(postgres_url: str, pg_schema: str) -> None:
    with facta.connect(f"{postgres_url}?schema=ignored", schema=pg_schema) as store:
        assert pg(store).schema == pg_schema


def test_the_default_schema_is_public(postgres_url: str) -> None:
    with facta.connect(postgres_url) as store:
        assert pg(store).schema == "public"


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_facta_connect_opens_a_postgres_store_in_the_urls_schema(
    scheme: str, postgres_url: str, pg_schema: str
) -> None:
    url = f"{scheme}://{postgres_url.split('://', 1)[1]}?schema={pg_schema}"
    with facta.connect(url) as store:
        assert pg(store).schema == pg_schema
        store.append("s", [Happened(1)], facta.ANY)


def test_the_schema_parameter_leaves_the_url_and_other_parameters_stay() -> None:
    conninfo, schema = split_url(
        "postgresql://u:p%40ss@h:5433/db?application_name=a%20b&schema=s1&sslmode=disable"
    )
    assert schema == "s1"
    assert conninfo == "postgresql://u:p%40ss@h:5433/db?application_name=a%20b&sslmode=disable"


def test_the_location_names_host_database_and_schema_but_no_user_or_password() -> None:
    with facta.connect("postgresql://u:secret@h:5433/db?schema=s1") as store:
        assert store.recorder.location == "postgresql://h:5433/db?schema=s1"


def test_a_schema_name_too_long_for_postgresql_is_refused(postgres_url: str) -> None:
    with pytest.raises(ConfigurationError, match="63 bytes"):
        facta.connect(postgres_url, schema="s" * 64)


def test_a_schema_name_with_quotes_and_sql_is_only_a_name(
    postgres_url: str, pg_schema: str
) -> None:
    weird = f'{pg_schema}"; DROP TABLE x; --'
    try:
        with facta.connect(postgres_url, schema=weird) as store:
            store.append("s", [Happened(1)], facta.ANY)
            assert [e.data for e in store.read_stream("s")] == [Happened(1)]
        assert tables(postgres_url, weird) == FACTA_TABLES
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(weird)))


def test_stores_in_two_schemas_of_one_database_do_not_see_each_other(
    url: str, postgres_url: str, other_schema: str
) -> None:
    with facta.connect(url) as one, facta.connect(postgres_url, schema=other_schema) as two:
        one.append("shared-id", [Happened(1)], facta.ANY)
        two.append("shared-id", [Happened(2), Happened(3)], facta.ANY)
        assert [e.data.n for e in readable(one).read_all()] == [1]
        assert [e.data.n for e in two.read_stream("shared-id")] == [2, 3]
        assert list(one.streams()) == [("shared-id", 1)]


def test_an_unreachable_server_raises_store_error_naming_it_without_the_password() -> None:
    with (
        facta.connect("postgresql://u:secret@127.0.0.1:1/db") as store,
        pytest.raises(StoreError, match=re.escape("127.0.0.1:1/db")) as raised,
    ):
        store.stream_version("s")
    assert "secret" not in str(raised.value)


# -- options ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pool_size": 0}, "pool_size must be an int >= 1"),
        ({"pool_size": True}, "pool_size must be an int >= 1"),
        ({"pool_timeout": 0}, "pool_timeout must be a number of seconds > 0"),
        ({"pool_timeout": float("inf")}, "pool_timeout must be a number of seconds > 0"),
        ({"lock_timeout": -1}, "lock_timeout must be a number of seconds >= 0"),
        ({"lock_timeout": float("nan")}, "lock_timeout must be a number of seconds >= 0"),
        ({"lock_timeout": "5s"}, "lock_timeout must be a number of seconds >= 0"),
        ({"migrate": "yes"}, "migrate must be True or False"),
        ({"create": 1}, "create must be True or False"),
        ({"read_only": None}, "read_only must be True or False"),
        ({"schema": ""}, "schema name must be a non-empty str"),
        ({"read_only": True, "create": True}, "read_only=True opens an existing store"),
        ({"read_only": True, "migrate": True}, "read_only=True never migrates"),
        ({"poolsize": 3}, "unknown option poolsize .* pool_size, pool_timeout, read_only"),
    ],
)
def test_a_bad_option_is_a_configuration_error_saying_which(
    options: dict[str, Any], message: str, postgres_url: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        facta.connect(postgres_url, **options)
    with pytest.raises(ConfigurationError, match=message):
        facta.connect_async(postgres_url, **options)


def test_a_url_libpq_cannot_parse_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a valid PostgreSQL URL"):
        facta.connect("postgresql://h/db?no_such_parameter=1")


def test_without_psycopg_opening_a_store_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)  # import psycopg_pool fails
    with pytest.raises(StoreError, match=re.escape("pip install 'facta[postgres]'")):
        facta.connect("postgresql://h/db")


def test_importing_the_backend_imports_no_driver() -> None:
    code = "import sys, facta.backends.postgres; print('psycopg' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("options", [{"read_only": True}, {"create": False}])
def test_opening_a_missing_schema_without_create_raises_not_a_facta_store_creating_nothing(
    options: dict[str, Any], url: str, postgres_url: str, pg_schema: str
) -> None:
    with facta.connect(url, **options) as store, pytest.raises(NotAFactaStore) as raised:
        store.stream_version("s")
    message = str(raised.value)
    assert "not a facta store" in message
    assert pg(store).location in message  # host, port, database and schema
    assert pg_schema in message
    assert not schema_exists(postgres_url, pg_schema)
    assert relations(postgres_url, pg_schema) == set()


def test_migrate_with_create_false_makes_no_store(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    with facta.connect(url, create=False, migrate=False) as store, pytest.raises(NotAFactaStore):
        pg(store).migrate()
    assert not schema_exists(postgres_url, pg_schema)


def test_read_only_on_a_schema_of_other_tables_raises_not_a_facta_store_touching_nothing(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    run(postgres_url, pg_schema, "CREATE SCHEMA {schema}; CREATE TABLE {schema}.events (id int)")
    before = relations(postgres_url, pg_schema)
    with facta.connect(url, read_only=True) as store, pytest.raises(NotAFactaStore):
        list(store.streams())
    with facta.connect(url, create=False) as store, pytest.raises(NotAFactaStore):
        store.append("s", [Happened(1)], facta.ANY)
    assert relations(postgres_url, pg_schema) == before == {"events"}


def test_create_false_opens_an_existing_store(url: str) -> None:
    migrate(url)
    with facta.connect(url, create=False) as store:
        assert store.append("s", [Happened(1)], facta.ANY).version == 1


def test_a_read_only_store_reads_an_existing_store(url: str) -> None:
    with facta.connect(url) as store:
        store.append("s", [Happened(1), Happened(2)], facta.ANY)
    with facta.connect(url, read_only=True) as store:
        assert [e.data.n for e in store.read_stream("s")] == [1, 2]
        assert list(store.streams()) == [("s", 2)]
        assert [e.data.n for e in readable(store).read_all()] == [1, 2]
        assert pg(store).projection_statuses() == []
        assert pg(store).wait_for_events(0) is True


def test_a_read_only_store_refuses_every_write_and_writes_nothing(url: str) -> None:
    with facta.connect(url) as store:
        store.append("s", [Happened(1)], facta.ANY)
    state = b"state"
    snapshot = SnapshotRecord("s", 1, "Agg", 1, 0, checksum(state), state)
    with facta.connect(url, read_only=True) as store:
        recorder = pg(store)
        refusals: list[Callable[[], object]] = [
            lambda: store.append("s", [Happened(2)], facta.ANY),
            lambda: store.append("t", [Happened(2)], facta.ANY),
            lambda: store.write_snapshot(snapshot),
            lambda: recorder.migrate(),
            lambda: recorder.transaction().__enter__(),
            lambda: ProjectionRunner(store, Nothing()).open(),
        ]
        for refused in refusals:
            with pytest.raises(StoreError, match="read-only"):
                refused()
        with recorder.connection() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute(
                sql.SQL("DELETE FROM {}").format(sql.Identifier(recorder.schema, "facta_events"))
            )
        assert list(store.streams()) == [("s", 1)]
        assert store.read_snapshots("s") == []


# -- a 0.1 store --------------------------------------------------------------------------------


def make_0_1_store(postgres_url: str, schema: str, *, projections: bool) -> list[uuid.UUID]:
    """A store as facta 0.1 left it: two events, a snapshot, and (if asked) a projection's
    checkpoint and a dead letter. The ids of its events."""
    codec = Codec()
    rows = []
    for version, n in ((1, 1), (2, 2)):
        type_name, schema_version, encoding, data = codec.encode("s", Happened(n))
        metadata = codec.encode_metadata("s", EMPTY_METADATA)
        rows.append((version, uuid.uuid4(), type_name, schema_version, encoding, data, metadata))
    state = b'{"n": 2}'
    with psycopg.connect(postgres_url) as conn:
        schema_id = sql.Identifier(schema)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(schema_id))
        conn.execute(sql.SQL(V0_1_LAYOUT).format(schema=schema_id))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {schema}.facta_migrations (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now());"
                " INSERT INTO {schema}.facta_migrations (version) VALUES (1);"
                " INSERT INTO {schema}.streams VALUES ('s', 2)"
            ).format(schema=schema_id)
        )
        for row in rows:
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.events (transaction_id, stream_id, version, event_id, type,"
                    " schema_version, encoding, data, metadata)"
                    " VALUES (pg_current_xact_id()::text::bigint, 's', %s, %s, %s, %s, %s, %s, %s)"
                ).format(schema_id),
                row,
            )
        conn.execute(
            sql.SQL("INSERT INTO {}.snapshots VALUES ('s', 2, 'Agg', 1, 0, %s, %s)").format(
                schema_id
            ),
            [checksum(state), state],
        )
        if projections:
            conn.execute(sql.SQL(V0_1_PROJECTIONS).format(schema=schema_id))
            conn.execute(
                sql.SQL(
                    "INSERT INTO {schema}.projection_checkpoints"
                    " SELECT 'totals', transaction_id, position, 'stopped', %s, NULL, now()"
                    " FROM {schema}.events WHERE version = 1"
                ).format(schema=schema_id),
                [[rows[0][2]]],
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO {schema}.projection_dead_letters"
                    " SELECT 'totals', transaction_id, position, stream_id, version, event_id,"
                    " type, 'it failed', now() FROM {schema}.events WHERE version = 1"
                ).format(schema=schema_id)
            )
    return [row[1] for row in rows]


@pytest.mark.parametrize("projections", [True, False], ids=["with-projections", "events-only"])
def test_a_0_1_store_is_renamed_by_migration_0002_with_its_data_intact(
    projections: bool, url: str, postgres_url: str, pg_schema: str
) -> None:
    ids = make_0_1_store(postgres_url, pg_schema, projections=projections)
    with facta.connect(url) as store:
        assert [(e.version, e.event_id, e.data.n) for e in store.read_stream("s")] == [
            (1, ids[0], 1),
            (2, ids[1], 2),
        ]
        assert list(store.streams()) == [("s", 2)]
        assert [e.event_id for e in readable(store).read_all()] == ids
        assert [(s.version, s.state) for s in store.read_snapshots("s")] == [(2, b'{"n": 2}')]
        result = store.append("s", [Happened(3)], expected_version=2)
        assert (result.version, result.position) == (3, 3)  # positions go on where they were
        (first,) = store.read_stream("s", 1, 1)
        with pytest.raises(facta.errors.DuplicateEventId, match=str(ids[0])):
            store.append("t", [facta.NewEvent(Happened(9), event_id=ids[0])], facta.ANY)
        statuses = pg(store).projection_statuses()
        checkpoints = pg(store).checkpoints("totals")
        checkpoints.open(wait=False, poll_interval=0.01)
        try:
            parked = checkpoints.dead_letters()
        finally:
            checkpoints.close()
    assert tables(postgres_url, pg_schema) == FACTA_TABLES
    assert versions(postgres_url, pg_schema) == ALL
    if projections:
        assert [(s.name, s.checkpoint, s.lag) for s in statuses] == [
            ("totals", first.checkpoint, 2)
        ]
        assert [(d.event_id, d.error) for d in parked] == [(ids[0], "it failed")]
    else:
        assert (statuses, parked) == ([], [])


@pytest.mark.parametrize("options", [{"migrate": False}, {"read_only": True}])
def test_a_0_1_store_opened_without_migrating_asks_for_facta_migrate_and_stays_as_it_was(
    options: dict[str, Any], url: str, postgres_url: str, pg_schema: str
) -> None:
    make_0_1_store(postgres_url, pg_schema, projections=True)
    before = relations(postgres_url, pg_schema)
    with (
        facta.connect(url, **options) as store,
        pytest.raises(SchemaVersionError, match=r"version 1, .* run `facta migrate URL`"),
    ):
        store.stream_version("s")
    assert relations(postgres_url, pg_schema) == before
    assert migrate(url) == ALL[1:]


# -- other tables in the store's schema ---------------------------------------------------------

APPLICATION_TABLES = """
CREATE SCHEMA {schema};
CREATE TABLE {schema}.events (id serial PRIMARY KEY, what text NOT NULL);
CREATE TABLE {schema}.streams (name text PRIMARY KEY);
CREATE TABLE {schema}.snapshots (taken date);
CREATE TABLE {schema}.projection_checkpoints (name text);
INSERT INTO {schema}.events (what) VALUES ('launch'), ('landing');
INSERT INTO {schema}.streams VALUES ('river');
INSERT INTO {schema}.projection_checkpoints VALUES ('mine')"""
APPLICATION_ROWS = """
SELECT (SELECT array_agg(what ORDER BY id) FROM {schema}.events),
       (SELECT array_agg(name) FROM {schema}.streams),
       (SELECT count(*) FROM {schema}.snapshots),
       (SELECT array_agg(name) FROM {schema}.projection_checkpoints)"""


def test_a_store_shares_its_schema_with_an_applications_own_events_tables(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    run(postgres_url, pg_schema, APPLICATION_TABLES)
    before = relations(postgres_url, pg_schema)
    with facta.connect(url) as store:
        store.append("s", [Happened(1), Happened(2)], facta.ANY)
        assert [e.data.n for e in readable(store).read_all()] == [1, 2]
        assert list(store.streams()) == [("s", 2)]
    assert run(postgres_url, pg_schema, APPLICATION_ROWS) == [
        (["launch", "landing"], ["river"], 0, ["mine"])
    ]
    assert tables(postgres_url, pg_schema) == FACTA_TABLES | {
        "events",
        "streams",
        "snapshots",
        "projection_checkpoints",
    }
    assert before < relations(postgres_url, pg_schema)
    assert versions(postgres_url, pg_schema) == ALL
    assert (
        run(postgres_url, pg_schema, "SELECT 1 FROM pg_namespace WHERE nspname ~ '^facta_scratch_'")
        == []
    )


def layout(postgres_url: str, schema: str) -> set[tuple[Any, ...]]:
    """facta's tables in ``schema``: every column and constraint, with its definition."""
    columns = run(
        postgres_url,
        schema,
        "SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity,"
        " collation_name FROM information_schema.columns"
        " WHERE table_schema = %s AND table_name LIKE 'facta\\_%%'",
        schema,
    )
    constraints = run(
        postgres_url,
        schema,
        "SELECT t.relname, c.conname, pg_get_constraintdef(c.oid)"
        " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " WHERE n.nspname = %s AND t.relname LIKE 'facta\\_%%'",
        schema,
    )
    return {(*row[:4], (row[4] or "").replace(schema, "S"), *row[5:]) for row in columns} | {
        (*row[:2], row[2].replace(schema, "S"))
        for row in constraints  # foreign keys name it
    }


def test_a_store_built_beside_other_tables_has_the_layout_of_one_built_alone(
    url: str, postgres_url: str, pg_schema: str, other_schema: str
) -> None:
    run(postgres_url, pg_schema, APPLICATION_TABLES)
    migrate(url)
    migrate(f"{postgres_url}?schema={other_schema}")
    beside, alone = layout(postgres_url, pg_schema), layout(postgres_url, other_schema)
    assert beside == alone
    assert ("facta_events", "facta_events_event_id_key", "UNIQUE (event_id)") in alone


def test_a_facta_events_table_facta_did_not_make_is_refused_and_left_alone(
    url: str, postgres_url: str, pg_schema: str
) -> None:
    run(
        postgres_url,
        pg_schema,
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.facta_events (x int)",
    )
    every: list[dict[str, Any]] = [{}, {"read_only": True}, {"create": False}]
    for options in every:
        with facta.connect(url, **options) as store, pytest.raises(NotAFactaStore) as raised:
            store.stream_version("s")
        for words in ("not a facta store", "facta_events table", "not facta's", "?schema="):
            assert words in str(raised.value)
    with pytest.raises(NotAFactaStore, match="facta did not make"):
        migrate(url)
    assert relations(postgres_url, pg_schema) == {"facta_events"}


def test_checkpoints_of_an_unknown_projection_start_at_the_beginning(url: str) -> None:
    with facta.connect(url) as store:
        checkpoints = pg(store).checkpoints("never-ran")
        checkpoints.open(wait=False, poll_interval=0.01)
        try:
            assert checkpoints.start("running", ("t",)) == Checkpoint()
        finally:
            checkpoints.close()

"""Growth on one node: W1 and W3 as the events table grows to 1M and 10M events (issue 13).

    python bench/growth.py                           # 0, 1,000,000 and 10,000,000 stored events
    python bench/growth.py --sizes 0,2000000 --repeats 5
    python bench/growth.py --smoke                   # 0 and 2,000 events, tiny trials

Runs on a private PostgreSQL server (``facta.testing.clusters``) with PostgreSQL's own durable
defaults (fsync and synchronous commit on), except ``shared_buffers`` (1GB, not 128MB) and
``max_wal_size`` (8GB, not 1GB, so that the fill is not one checkpoint after another); the
output says which. One facta store; before any fill, facta appends the W3 aggregates (100 and
10,000 events) and a template stream. Then, for each size in turn, the store is filled up to it
in SQL (bench/growth_fill.py: streams of 100 events, UUIDv7-shaped ids, facta's indexes in
place), checked through facta, vacuumed and analyzed, checkpointed, and measured:

- W1: facta appends one event to each of ``--w1`` new aggregates (bench/facta_systems.py's W1),
  and the raw baseline INSERTs as many rows (bench/raw_systems.py's RawPsycopg W1, with UUIDv7
  event ids as facta's: see RawV7), both into the same grown table: the raw INSERT goes
  through a view of facta's events table;
- W3: facta loads the 10,000- and the 100-event aggregate; the raw baseline fetches the same
  rows and decodes them (RawPsycopg's W3);
- poll: a caught-up ``read_all`` that finds nothing (a subscriber's poll), and the same while a
  transaction that started before the newest append is open (the horizon query then probes
  ``max(transaction_id)`` and looks at the server's sessions); ``reader_lag()``; and
  ``projection_statuses()`` with one projection, caught up.

Trials alternate facta and raw (the order rotates every repeat); each figure is the median.
Each row of the table gives the figures at that size with, in brackets, the ratio to the size-0
figure (events/s: above 1 is faster; ms: above 1 is slower). A second table gives the fill time,
the vacuum and checkpoint after it, and the table, index and disk sizes. W1's rows stay in the
table: the sizes are the filled events, plus the template, W3 and earlier trials' events.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

import facta
from bench.facta_systems import Cart, FactaSync
from bench.growth_fill import Filler, Template, check_filled
from bench.model import Sizes
from bench.raw_systems import RawPsycopg
from bench.report import machine
from facta.backends.postgres.queries import Queries
from facta.events import Checkpoint
from facta.ids import uuid7
from facta.testing.clusters import Cluster, private_cluster

SCHEMA = "growth"  # the store that grows
CONTROL = "growth_control"  # a store that stays small, measured alongside it
SETTINGS = {"shared_buffers": "1GB", "max_wal_size": "8GB"}
SMOKE_SETTINGS = {"shared_buffers": "128MB", "max_wal_size": "1GB"}
W3_LENGTHS = (10_000, 100)
CASES = ("W1", "W3-10000", "W3-100")
_LAST_VERSION = 2**62  # the recorder's bound for a load to the end
_STARTED = time.monotonic()


def _say(message: str) -> None:
    minutes, seconds = divmod(int(time.monotonic() - _STARTED), 60)
    print(f"[{minutes:2d}:{seconds:02d}] {message}", file=sys.stderr, flush=True)


class Subject:
    """A facta store in a schema of its own, and the raw baseline on its events table."""

    def __init__(self, cluster: Cluster, schema: str, sizes: Sizes, length: int) -> None:
        self.cluster = cluster
        self.schema = schema
        self.store = facta.connect(cluster.url(schema))  # facta makes its schema
        self.facta = FactaSync(sizes, schema, "postgres")
        self.facta.store = self.store
        repo = facta.Repository(self.store, Cart)
        self.template = self.facta._build(repo, Cart(), length, length)
        for n in W3_LENGTHS:
            self.facta.ids[f"W3-{n}"] = self.facta._build(repo, Cart(), n, 1000)
        raw = f"{schema}_raw"  # the raw INSERT goes into facta's table through a view
        cluster.execute(f"CREATE SCHEMA {raw}")
        cluster.execute(f"CREATE VIEW {raw}.events AS SELECT * FROM {schema}.facta_events")
        self.raw = RawV7(sizes, raw)
        self.raw.conn = psycopg.connect(
            cluster.conninfo() + f" options=-csearch_path={raw}", autocommit=True
        )
        self.raw.ids = dict(self.facta.ids)
        self.queries = Queries.render(schema)

    def close(self) -> None:
        self.store.close()
        if self.raw.conn is not None:
            self.raw.conn.close()
        self.facta.remove_folder()
        self.raw.remove_folder()

    def newest(self) -> Checkpoint:
        row = self.cluster.execute(
            f"SELECT transaction_id, position FROM {self.schema}.facta_events"
            " ORDER BY transaction_id DESC, position DESC LIMIT 1"
        )
        return Checkpoint(*row[0]) if row else Checkpoint()  # type: ignore[arg-type]

    def trial(self, system: str, case: str) -> float:
        """One timed trial: events/s for W1, ms per load for W3."""
        workloads = self.facta if system == "facta" else self.raw
        started = time.perf_counter()
        count = workloads.run(case)
        seconds = time.perf_counter() - started
        assert isinstance(count, int)
        return count / seconds if case == "W1" else seconds * 1000 / count

    def polls(self, count: int, held: bool) -> float:
        """ms per caught-up ``read_all`` poll; ``held``: a transaction that started before
        the newest append stays open meanwhile."""
        with self._held(held) as after:
            started = time.perf_counter()
            for _ in range(count):
                found = list(self.store.read_all(after, limit=100))
                assert found == [], f"a caught-up poll found {len(found)} events"
            return (time.perf_counter() - started) * 1000 / count

    def lags(self, count: int) -> float:
        """ms per ``reader_lag()`` call (what the telemetry gauges ask once a second)."""
        recorder = self.store.recorder
        started = time.perf_counter()
        for _ in range(count):
            lag = recorder.reader_lag()  # type: ignore[attr-defined]
            assert lag.held_back == 0, lag
        return (time.perf_counter() - started) * 1000 / count

    def statuses(self, count: int) -> float:
        """ms per ``projection_statuses()`` call, for one projection caught up (as a status
        command or a dashboard lists them)."""
        after = self.newest()
        self.cluster.execute(
            f"INSERT INTO {self.schema}.facta_projections AS p (name, transaction_id, position,"
            f" state, types) VALUES ('growth', {after.transaction_id}, {after.position},"
            " 'running', '{bench.ItemAdded}') ON CONFLICT (name) DO UPDATE SET"
            " transaction_id = excluded.transaction_id, position = excluded.position"
        )
        recorder = self.store.recorder
        started = time.perf_counter()
        for _ in range(count):
            (status,) = recorder.projection_statuses()
            assert status.lag == 0, status
        return (time.perf_counter() - started) * 1000 / count

    @contextlib.contextmanager
    def _held(self, held: bool) -> Iterator[Checkpoint]:
        """The newest checkpoint; ``held``: with a transaction older than the newest append
        open (the horizon query then probes ``max(transaction_id)`` and the sessions)."""
        with psycopg.connect(self.cluster.conninfo()) as holder:
            if held:
                holder.execute("SELECT pg_current_xact_id()")  # opens the transaction
            after = self.newest()
            if held:
                cart = Cart()
                cart.add_item(self.facta.fields(0))
                facta.Repository(self.store, Cart).save(cart)
            try:
                yield after
            finally:
                holder.rollback()

    def pages(self, filled: str | None) -> dict[str, int | None]:
        """Buffers (8 kB pages, cached or read) each statement touches, from EXPLAIN;
        ``filled``: a stream of the fill, whose events are interleaved with others'."""
        found: dict[str, int | None] = {}
        for name, stream in (("load 100", self.facta.ids["W3-100"]), ("load filled", filled)):
            if stream is None:
                found[name] = None
                continue
            statement = self.queries.replay_stream_as
            params = (stream, 1, _LAST_VERSION, stream, "Cart", 1, 1000)
            found[name] = self._buffers(statement, params)
        for name, held in (("poll", False), ("poll, txn open", True)):
            with self._held(held) as after:
                statement = self.queries.read_all
                found[name] = self._buffers(statement, (after.transaction_id, after.position, 100))
        row = (f"{uuid.uuid4()}", 1, uuid.uuid4(), "bench.ItemAdded", b"{}", b"{}")
        found["insert"] = self._buffers(_INSERT.format(schema=self.schema), row, rollback=True)
        return found

    def _buffers(self, statement: str, params: tuple[Any, ...], rollback: bool = False) -> int:
        explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement
        with psycopg.connect(self.cluster.conninfo(), cursor_factory=psycopg.ClientCursor) as db:
            for _ in range(2):  # the first warms the caches and the catalogue
                ((plan,),) = db.execute(explain, params).fetchall()
                db.rollback() if rollback else db.commit()
        top = plan[0]["Plan"]
        return int(top["Shared Hit Blocks"] + top["Shared Read Blocks"])


class RawV7(RawPsycopg):
    """RawPsycopg with UUIDv7 event ids, as facta makes them. Its rows share facta's table:
    its random UUIDv4 ones would sit at the event-id index's right edge, and every later
    fill and append would then split pages in the middle of it (half-full pages, an index
    twice the size), which facta's own time-ordered ids never do."""

    def row(self, stream_id: str, version: int) -> tuple[Any, ...]:
        return (stream_id, version, uuid7(), *super().row(stream_id, version)[3:])


_INSERT = (
    "INSERT INTO {schema}.facta_events (transaction_id, stream_id, version, event_id, type,"
    " schema_version, encoding, data, metadata) VALUES (pg_current_xact_id()::text::bigint,"
    " %s, %s, %s, %s, 1, 0, %s, %s)"
)


class Growth:
    """The growing store, the small one, and the filler, on one private server."""

    def __init__(self, cluster: Cluster, sizes: Sizes, length: int) -> None:
        self.cluster = cluster
        self.length = length
        self.admin = psycopg.connect(cluster.conninfo(), autocommit=True)
        self.grown = Subject(cluster, SCHEMA, sizes, length)
        self.control = Subject(cluster, CONTROL, sizes, length)
        template = Template(self.admin, SCHEMA, self.grown.template)
        self.filler = Filler(self.admin, SCHEMA, template)
        self.depth = self._pageinspect()

    def _pageinspect(self) -> bool:
        try:
            self.admin.execute("CREATE EXTENSION pageinspect")
        except psycopg.Error:
            return False  # index depths are then left out
        return True

    def close(self) -> None:
        self.grown.close()
        self.control.close()
        self.admin.close()

    def grow(self, size: int) -> dict[str, float]:
        """Fill up to ``size`` events, check, vacuum, checkpoint; the seconds each took."""
        before = self.grown.newest()
        added = size - self.filler.events
        fill = self.filler.fill(added, self.length)
        if added:
            check_filled(self.grown.store, self.filler, self.length, before)
        started = time.perf_counter()
        tables = ", ".join(f"{s}.facta_events, {s}.facta_streams" for s in (SCHEMA, CONTROL))
        self.admin.execute(f"VACUUM (ANALYZE) {tables}")
        vacuum = time.perf_counter() - started
        started = time.perf_counter()
        self.admin.execute("CHECKPOINT")
        checkpoint = time.perf_counter() - started
        return {"added": added, "fill_s": fill, "vacuum_s": vacuum, "checkpoint_s": checkpoint}

    def reindex(self) -> dict[str, dict[str, float]]:
        """REINDEX CONCURRENTLY each index of the grown events table: sizes and seconds."""
        found = {}
        for name, before in self.storage()["indexes_mb"].items():
            started = time.perf_counter()
            self.admin.execute(f"REINDEX INDEX CONCURRENTLY {SCHEMA}.{name}")
            seconds = time.perf_counter() - started
            after = self._mb(f"pg_relation_size('{SCHEMA}.{name}')")
            found[name] = {"before_mb": before, "after_mb": after, "seconds": seconds}
        return found

    def storage(self) -> dict[str, Any]:
        """Table, index and disk sizes (MB) and index depths of the grown store."""
        found: dict[str, Any] = {}
        found["table_mb"] = self._mb(f"pg_table_size('{SCHEMA}.facta_events')")
        found["streams_mb"] = self._mb(f"pg_total_relation_size('{SCHEMA}.facta_streams')")
        indexes = self.admin.execute(
            "SELECT c.relname, pg_relation_size(c.oid) FROM pg_index AS i"
            " JOIN pg_class AS c ON c.oid = i.indexrelid"
            f" WHERE i.indrelid = '{SCHEMA}.facta_events'::regclass ORDER BY c.relname"
        ).fetchall()
        found["indexes_mb"] = {name: size / 2**20 for name, size in indexes}
        if self.depth:
            found["depths"] = {
                name: self.admin.execute(
                    f"SELECT level + 1 FROM bt_metap('{SCHEMA}.{name}')"
                ).fetchone()[0]  # type: ignore[index]
                for name, _ in indexes
            }
        found["disk_mb"] = _du(self.cluster.data) / 2**20
        found["wal_mb"] = _du(self.cluster.data / "pg_wal") / 2**20
        return found

    def _mb(self, expression: str) -> float:
        row = self.admin.execute(f"SELECT {expression}").fetchone()
        assert row is not None
        return float(row[0]) / 2**20


def _du(path: Path) -> int:
    """Bytes a directory takes on disk."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # a WAL segment recycled meanwhile
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def measure(growth: Growth, repeats: int, polls: int) -> dict[str, dict[str, float]]:
    """Every case on both systems of both stores, in turns that rotate; the medians."""
    values: dict[str, dict[str, list[float]]] = {"grown": {}, "control": {}}
    turns = [(s, n) for n in ("grown", "control") for s in ("facta", "raw")]
    for repeat in range(repeats):
        turn = turns[repeat % 4 :] + turns[: repeat % 4]
        for case in CASES:
            for system, name in turn:
                subject = growth.grown if name == "grown" else growth.control
                found = values[name].setdefault(f"{system} {case}", [])
                found.append(subject.trial(system, case))
        for name, subject in (("grown", growth.grown), ("control", growth.control)):
            values[name].setdefault("poll", []).append(subject.polls(polls, held=False))
            values[name].setdefault("poll held", []).append(subject.polls(polls, held=True))
            values[name].setdefault("reader_lag", []).append(subject.lags(max(1, polls // 10)))
            values[name].setdefault("statuses", []).append(subject.statuses(max(1, polls // 40)))
    return {
        name: {key: statistics.median(found) for key, found in cases.items()}
        for name, cases in values.items()
    }


COLUMNS: list[tuple[str, str, Callable[[float], str]]] = [
    ("facta W1", "facta W1", lambda v: f"{v:,.0f} ev/s"),
    ("raw W1", "raw W1", lambda v: f"{v:,.0f} ev/s"),
    ("facta W3-10000", "facta W3-10000", lambda v: f"{v:,.1f} ms"),
    ("raw W3-10000", "raw W3-10000", lambda v: f"{v:,.1f} ms"),
    ("facta W3-100", "facta W3-100", lambda v: f"{v:,.2f} ms"),
    ("raw W3-100", "raw W3-100", lambda v: f"{v:,.2f} ms"),
    ("poll", "poll", lambda v: f"{v:,.2f} ms"),
    ("poll, txn open", "poll held", lambda v: f"{v:,.2f} ms"),
    ("reader_lag()", "reader_lag", lambda v: f"{v:,.2f} ms"),
    ("projection_statuses()", "statuses", lambda v: f"{v:,.2f} ms"),
]


def _label(row: dict[str, Any]) -> str:
    return str(row.get("label") or f"{row['size']:,}")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def tables(rows: list[dict[str, Any]]) -> list[str]:
    """The figures (with ratios), the pages each statement touches, and the storage."""
    first = rows[0]["figures"]["grown"]
    header = _row(["stored events", *(title for title, _, _ in COLUMNS)])
    lines = [
        "**Growth** (medians; in brackets, the ratio to the first size's figure: events/s above"
        " 1 is faster, ms above 1 is slower; raw: the same INSERT, and fetch + decode, as"
        " bench/run.py's raw-psycopg, on the same table)",
        "",
        header,
        _row(["---:"] * (len(COLUMNS) + 1)),
    ]
    for row in rows:
        cells = [_label(row)]
        for _, key, show in COLUMNS:
            value = row["figures"]["grown"][key]
            cells.append(f"{show(value)} ({value / first[key]:.2f})")
        lines.append(_row(cells))
    lines += [
        "",
        "**Against a small store measured alongside** (the grown store's figure over that of a"
        " store of the same server that stays small, in the same turns: machine drift cancels)",
        "",
        header,
        _row(["---:"] * (len(COLUMNS) + 1)),
    ]
    for row in rows:
        grown, control = row["figures"]["grown"], row["figures"]["control"]
        cells = [_label(row)] + [f"{grown[k] / control[k]:.2f}" for _, k, _ in COLUMNS]
        lines.append(_row(cells))
    lines += [
        "",
        "**facta / raw** (events/s: share of raw's speed; ms: multiple of raw's time)",
        "",
    ]
    lines += [_row(["stored events", "W1", "W3-10000", "W3-100"]), _row(["---:"] * 4)]
    for row in rows:
        f = row["figures"]["grown"]
        cells = [_label(row), f"{f['facta W1'] / f['raw W1']:.2f}"]
        cells += [f"{f[f'facta {c}'] / f[f'raw {c}']:.2f}" for c in ("W3-10000", "W3-100")]
        lines.append(_row(cells))
    kinds = list(rows[0]["pages"])
    lines += [
        "",
        "**Pages touched** (shared buffers per statement, EXPLAIN (ANALYZE, BUFFERS): a load of"
        " the 100-event aggregate, and of a filled stream of 100 interleaved with the others, facta's read_all poll, a one-row INSERT into the events table)",
        "",
        _row(["stored events", *kinds]),
        _row(["---:"] * (len(kinds) + 1)),
    ]
    for row in rows:
        found = [row["pages"][k] for k in kinds]
        lines.append(_row([_label(row), *("-" if v is None else str(v) for v in found)]))
    names = sorted(rows[0]["storage"]["indexes_mb"])
    short = [n.removeprefix("facta_events_") for n in names]
    lines += [
        "",
        "**Storage** (fill: INSERT ... SELECT generate_series, indexes in place; then VACUUM"
        " (ANALYZE) and CHECKPOINT; sizes in MB; depth: B-tree levels)",
        "",
        _row(
            [
                "stored events",
                "fill s",
                "rows/s",
                "vacuum s",
                "checkpoint s",
                "table",
                *(f"{s} (depth)" for s in short),
                "streams table",
                "disk (WAL)",
            ]
        ),
        _row(["---:"] * (8 + len(names))),
    ]
    for row in rows:
        grown, stored = row["grown"], row["storage"]
        rate = grown["added"] / grown["fill_s"] if grown["fill_s"] else 0.0
        depths = stored.get("depths", {})
        cells = [
            _label(row),
            f"{grown['fill_s']:,.1f}",
            f"{rate:,.0f}" if rate else "-",
            f"{grown['vacuum_s']:,.1f}",
            f"{grown['checkpoint_s']:,.1f}",
            f"{stored['table_mb']:,.0f}",
            *(f"{stored['indexes_mb'][n]:,.0f} ({depths.get(n, '?')})" for n in names),
            f"{stored['streams_mb']:,.1f}",
            f"{stored['disk_mb']:,.0f} ({stored['wal_mb']:,.0f})",
        ]
        lines.append(_row(cells))
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0,1000000,10000000", help="stored events to measure at")
    parser.add_argument("--smoke", action="store_true", help="sizes 0,2000 and tiny trials")
    parser.add_argument("--repeats", type=int, default=9, help="trials per case and system")
    parser.add_argument("--w1", type=int, default=1000, help="W1: appends per trial")
    parser.add_argument("--polls", type=int, default=200, help="polls per trial")
    parser.add_argument("--stream-length", type=int, default=100, help="events per filled stream")
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="at the last size, REINDEX CONCURRENTLY the events indexes and measure again",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.repeats, args.w1, args.polls = "0,2000", 1, 50, 10
    args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    bad = [s for s in args.sizes if s < 0 or s % args.stream_length]
    if bad or not args.sizes:
        parser.error(f"sizes must be multiples of --stream-length {args.stream_length}: {bad}")
    return args


def _measured(
    growth: Growth, args: argparse.Namespace, size: int, grown: dict[str, float]
) -> dict[str, Any]:
    """Measure both stores at this size; the table's row."""
    figures = measure(growth, args.repeats, args.polls)
    for name, found in figures.items():
        _say(f"{size:,} {name}: " + ", ".join(f"{k} {v:,.2f}" for k, v in found.items()))
    filled = growth.filler.filled[-2] if growth.filler.filled else None
    pages = growth.grown.pages(filled)
    return {
        "size": size,
        "grown": grown,
        "figures": figures,
        "pages": pages,
        "storage": growth.storage(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the private server
    settings = SMOKE_SETTINGS if args.smoke else SETTINGS
    # W3: 5 loads of the 10,000-event aggregate per trial, and 500 of the 100-event one
    sizes = Sizes(w1_aggregates=args.w1, load_events_per_trial=50_000 if not args.smoke else 10_000)
    rows: list[dict[str, Any]] = []
    reindexed: dict[str, dict[str, float]] = {}
    started = time.time()
    with private_cluster(durable=True, **settings) as cluster:
        growth = Growth(cluster, sizes, args.stream_length)
        try:
            for size in args.sizes:
                _say(f"filling to {size:,} events")
                grown = growth.grow(size)
                _say(f"filled in {grown['fill_s']:.1f} s; measuring")
                rows.append(_measured(growth, args, size, grown))
            if args.reindex:
                _say("REINDEX CONCURRENTLY")
                reindexed = growth.reindex()
                started_checkpoint = time.perf_counter()
                growth.admin.execute("CHECKPOINT")
                grown = {"added": 0, "fill_s": 0.0, "vacuum_s": 0.0}
                grown["checkpoint_s"] = time.perf_counter() - started_checkpoint
                rows.append(_measured(growth, args, args.sizes[-1], grown))
                rows[-1]["label"] = f"{args.sizes[-1]:,}, reindexed"
        finally:
            growth.close()
    info = machine()
    shown = ", ".join(f"{k}={v}" for k, v in settings.items())
    lines = [
        f"facta growth: {args.repeats} repeats, W1 {args.w1:,} appends per trial, streams of"
        f" {args.stream_length}, {(time.time() - started) / 60:.1f} min; {info['cpu']},"
        f" {info['cores']} cores, {info['memory_gib']} GiB",
        f"private PostgreSQL server: fsync and synchronous_commit on (its defaults), {shown}",
        "",
        *tables(rows),
    ]
    if reindexed:
        lines += ["", "**REINDEX INDEX CONCURRENTLY** (the grown store's events indexes, MB)", ""]
        lines += [
            _row(["index", "before", "after", "seconds"]),
            _row(["---", "---:", "---:", "---:"]),
        ]
        for name, found in reindexed.items():
            cells = [name, f"{found['before_mb']:,.0f}", f"{found['after_mb']:,.0f}"]
            lines.append(_row([*cells, f"{found['seconds']:,.1f}"]))
    print("\n".join(lines))
    if args.json:
        document = {"settings": settings, "machine": info, "rows": rows, "reindex": reindexed}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

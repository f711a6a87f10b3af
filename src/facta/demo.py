"""The bank-account story behind ``facta demo``; its domain code doubles as an example.

Accounts on a SQLite file: they are opened, receive deposits, refuse an overdraft, move
money in one atomic transfer, and meet a concurrent write that ``Repository.update`` retries;
then a customer closes his account, is forgotten (his name was stored encrypted with a key of
his own, now destroyed) and his account is deleted. The ids come from the owners' names, so
running the demo again continues the same accounts. The master key that wraps the customers'
keys is a file beside the database (``<db>.key``), made on the first run.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import msgspec

import facta
from facta.lifecycle import Deleted
from facta.personal import STREAM, FileKeyProvider, generate_master_key, is_forgotten
from facta.projections import Projection, ProjectionRunner, handles

__all__ = [
    "Account",
    "AccountBalances",
    "AccountOpened",
    "InsufficientFunds",
    "MoneyDeposited",
    "MoneyWithdrawn",
    "TransactionsPerDay",
    "TransferReceived",
    "TransferSent",
    "run",
    "transfer",
]

Echo = Callable[[str], None]

# -- events: dataclasses and msgspec Structs both work; amounts are in cents ----------------


@facta.event("bank.AccountOpened")
@dataclass(frozen=True)
class AccountOpened:
    # Personal data: stored encrypted with the account's own key (its subject is the stream).
    owner: Annotated[str, facta.Personal(subject=STREAM)]


@facta.event("bank.MoneyDeposited")
class MoneyDeposited(msgspec.Struct, frozen=True):
    amount: int
    reference: str = ""


@facta.event("bank.MoneyWithdrawn")
class MoneyWithdrawn(msgspec.Struct, frozen=True):
    amount: int
    reference: str = ""


@facta.event("bank.TransferSent")
@dataclass(frozen=True)
class TransferSent:
    transfer_id: str
    to_account: str
    amount: int


@facta.event("bank.TransferReceived")
@dataclass(frozen=True)
class TransferReceived:
    transfer_id: str
    from_account: str
    amount: int


# -- the aggregate ---------------------------------------------------------------------------


class InsufficientFunds(Exception):
    """A withdrawal or transfer larger than the account's balance; nothing was recorded."""

    def __init__(self, account: Account, amount: int) -> None:
        self.account_id, self.balance, self.amount = account.id, account.balance, amount
        super().__init__(
            f"insufficient funds: {account.owner}'s account holds {money(account.balance)}, "
            f"cannot take {money(amount)}"
        )


class Account(facta.Aggregate):
    """A bank account. Commands check the rules and record events; ``apply`` keeps the state."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = 0

    @classmethod
    def open(cls, owner: str, *, id: str | None = None) -> Account:
        """A new account with one pending ``AccountOpened`` event."""
        if not owner:
            raise ValueError("an account needs an owner")
        account = cls(id)
        account.record(AccountOpened(owner))
        return account

    def deposit(self, amount: int, reference: str = "") -> None:
        self.record(MoneyDeposited(_positive(amount), reference))

    def withdraw(self, amount: int, reference: str = "") -> None:
        self._check_funds(_positive(amount))
        self.record(MoneyWithdrawn(amount, reference))

    def send(self, transfer_id: str, to_account: str, amount: int) -> None:
        self._check_funds(_positive(amount))
        self.record(TransferSent(transfer_id, to_account, amount))

    def receive(self, transfer_id: str, from_account: str, amount: int) -> None:
        self.record(TransferReceived(transfer_id, from_account, _positive(amount)))

    def _check_funds(self, amount: int) -> None:
        if amount > self.balance:
            raise InsufficientFunds(self, amount)

    def apply(self, event: object) -> None:
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount) | TransferReceived(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount) | TransferSent(amount=amount):
                self.balance -= amount


def _positive(amount: int) -> int:
    if not isinstance(amount, int) or amount <= 0:
        raise ValueError(f"amount must be a positive number of cents, got {amount!r}")
    return amount


def transfer(
    store: facta.EventStore, source_id: str, target_id: str, amount: int
) -> list[facta.AppendResult]:
    """Move money from one account to another: both streams change, or neither does.

    Each account is its own aggregate, so across services this would be a process manager
    (two saves, with a compensating event when the second fails). Here both streams live in
    one store, so one ``append_many`` writes both, each checked against the version it was
    loaded at: no half-done transfer can ever be stored. On ``ConcurrencyError`` nothing was
    written; call again to retry on fresh state.
    """
    repo = facta.Repository(store, Account)
    source, target = repo.load(source_id), repo.load(target_id)
    transfer_id = facta.new_id()
    source.send(transfer_id, target.id, amount)
    target.receive(transfer_id, source.id, amount)
    accounts = (source, target)
    results = store.append_many(
        [facta.StreamAppend(a.id, a.pending_events, a.version) for a in accounts]
    )
    for account, result in zip(accounts, results, strict=True):
        account.mark_saved(result.version)
    return results


# -- read models: projections of the log into tables of the same SQLite file ------------------


class AccountBalances(Projection[sqlite3.Connection]):
    """What an accounts screen shows: each account's owner and balance, one row per account."""

    name = "account_balances"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS account_balances (account_id TEXT PRIMARY KEY,"
            " owner TEXT NOT NULL DEFAULT '', balance INTEGER NOT NULL DEFAULT 0)"
        )

    def reset(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM account_balances")

    @handles(AccountOpened)
    def opened(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        owner = FORGOTTEN if is_forgotten(event.data.owner) else event.data.owner
        db.execute(
            "INSERT INTO account_balances (account_id, owner) VALUES (?, ?)"
            " ON CONFLICT (account_id) DO UPDATE SET owner = excluded.owner",
            (event.stream_id, owner),
        )

    @handles(Deleted)
    def deleted(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM account_balances WHERE account_id = ?", (event.stream_id,))

    @handles(MoneyDeposited, TransferReceived, MoneyWithdrawn, TransferSent)
    def moved(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        credit = isinstance(event.data, MoneyDeposited | TransferReceived)
        db.execute(
            "INSERT INTO account_balances (account_id, balance) VALUES (?, ?)"
            " ON CONFLICT (account_id) DO UPDATE SET balance = balance + excluded.balance",
            (event.stream_id, event.data.amount if credit else -event.data.amount),
        )


class TransactionsPerDay(Projection[sqlite3.Connection]):
    """A report: how many deposits, withdrawals and transfers each day saw, and their volume."""

    name = "transactions_per_day"

    def setup(self, db: sqlite3.Connection) -> None:
        db.execute(
            "CREATE TABLE IF NOT EXISTS transactions_per_day (day TEXT PRIMARY KEY,"
            " transactions INTEGER NOT NULL, volume INTEGER NOT NULL)"
        )

    def reset(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM transactions_per_day")

    @handles(MoneyDeposited, MoneyWithdrawn, TransferSent)  # a transfer counts once
    def counted(self, event: facta.RecordedEvent, db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO transactions_per_day VALUES (?, 1, ?) ON CONFLICT (day) DO UPDATE"
            " SET transactions = transactions + 1, volume = volume + excluded.volume",
            (event.recorded_at.date().isoformat(), event.data.amount),
        )


def read_models(
    store: facta.EventStore, path: Path
) -> tuple[list[tuple[str, str, str]], list[tuple[str, int, str]]]:
    """Catch both read models up with the log (each from its checkpoint), then read them."""
    for projection in (AccountBalances(), TransactionsPerDay()):
        with ProjectionRunner(store, projection) as runner:
            runner.catch_up()
    with closing(sqlite3.connect(path)) as db:
        balances = db.execute(
            "SELECT account_id, owner, balance FROM account_balances ORDER BY owner"
        ).fetchall()
        days = db.execute("SELECT * FROM transactions_per_day ORDER BY day").fetchall()
    return (
        [(account_id, owner, money(balance)) for account_id, owner, balance in balances],
        [(day, count, money(volume)) for day, count, volume in days],
    )


# -- the story -------------------------------------------------------------------------------


def _refuse_foreign(url: str, accounts: set[str]) -> None:
    """Refuse, before writing anything, a file that holds more than an earlier demo's work."""
    where = url.removeprefix("sqlite:///")
    try:
        with facta.connect(url, read_only=True) as store:
            foreign = [stream_id for stream_id, _ in store.streams() if stream_id not in accounts]
    except facta.FactaError as e:
        raise facta.FactaError(
            f"the demo will not write into {where}: {e}; choose another --db or use --fresh"
        ) from e
    if foreign:
        raise facta.FactaError(
            f"{where} holds streams the demo did not write ({foreign[0]!r} and "
            f"{len(foreign) - 1} more): it is not a demo store; choose another --db"
        )


FORGOTTEN = "(forgotten)"  # what the read model shows for a forgotten owner


def master_key(path: Path) -> FileKeyProvider:
    """The demo's master key: the file ``<db>.key`` beside the database, made if missing."""
    key_file = Path(f"{path}.key")
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(generate_master_key() + "\n", encoding="utf-8")
    return FileKeyProvider(key_file)


def run(db: str | Path = "facta-demo.db", *, fresh: bool = False, echo: Echo = print) -> None:
    """Tell the bank story on the SQLite file ``db``; ``fresh`` deletes the file first."""
    path = Path(db)
    if fresh:
        for suffix in ("", "-wal", "-shm", ".key"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        for lock in path.parent.glob(f"{path.name}-projection-*.lock"):
            lock.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    ada, grace, linus = (facta.id_from_key("account", o) for o in ("ada", "grace", "linus"))
    if path.exists():
        _refuse_foreign(url, {ada, grace, linus})
    keys = master_key(path)
    echo(f"facta demo: a small bank in the SQLite file {path}\n")
    with facta.connect(url, keys=keys) as store:
        repo = facta.Repository(store, Account)
        start = max(_head(store, ada), _head(store, grace))

        echo("1. Ada and Grace open accounts (ids derived from their names)")
        for owner, account_id in (("Ada", ada), ("Grace", grace)):
            try:
                found = repo.load(account_id)
                echo(f"   {owner}'s account is already here, at version {found.version}")
            except facta.AggregateNotFound:
                repo.save(Account.open(owner, id=account_id))
                echo(f"   opened {owner}'s account {account_id}")

        echo("2. Deposits: load, record, save")
        for account_id, amount in ((ada, 100_00), (grace, 20_00)):
            account = repo.load(account_id)
            account.deposit(amount, "salary")
            repo.save(account)
            echo(f"   {account.owner} deposits {money(amount)}: balance {money(account.balance)}")

        echo("3. Grace asks for more than she has")
        account = repo.load(grace)
        try:
            account.withdraw(account.balance + 50_00, "new bike")
        except InsufficientFunds as refused:
            echo(f"   refused, nothing recorded: {refused}")

        echo("4. Ada sends Grace 30.00: one atomic append to both streams")
        sent, received = transfer(store, ada, grace, 30_00)
        echo(
            f"   Ada's stream is at version {sent.version}, Grace's at {received.version}; "
            f"log positions {sent.position} and {received.position}, one transaction"
        )

        echo("5. Two clerks change Ada's account at the same moment")
        for line in _clerks(url, keys, ada):
            echo(f"   {line}")

        echo("6. Linus closes his account and asks to be forgotten")
        for line in _leave(store, linus):
            echo(f"   {line}")

        echo("\nStreams")
        accounts = [repo.load(account_id) for account_id in (ada, grace)]
        rows = [(a.id, a.owner, a.version, money(a.balance)) for a in accounts]
        echo(table(("STREAM", "OWNER", "VERSION", "BALANCE"), rows))

        echo("\nThe global log (this run's events)")
        owners = {ada: "Ada", grace: "Grace", linus: "Linus"}
        log = [
            (
                event.position,
                owners.get(event.stream_id, event.stream_id),
                event.version,
                event.type,
                msgspec.json.encode(event.data, enc_hook=_shown).decode(),
            )
            for event in store.read_all(after=start)
        ]
        echo(table(("POSITION", "STREAM", "VERSION", "TYPE", "DATA"), log))
        if start.position:
            echo(f"({start.position} earlier events not shown)")

        echo("\nRead models (projections of the log, caught up into the same SQLite file)")
        balances, days = read_models(store, path)
        echo(table(("ACCOUNT", "OWNER", "BALANCE"), balances))
        echo("")
        echo(table(("DAY", "TRANSACTIONS", "VOLUME"), days))
        echo(f"\nLook again with: facta streams {url}")
        echo(f"                 facta show {url} {ada}")
        echo(f"                 facta projections {url}")
        echo(f"                 facta check {url} -i facta.demo --keys-file {path}.key")


def _head(store: facta.EventStore, stream_id: str) -> facta.Checkpoint:
    """The checkpoint of the stream's last event (the log's start when it has none)."""
    version = store.stream_version(stream_id)
    for event in store.read_stream(stream_id, version, version):
        return event.checkpoint
    return facta.Checkpoint()


def _leave(store: facta.EventStore, account_id: str) -> list[str]:
    """Linus opens an account, empties it, is forgotten, and the account is deleted."""
    repo = facta.Repository(store, Account)
    try:
        repo.load(account_id)
    except facta.StreamDeleted:
        return ["his account was closed, forgotten and deleted by an earlier run"]
    except facta.AggregateNotFound:
        account = Account.open("Linus", id=account_id)
        account.deposit(5_00, "first deposit")
        repo.save(account)
    account = repo.load(account_id)
    account.withdraw(account.balance, "closing the account")
    repo.save(account)
    lines = [f"{account.owner} withdraws everything: balance {money(account.balance)}"]
    store.forget(account_id)  # his key is destroyed: his name can never be read again
    opened = next(iter(store.read_stream(account_id, 1, 1)))
    lines.append(f"store.forget destroyed his key: his opening event now reads {opened.data}")
    store.delete_stream(account_id, account.version, reason="account closed")
    try:
        repo.load(account_id)
    except facta.StreamDeleted as e:
        lines.append(f"store.delete_stream: a load now raises StreamDeleted: {e}")
    return lines


def _shown(value: Any) -> str:
    """How the log shows a field the codec cannot: a forgotten one."""
    if is_forgotten(value):
        return FORGOTTEN
    raise TypeError(f"cannot show {value!r}")


def _clerks(url: str, keys: FileKeyProvider, account_id: str) -> list[str]:
    """Two threads, each with its own connection and repository, change one account at once.

    Both load the same version and record a change; a barrier holds them until both have, so
    exactly one save wins and the other raises ``ConcurrencyError``. The loser then uses
    ``Repository.update``, which reloads, re-runs the command on fresh state and saves.
    """
    both_loaded = threading.Barrier(2)
    conflicts: list[str] = []

    def clerk(name: str, command: Callable[[Account], None]) -> str:
        with facta.connect(url, keys=keys) as store:
            repo = facta.Repository(store, Account)
            account = repo.load(account_id)
            command(account)
            both_loaded.wait(timeout=30)
            try:
                repo.save(account)
                return f"{name}: saved at version {account.version}"
            except facta.ConcurrencyError as conflict:
                conflicts.append(f"{name}: save raised ConcurrencyError: {conflict}")
                account = repo.update(account_id, command)
                return (
                    f"{name}: repo.update reloaded, re-ran the command and saved at version "
                    f"{account.version}; balance {money(account.balance)}"
                )

    def deposit(account: Account) -> None:
        account.deposit(25_00, "cash at the counter")

    def withdraw(account: Account) -> None:
        account.withdraw(10_00, "cash machine")

    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(clerk, "clerk 1 (deposit 25.00)", deposit)]
        futures.append(pool.submit(clerk, "clerk 2 (withdraw 10.00)", withdraw))
        outcomes = [future.result() for future in futures]
    # The winner's line first, then the conflict, then how it was retried.
    winner = [line for line in outcomes if ": saved at" in line]
    return winner + conflicts + [line for line in outcomes if line not in winner]


def money(cents: int) -> str:
    """``12345`` -> ``'123.45'``."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table; numbers are right-aligned."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max([len(h), *(len(row[i]) for row in cells)]) for i, h in enumerate(headers)]
    numeric = [
        bool(rows) and all(isinstance(row[i], int) for row in rows) for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), *(line(row) for row in cells)])

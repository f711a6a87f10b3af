"""The demo's read models: account balances and transactions per day, in its SQLite file."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import facta
from facta.demo import Account, master_key, read_models, run


def test_the_demo_read_models_agree_with_the_accounts_after_two_runs(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    run(db, echo=lambda line: None)
    run(db, echo=lambda line: None)
    with facta.connect(f"sqlite:///{db}", keys=master_key(db)) as store:
        repo = facta.Repository(store, Account)
        ada = repo.load(facta.id_from_key("account", "ada"))
        grace = repo.load(facta.id_from_key("account", "grace"))
        balances, days = read_models(store, db)
    assert balances == [(ada.id, "Ada", "170.00"), (grace.id, "Grace", "100.00")]
    # each run: deposits of 100, 20 and 25, a withdrawal of 10, a transfer of 30; the first
    # run also Linus's deposit of 5 and his withdrawal of 5 (his account row is deleted)
    assert [(count, volume) for _, count, volume in days] == [(12, "380.00")]


def test_the_demo_read_models_are_checkpointed_in_the_file(tmp_path: Path) -> None:
    db = tmp_path / "bank.db"
    run(db, echo=lambda line: None)
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT name, position FROM facta_projections ORDER BY name")
        # 8 events of Ada and Grace, 3 of Linus, and the marker of his deletion, which only
        # the balances read (a runner reads the types its projection handles)
        assert rows.fetchall() == [("account_balances", 12), ("transactions_per_day", 11)]

"""The hash-chained audit log: verify finds edited, deleted and renumbered entries; concurrent
appenders never fork the chain."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from serving import audit
from serving.db import Store
from serving.tables import audit_head, audit_log
from tests.serving.conftest import T0


def _fill(store: Store, n: int = 5) -> None:
    with store.transaction() as session:
        for i in range(n):
            audit.append(
                session,
                "admin",
                "user.create",
                subject_type="user",
                subject_id=f"u{i}",
                details={"role": "inspector", "jurisdictions": ["J1"], "n": i, "at": T0},
            )


def _verify(store: Store) -> audit.ChainReport:
    with store.read() as session:
        return audit.verify(session)


def _sql(store: Store, stmt: sa.Executable) -> None:
    with store.transaction() as session:
        session.execute(stmt)


def test_an_intact_chain_verifies(store: Store) -> None:
    assert _verify(store).ok  # empty
    _fill(store)
    report = _verify(store)
    assert report.ok and report.entries == 5 and report.head_seq == 5
    with store.read() as session:
        entries = audit.entries(session)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    assert entries[0].details["at"] == "2025-03-03T01:00:00.000000+00:00"
    assert entries[0].at.tzinfo is not None


def test_an_edited_entry_is_found(store: Store) -> None:
    _fill(store)
    _sql(store, sa.update(audit_log).where(audit_log.c.seq == 3).values(actor="mallory"))
    report = _verify(store)
    assert (report.broken_seq, report.problem) == (3, "edited")
    assert "entry 3" in report.message


def test_an_entry_rewritten_with_a_fresh_hash_is_found_at_the_next_link(store: Store) -> None:
    _fill(store)
    with store.read() as session:
        row = session.execute(sa.select(audit_log).where(audit_log.c.seq == 2)).one()
    forged = audit._hash(2, row.at, "mallory", row.action, row.subject_type, row.subject_id,
                         row.details, row.prev_hash)  # fmt: skip
    _sql(
        store,
        sa.update(audit_log).where(audit_log.c.seq == 2).values(actor="mallory", hash=forged),
    )
    report = _verify(store)
    assert (report.broken_seq, report.problem) == (2, "edited")


def test_a_deleted_entry_is_found(store: Store) -> None:
    _fill(store)
    _sql(store, sa.delete(audit_log).where(audit_log.c.seq == 2))
    report = _verify(store)
    assert (report.broken_seq, report.problem) == (2, "deleted")


def test_a_deleted_tail_is_found(store: Store) -> None:
    _fill(store)
    _sql(store, sa.delete(audit_log).where(audit_log.c.seq >= 4))
    report = _verify(store)
    assert (report.broken_seq, report.problem) == (4, "deleted")
    assert "4 to 5" in report.message


def test_renumbered_entries_are_found(store: Store) -> None:
    _fill(store)
    _sql(store, sa.update(audit_log).where(audit_log.c.seq == 2).values(seq=-2))
    _sql(store, sa.update(audit_log).where(audit_log.c.seq == 3).values(seq=2))
    _sql(store, sa.update(audit_log).where(audit_log.c.seq == -2).values(seq=3))
    report = _verify(store)
    assert (report.broken_seq, report.problem) == (2, "reordered")
    assert "was entry 3" in report.message


def test_a_forged_head_is_found(store: Store) -> None:
    _fill(store)
    _sql(store, sa.update(audit_head).values(hash="f" * 64))
    assert _verify(store).problem == "edited"


def test_concurrent_appenders_do_not_fork_the_chain(store: Store) -> None:
    workers, each = 4, 10
    start = threading.Barrier(workers)
    errors: list[BaseException] = []

    def work(w: int) -> None:
        start.wait()
        try:
            for i in range(each):
                with store.transaction() as session:
                    audit.append(session, f"w{w}", "test.append", details={"i": i})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    report = _verify(store)
    assert report.ok and report.entries == workers * each == report.head_seq

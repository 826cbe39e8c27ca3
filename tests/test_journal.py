from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from energy_async import journal as journal_module
from energy_async.errors import InvalidOrder, JournalError
from energy_async.journal import APPLICATION_ID, SCHEMA_VERSION, EntryState, Journal, JournalEntry
from energy_async.models import (
    ConfirmStatus,
    DeliveryResult,
    Evidence,
    Order,
    OrderRequest,
    OrderStatus,
    StatusChange,
    Verdict,
)
from energy_async.sandbox import Sandbox

pytestmark = pytest.mark.anyio

TARGET = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def request(n: int, *, energy: int | None = 65_000, prefix: str = "order") -> OrderRequest:
    return OrderRequest(target=TARGET, energy=energy, client_order_id=f"{prefix}-{n}")


def requests(count: int, **kw: object) -> list[OrderRequest]:
    return [request(n, **kw) for n in range(count)]  # type: ignore[arg-type]


def order(
    client_order_id: str,
    *,
    energy: int | None = 65_000,
    cost_sun: int | None = 2_000_000,
    activation_cost_sun: int | None = None,
) -> Order:
    return Order(
        provider="catfee",
        id=f"provider-{client_order_id}",
        client_order_id=client_order_id,
        target=TARGET,
        energy=energy,
        status=OrderStatus.DELEGATE_SUCCESS,
        confirm_status=ConfirmStatus.DELEGATION_CONFIRMED,
        delegate_hash="ab" * 32,
        cost_sun=cost_sun,
        activation_cost_sun=activation_cost_sun,
        raw={"id": client_order_id, "nested": {"list": [1, 2.5, None]}},
    )


def result(
    intent: OrderRequest, placed: Order | None, verdict: Verdict = Verdict.DELIVERED
) -> DeliveryResult:
    return DeliveryResult(
        verdict=verdict,
        provider="catfee",
        client_order_id=intent.client_order_id,
        request=intent,
        order=placed,
        evidence=Evidence(
            energy_before=1_000,
            energy_after=66_012,
            energy_delta=65_012,
            expected_energy=65_000,
            tolerance=650,
            status_history=[
                StatusChange(at=1.5, status="PAYMENT_SUCCESS", confirm_status="UNCONFIRMED")
            ],
            provider_calls=3,
            notes=["provider lagging"],
            started_at=1.25,
        ),
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "batch.journal"


@pytest.fixture
async def journal(path: Path) -> AsyncIterator[Journal]:
    async with await Journal.open(path) as opened:
        yield opened


async def settle(
    journal: Journal, intent: OrderRequest, verdict: Verdict = Verdict.DELIVERED
) -> None:
    cid = intent.client_order_id
    await journal.mark_sent(cid)
    placed = order(cid)
    await journal.record_order(cid, placed)
    await journal.record_result(cid, result(intent, placed, verdict))


# --- round trips and state rules ------------------------------------------------------------


async def test_an_entry_round_trips_through_every_state(path: Path) -> None:
    intent = request(1)
    placed = order(intent.client_order_id)
    verdict = result(intent, placed, Verdict.UNDER_DELIVERED)
    async with await Journal.open(path) as journal:
        entry = await journal.record_intent("catfee", intent)
        assert (entry.state, entry.request, entry.provider) == (
            EntryState.INTENDED,
            intent,
            "catfee",
        )
        assert (entry.order, entry.result, entry.verdict, entry.sent_at) == (None, None, None, None)

        await journal.mark_sent(intent.client_order_id)
        sent = await journal.get(intent.client_order_id)
        assert sent is not None and sent.state is EntryState.SENT
        assert sent.sent_at is not None and sent.sent_at >= entry.created_at

        await journal.record_order(intent.client_order_id, placed)
        ordered = await journal.get(intent.client_order_id)
        assert ordered is not None
        assert (ordered.state, ordered.order) == (EntryState.ORDERED, placed)

        await journal.record_result(intent.client_order_id, verdict)
        settled = await journal.get(intent.client_order_id)
        assert settled is not None
        assert settled.state is EntryState.SETTLED
        assert (settled.result, settled.verdict, settled.order) == (
            verdict,
            Verdict.UNDER_DELIVERED,
            placed,
        )
        assert settled.sent_at == sent.sent_at and settled.created_at == entry.created_at
        assert await journal.get("never-recorded") is None

    async with await Journal.open(path, create=False) as reopened:
        assert await reopened.get(intent.client_order_id) == settled


async def test_intents_are_idempotent_and_never_reset_progress(journal: Journal) -> None:
    batch = requests(3)
    assert await journal.record_intents("catfee", batch) == 3
    assert await journal.record_intents("catfee", batch) == 0
    assert await journal.record_intents("catfee", [*batch, request(3)]) == 1
    assert await journal.record_intents("catfee", [request(4), request(4)]) == 1

    first = await journal.get("order-0")
    await journal.mark_sent("order-0")
    again = await journal.record_intent("catfee", request(0))
    assert first is not None
    assert again.state is EntryState.SENT and again.created_at == first.created_at
    assert (await journal.counts())["INTENDED"] == 4


@pytest.mark.parametrize(
    ("provider", "changed"),
    [
        ("catfee", OrderRequest(target=TARGET, energy=131_000, client_order_id="order-1")),
        (
            "catfee",
            OrderRequest(target=TARGET[:-1] + "u", energy=65_000, client_order_id="order-1"),
        ),
        (
            "catfee",
            OrderRequest(target=TARGET, energy=65_000, duration="1d", client_order_id="order-1"),
        ),
        ("mefree", request(1)),
    ],
)
async def test_an_id_is_never_re_pointed_at_another_order(
    journal: Journal, provider: str, changed: OrderRequest
) -> None:
    await journal.record_intents("catfee", [request(1)])
    with pytest.raises(JournalError, match=r"order-1.*already recorded"):
        await journal.record_intents(provider, [request(2), changed, request(3)])
    with pytest.raises(JournalError, match="already recorded"):
        await journal.record_intent(provider, changed)
    # The bulk call is one transaction: nothing of it was kept.
    assert [entry.request async for entry in journal.iter_entries()] == [request(1)]


async def test_a_conflict_inside_one_call_is_refused(journal: Journal) -> None:
    with pytest.raises(JournalError):
        await journal.record_intents("catfee", [request(7), request(7, energy=70_000)])
    assert await journal.get("order-7") is None


async def test_a_request_without_client_order_id_is_refused(journal: Journal) -> None:
    with pytest.raises(InvalidOrder):
        await journal.record_intents("catfee", [request(1), OrderRequest(target=TARGET, energy=1)])
    with pytest.raises(InvalidOrder):
        await journal.record_intent("catfee", OrderRequest(target=TARGET, energy=1))
    assert await journal.get("order-1") is None


async def test_updates_for_unknown_or_mismatched_ids_are_refused(journal: Journal) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    with pytest.raises(JournalError, match="no intent"):
        await journal.mark_sent("order-2")
    with pytest.raises(JournalError, match="no intent"):
        await journal.record_order("order-2", order("order-2"))
    with pytest.raises(JournalError, match="no intent"):
        await journal.record_result("order-2", result(request(2), None))
    with pytest.raises(JournalError, match="carries client_order_id"):
        await journal.record_order("order-1", order("order-2"))
    with pytest.raises(JournalError, match="carries client_order_id"):
        await journal.record_result("order-1", result(request(2), None))
    entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.INTENDED
    assert await journal.get("order-2") is None


async def test_state_only_moves_forward(journal: Journal) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    await journal.mark_sent("order-1")
    sent = await journal.get("order-1")
    await journal.mark_sent("order-1")  # a resend on resume keeps the first send time
    again = await journal.get("order-1")
    assert sent is not None and again is not None and again.sent_at == sent.sent_at

    await journal.record_order("order-1", order("order-1"))
    await journal.mark_sent("order-1")
    ordered = await journal.get("order-1")
    assert ordered is not None and ordered.state is EntryState.ORDERED

    # UNKNOWN is recorded but settles nothing: the entry is still to do, for a resume.
    await journal.record_result("order-1", result(intent, None, Verdict.UNKNOWN))
    later = order("order-1", energy=64_000)
    await journal.record_order("order-1", later)
    unknown = await journal.get("order-1")
    assert unknown is not None
    assert (unknown.state, unknown.verdict, unknown.order) == (
        EntryState.ORDERED,
        Verdict.UNKNOWN,
        later,
    )
    assert [entry.client_order_id for entry in await journal.unsettled()] == ["order-1"]
    assert (await journal.counts())["UNKNOWN"] == 1
    await journal.mark_sent("order-1")  # a replay on resume is allowed

    # Resolving an UNKNOWN later replaces the verdict and settles the entry.
    await journal.record_result("order-1", result(intent, later, Verdict.DELIVERED))
    resolved = await journal.get("order-1")
    assert resolved is not None and resolved.verdict is Verdict.DELIVERED
    assert resolved.state is EntryState.SETTLED
    with pytest.raises(JournalError, match="already settled"):
        await journal.mark_sent("order-1")
    assert await journal.unsettled() == []


async def test_an_unknown_result_of_an_intended_entry_marks_it_sent(journal: Journal) -> None:
    intent = request(1)
    await journal.record_intent("catfee", intent)
    await journal.record_result("order-1", result(intent, None, Verdict.UNKNOWN))
    entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.SENT and entry.sent_at is not None


async def test_an_order_implies_the_create_was_sent(journal: Journal) -> None:
    await journal.record_intent("catfee", request(1))
    await journal.record_order("order-1", order("order-1"))
    entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.ORDERED and entry.sent_at is not None
    assert await journal.spent() == (65_000, 2_000_000)


# --- resume view, listing, counts, spend ----------------------------------------------------


async def test_resume_sees_every_unsettled_entry_after_reopening(path: Path) -> None:
    batch = requests(8)
    async with await Journal.open(path) as journal:
        await journal.record_intents("catfee", batch[:6])
        await journal.record_intents("mefree", batch[6:])
        await settle(journal, batch[0])
        await settle(journal, batch[1], Verdict.REJECTED)
        await journal.mark_sent("order-5")  # touched out of order: listing stays in record order
        await journal.mark_sent("order-2")
        await journal.record_order("order-3", order("order-3"))
        await journal.mark_sent("order-7")

    async with await Journal.open(path, create=False) as journal:
        unsettled = await journal.unsettled()
        assert [(e.client_order_id, e.state) for e in unsettled] == [
            ("order-2", EntryState.SENT),
            ("order-3", EntryState.ORDERED),
            ("order-4", EntryState.INTENDED),
            ("order-5", EntryState.SENT),
            ("order-6", EntryState.INTENDED),
            ("order-7", EntryState.SENT),
        ]
        assert [e.client_order_id for e in await journal.unsettled("mefree")] == [
            "order-6",
            "order-7",
        ]
        sent = [e.client_order_id async for e in journal.iter_entries(EntryState.SENT)]
        assert sent == ["order-2", "order-5", "order-7"]
        catfee_sent = journal.iter_entries(EntryState.SENT, provider="catfee")
        assert [e.client_order_id async for e in catfee_sent] == ["order-2", "order-5"]
        everything = [e.client_order_id async for e in journal.iter_entries()]
        assert everything == [r.client_order_id for r in batch]

        counts = await journal.counts()
        assert counts["INTENDED"] == 2 and counts["SENT"] == 3
        assert counts["ORDERED"] == 1 and counts["SETTLED"] == 2
        assert counts["SETTLED:DELIVERED"] == 1 and counts["SETTLED:REJECTED"] == 1
        assert counts["SETTLED:UNKNOWN"] == 0
        assert sum(counts[state] for state in EntryState) == len(batch)


async def test_spent_sums_orders_sent(journal: Journal) -> None:
    transfers = OrderRequest(target=TARGET, transfers=2, client_order_id="transfers")
    await journal.record_intents("catfee", [request(0), request(1), request(2, energy=100_000)])
    await journal.record_intents("mefree", [request(3), transfers])
    assert await journal.spent() == (0, 0)  # intents spend nothing

    await journal.mark_sent("order-0")  # no cost known yet
    assert await journal.spent() == (65_000, 0)
    await journal.record_order("order-0", order("order-0", cost_sun=1_000, activation_cost_sun=500))
    await journal.mark_sent("order-2")
    await journal.record_result("order-2", result(request(2), order("order-2", energy=99_000)))
    await journal.mark_sent("transfers")
    await journal.record_order("transfers", order("transfers", energy=131_000, cost_sun=7))
    await journal.mark_sent("order-3")
    await journal.record_order("order-3", order("order-3", cost_sun=None))

    assert await journal.spent() == (65_000 + 99_000 + 131_000 + 65_000, 1_500 + 2_000_000 + 7)
    assert await journal.spent(provider="mefree") == (131_000 + 65_000, 7)
    assert await journal.spent(provider="nobody") == (0, 0)

    first = await journal.get("order-2")
    last = await journal.get("order-3")
    assert first is not None and last is not None
    assert first.sent_at is not None and last.sent_at is not None and first.sent_at < last.sent_at
    assert await journal.spent(since=first.sent_at) == (99_000 + 131_000 + 65_000, 2_000_007)
    assert await journal.spent(since=last.sent_at, provider="mefree") == (65_000, 0)
    assert await journal.spent(since=last.sent_at + 3600) == (0, 0)


async def test_spent_leaves_out_rejected_orders(journal: Journal) -> None:
    await journal.record_intents("catfee", [request(0), request(1)])
    for n in (0, 1):
        await journal.mark_sent(f"order-{n}")
    await journal.record_result("order-1", result(request(1), None, Verdict.REJECTED))
    # The refused order was sent but bought nothing: only order-0 counts.
    assert await journal.spent() == (65_000, 0)


@pytest.mark.slow  # > 2 s: outside the quick developer loop
async def test_iter_entries_streams_in_pages(journal: Journal) -> None:
    total = 20_000
    await journal.record_intents("catfee", requests(total))
    await journal.mark_sent("order-19999")

    tracemalloc.start()
    try:
        seen = 0
        async for entry in journal.iter_entries():
            assert entry.client_order_id == f"order-{seen}"
            seen += 1
        streamed_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        held = [entry async for entry in journal.iter_entries()]
        held_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert seen == len(held) == total
    # Everything at once costs megabytes; streaming holds one page, far less.
    assert held_peak > 8 * streamed_peak
    assert streamed_peak < 2 * 1024 * 1024
    del held
    last = [e.client_order_id async for e in journal.iter_entries(EntryState.SENT)]
    assert last == ["order-19999"]


# --- concurrency, cancellation, closing -----------------------------------------------------


async def test_two_hundred_concurrent_writers(journal: Journal) -> None:
    batch = requests(200)
    await journal.record_intents("catfee", batch)
    pages: list[int] = []

    async def reader() -> None:
        for _ in range(20):
            pages.append(len(await journal.unsettled()))
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(reader)
        for n, intent in enumerate(batch):
            group.start_soon(
                settle, journal, intent, Verdict.DELIVERED if n % 4 else Verdict.REJECTED
            )

    counts = await journal.counts()
    assert counts["SETTLED"] == 200 and counts["SETTLED:REJECTED"] == 50
    assert await journal.unsettled() == []
    # The 50 REJECTED orders bought nothing, so only the other 150 count as spent.
    assert await journal.spent() == (150 * 65_000, 150 * 2_000_000)
    assert all(0 <= unsettled <= 200 for unsettled in pages)


async def test_cancelled_writers_leave_every_acknowledged_write_on_disk(path: Path) -> None:
    batch = requests(300)
    acknowledged: list[str] = []
    first_acknowledged = anyio.Event()
    async with await Journal.open(path) as journal:
        await journal.record_intents("catfee", batch)

        async def send(cid: str) -> None:
            await journal.mark_sent(cid)
            acknowledged.append(cid)
            first_acknowledged.set()

        async with anyio.create_task_group() as group:
            for intent in batch:
                group.start_soon(send, intent.client_order_id)
            await first_acknowledged.wait()
            group.cancel_scope.cancel()

        # The journal is still usable after its writers were cancelled mid-commit.
        await journal.mark_sent("order-299")

    async with await Journal.open(path, create=False) as journal:
        states = {e.client_order_id: e.state async for e in journal.iter_entries()}
    assert acknowledged
    assert all(states[cid] is EntryState.SENT for cid in acknowledged)
    assert states["order-299"] is EntryState.SENT
    assert set(states.values()) <= {EntryState.INTENDED, EntryState.SENT}


async def test_a_write_cancelled_before_its_commit_never_lands(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    await journal.record_intents("catfee", requests(2))
    committing, release = threading.Event(), threading.Event()
    insert = journal_module._insert_intents

    def slow_insert(*args: Any) -> int:  # a commit held open, as on a slow disk
        committing.set()
        release.wait(10)
        return insert(*args)

    monkeypatch.setattr(journal_module, "_insert_intents", slow_insert)
    waiting = anyio.CancelScope()

    async def send() -> None:
        with waiting:
            await journal.mark_sent("order-0")

    async with anyio.create_task_group() as group:
        group.start_soon(journal.record_intents, "catfee", [request(2)])
        await anyio.to_thread.run_sync(committing.wait, 10)
        group.start_soon(send)
        await anyio.wait_all_tasks_blocked()  # send() is queued behind the commit
        waiting.cancel()
        release.set()

    await journal.mark_sent("order-1")  # the next commit must not carry the cancelled write
    states = {e.client_order_id: e.state async for e in journal.iter_entries()}
    assert states == {
        "order-0": EntryState.INTENDED,
        "order-1": EntryState.SENT,
        "order-2": EntryState.INTENDED,
    }


async def test_closing_twice_is_fine_and_use_after_close_is_refused(path: Path) -> None:
    journal = await Journal.open(path)
    await journal.record_intent("catfee", request(1))
    await journal.aclose()
    await journal.aclose()
    assert "closed" in repr(journal)
    calls = [
        journal.get("order-1"),
        journal.mark_sent("order-1"),
        journal.record_order("order-1", order("order-1")),
        journal.record_result("order-1", result(request(1), None)),
        journal.record_intents("catfee", [request(2)]),
        journal.record_intent("catfee", request(2)),
        journal.unsettled(),
        journal.counts(),
        journal.spent(),
    ]
    for call in calls:
        with pytest.raises(JournalError, match="closed"):
            await call
    with pytest.raises(JournalError, match="closed"):
        async for _ in journal.iter_entries():
            pass
    async with await Journal.open(path, create=False) as reopened:
        assert (await reopened.counts())["INTENDED"] == 1


async def test_durable_journal_round_trips(path: Path) -> None:
    async with await Journal.open(path, durable=True) as journal:
        await settle(journal, (await journal.record_intent("catfee", request(1))).request)
    async with await Journal.open(path, create=False) as journal:
        entry = await journal.get("order-1")
    assert entry is not None and entry.verdict is Verdict.DELIVERED


# --- a killed process ----------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, anyio
    from energy_async.journal import Journal
    from energy_async.models import OrderRequest, Order, DeliveryResult, Evidence, Verdict

    async def main(path):
        journal = await Journal.open(path)
        intents = [
            OrderRequest(target="T" * 34, energy=65_000, client_order_id=f"order-{n}")
            for n in range(5_000)
        ]
        await journal.record_intents("catfee", intents)
        print("intents", flush=True)

        async def worker(mine):
            for intent in mine:
                cid = intent.client_order_id
                await journal.mark_sent(cid)
                print("SENT", cid, flush=True)
                order = Order(provider="catfee", id="p" + cid, client_order_id=cid,
                              target=intent.target, energy=65_000, cost_sun=1_000)
                await journal.record_order(cid, order)
                print("ORDERED", cid, flush=True)
                await journal.record_result(cid, DeliveryResult(
                    verdict=Verdict.DELIVERED, provider="catfee", client_order_id=cid,
                    request=intent, order=order, evidence=Evidence(notes=["x" * 500])))
                print("SETTLED", cid, flush=True)

        async with anyio.create_task_group() as group:
            for k in range(25):
                group.start_soon(worker, intents[k::25])

    anyio.run(main, sys.argv[1])
    """
)

_RANK = {state: rank for rank, state in enumerate(EntryState)}


def check_consistent(entry: JournalEntry) -> None:
    sent = entry.state is not EntryState.INTENDED
    assert (entry.sent_at is not None) == sent
    assert (entry.order is not None) == (_RANK[entry.state] >= _RANK[EntryState.ORDERED])
    settled = entry.state is EntryState.SETTLED
    assert (entry.result is not None) == settled == (entry.verdict is not None)
    if entry.result is not None:
        assert entry.result.verdict is entry.verdict


async def test_a_killed_writer_leaves_a_consistent_journal(path: Path) -> None:
    acknowledged: dict[str, EntryState] = {}
    async with await anyio.open_process(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE
    ) as process:
        assert process.stdout is not None
        buffered = b""
        async for chunk in process.stdout:
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            for line in lines:
                if line.startswith((b"SENT", b"ORDERED", b"SETTLED")):
                    state, cid = line.decode().split()
                    acknowledged[cid] = EntryState(state)
            if sum(state is EntryState.SETTLED for state in acknowledged.values()) >= 300:
                os.kill(process.pid, signal.SIGKILL)  # mid-stream, with writes in flight
                break
        assert await process.wait() == -signal.SIGKILL

    async with await Journal.open(path, create=False) as journal:
        entries = {e.client_order_id: e async for e in journal.iter_entries()}
        assert len(entries) == 5_000
        for entry in entries.values():
            check_consistent(entry)
        for cid, state in acknowledged.items():
            assert _RANK[entries[cid].state] >= _RANK[state], cid
        unsettled = await journal.unsettled()
        assert len(unsettled) == 5_000 - (await journal.counts())["SETTLED"] > 0
        # The resumed journal takes writes again.
        await journal.mark_sent(unsettled[-1].client_order_id)


# --- files that are not a journal of ours ---------------------------------------------------


async def digest(file: Path) -> str:
    return hashlib.sha256(await anyio.Path(file).read_bytes()).hexdigest()


def sqlite_file(file: Path, *statements: str) -> None:
    db = sqlite3.connect(file)
    try:
        for statement in statements:
            db.execute(statement)
        db.commit()
    finally:
        db.close()


async def written_journal(file: Path, count: int = 3_000) -> None:
    async with await Journal.open(file) as journal:
        await journal.record_intents("catfee", requests(count))
        await settle(journal, request(0))


async def make_random(file: Path) -> None:
    await anyio.Path(file).write_bytes(random.Random(5).randbytes(16_384))


async def make_text(file: Path) -> None:
    await anyio.Path(file).write_text("to,energy\nTR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t,65000\n")


async def make_sqlite_header_only(file: Path) -> None:
    await anyio.Path(file).write_bytes(b"SQLite format 3\x00" + bytes(30))


async def make_truncated(file: Path) -> None:
    await written_journal(file)
    data = await anyio.Path(file).read_bytes()
    await anyio.Path(file).write_bytes(data[: len(data) // 2])


async def make_truncated_mid_page(file: Path) -> None:
    await written_journal(file)
    data = await anyio.Path(file).read_bytes()
    await anyio.Path(file).write_bytes(data[:6_000])


async def make_damaged_page(file: Path) -> None:
    await written_journal(file)
    data = bytearray(await anyio.Path(file).read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle : middle + 4096] = random.Random(7).randbytes(4096)
    await anyio.Path(file).write_bytes(bytes(data))


async def make_foreign_tables(file: Path) -> None:
    sqlite_file(file, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")


async def make_foreign_id(file: Path) -> None:
    sqlite_file(file, "PRAGMA application_id = 1234", "CREATE TABLE entries (x)")


async def make_foreign_id_empty(file: Path) -> None:
    sqlite_file(file, "PRAGMA application_id = 1234")


async def make_our_tables_without_id(file: Path) -> None:
    await written_journal(file, 10)
    sqlite_file(file, "PRAGMA application_id = 0")


async def make_newer(file: Path) -> None:
    await written_journal(file, 10)
    sqlite_file(file, "PRAGMA user_version = 3")


async def make_missing_table(file: Path) -> None:
    await written_journal(file, 10)
    sqlite_file(file, "DROP INDEX entries_sent")


async def make_extra_table(file: Path) -> None:
    await written_journal(file, 10)
    sqlite_file(file, "CREATE TABLE notes (x)")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (make_random, r"not an energy_async journal, or damaged \(file is not a database"),
        (make_text, r"not an energy_async journal, or damaged \(file is not a database"),
        (make_sqlite_header_only, r"not an energy_async journal, or damaged"),
        (make_truncated, r"damaged \(.*malformed"),
        (make_truncated_mid_page, r"damaged \(.*malformed"),
        (make_damaged_page, r"damaged \(.*malformed"),
        (make_foreign_tables, r"another application's SQLite database \(tables users\)"),
        (make_foreign_id, r"another application's SQLite database \(application_id 0x4d2\)"),
        (make_foreign_id_empty, r"another application's"),
        (make_our_tables_without_id, r"another application's .*\(tables entries, meta\)"),
        (make_newer, r"newer energy_async \(schema version 3, this version reads 2\); upgrade"),
        (make_missing_table, r"damaged \(schema version 2 with unexpected tables\)"),
        (make_extra_table, r"damaged \(schema version 2 with unexpected tables\)"),
    ],
)
async def test_a_file_that_is_not_our_journal_is_refused_and_left_as_is(
    path: Path, make: Callable[[Path], Awaitable[None]], message: str
) -> None:
    await make(path)
    before = await digest(path)
    for create in (True, False):
        with pytest.raises(JournalError, match=message):
            await Journal.open(path, create=create)
    assert await digest(path) == before


async def test_a_missing_file_is_created_only_when_asked(path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        await Journal.open(path, create=False)
    assert not await anyio.Path(path).exists()
    with pytest.raises(JournalError, match="cannot open"):
        await Journal.open(path.parent / "no-such-dir" / "journal")
    async with await Journal.open(path):
        pass
    assert await anyio.Path(path).exists()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


async def test_an_empty_file_is_refused_for_resume_and_becomes_a_journal_when_new(
    path: Path,
) -> None:
    await anyio.Path(path).write_bytes(b"")
    with pytest.raises(JournalError, match="empty, not a journal") as refused:
        await Journal.open(path, create=False)
    assert str(path) in str(refused.value)
    assert await anyio.Path(path).read_bytes() == b""
    # An empty SQLite database: still not a journal we wrote.
    sqlite_file(path, "CREATE TABLE t (x)", "DROP TABLE t")
    with pytest.raises(JournalError, match="empty SQLite database, not a journal"):
        await Journal.open(path, create=False)
    async with await Journal.open(path, create=True) as journal:
        await journal.record_intent("catfee", request(1))
    async with await Journal.open(path, create=False) as journal:
        assert (await journal.counts())["INTENDED"] == 1


async def test_a_copy_without_its_wal_file_is_refused(path: Path, tmp_path: Path) -> None:
    journal = await Journal.open(path)
    try:
        await journal.record_intents("catfee", requests(50))
        await journal.mark_sent("order-3")
        copy = tmp_path / "copy.journal"
        # The main file only, while in use.
        await anyio.Path(copy).write_bytes(await anyio.Path(path).read_bytes())
        assert await anyio.Path(tmp_path / f"{path.name}-wal").exists()
    finally:
        await journal.aclose()
    before = await digest(copy)
    with pytest.raises(JournalError, match="-wal file removed\\) while it was in use") as refused:
        await Journal.open(copy, create=False)
    assert str(copy) in str(refused.value)
    assert await digest(copy) == before
    # The original, closed cleanly, opens; so does one copied with its -wal after a crash.
    async with await Journal.open(path, create=False) as reopened:
        assert (await reopened.counts())["SENT"] == 1


async def test_the_run_id_is_fixed_by_the_first_run(path: Path) -> None:
    async with await Journal.open(path) as journal:
        assert await journal.run_id(None) is None
        assert await journal.run_id("first") == "first"
        assert await journal.run_id("second") == "first"
    async with await Journal.open(path, create=False) as journal:
        assert await journal.run_id(None) == "first"


async def test_a_schema_1_journal_is_upgraded_and_keeps_its_entries(path: Path) -> None:
    async with await Journal.open(path) as journal:
        await journal.record_intents("catfee", requests(3))
    sqlite_file(path, "DROP TABLE meta", "PRAGMA user_version = 1")
    async with await Journal.open(path, create=False) as journal:
        assert (await journal.counts())["INTENDED"] == 3
        assert await journal.run_id("r") == "r"
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        db.close()


# --- a directory the journal cannot be written in -----------------------------------------------

_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])
_NOT_ROOT_ENOUGH = 77  # the probe's exit code: the directory is still writable


def _without_dac_override() -> list[str] | None:
    """A command prefix that runs its command without the capabilities that let root write
    anywhere (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so that a 0o500 directory is read-only to
    it as to anyone: capsh (libcap2-bin) where installed, else setpriv (util-linux, on every
    Debian). Empty when not root; None when neither tool is there."""
    if os.geteuid() != 0:
        return []
    if capsh := shutil.which("capsh", path=_SBIN):
        return [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", 'exec "$0" "$@"']
    if setpriv := shutil.which("setpriv", path=_SBIN):
        return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
    return None


def read_only_runner(directory: Path) -> list[str]:
    """The prefix under which ``directory`` (mode 0o500) is read-only, checked by a probe run
    under it; the test is skipped, saying why, only when no such run is possible here."""
    prefix = _without_dac_override()
    if prefix is None:
        pytest.skip("root, and neither capsh nor setpriv to drop CAP_DAC_OVERRIDE")
    probe = "import os, sys; sys.exit(77 if os.access(sys.argv[1], os.W_OK) else 0)"
    done = subprocess.run(
        [*prefix, sys.executable, "-c", probe, str(directory)], capture_output=True, text=True
    )
    if done.returncode == _NOT_ROOT_ENOUGH:
        pytest.skip(f"{directory} stays writable even under {prefix[:1]} (no CAP_SETPCAP here?)")
    if done.returncode != 0:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE with {prefix[:1]}: {done.stderr.strip()}")
    return prefix


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "locked"
    directory.mkdir()
    directory.chmod(0o500)
    try:
        yield directory
    finally:
        directory.chmod(0o700)


_OPEN_IN_LOCKED = """
import asyncio, sys
from energy_async.errors import JournalError
from energy_async.journal import Journal
try:
    asyncio.run(Journal.open(sys.argv[1]))
except JournalError as error:
    print(error)
else:
    print("opened")
"""


async def test_a_missing_or_read_only_directory_says_so(tmp_path: Path, locked: Path) -> None:
    with pytest.raises(JournalError, match="no directory"):
        await Journal.open(tmp_path / "nowhere" / "journal")
    if not os.access(locked, os.W_OK):  # not root: this process meets the read-only directory
        with pytest.raises(JournalError, match="not writable"):
            await Journal.open(locked / "journal")
        return
    # Root writes anywhere: the open runs in a process without that power.
    prefix = read_only_runner(locked)
    done = await anyio.run_process(
        [*prefix, sys.executable, "-c", _OPEN_IN_LOCKED, str(locked / "journal")], check=False
    )
    said = done.stdout.decode().strip()
    assert done.returncode == 0, done.stderr.decode()
    assert said.startswith(f"cannot open the journal: the directory {locked} is not writable")
    assert os.listdir(locked) == []


@pytest.mark.slow  # a CLI run in a subprocess, under capsh or setpriv as root: about 1 s
async def test_batch_with_a_journal_in_a_read_only_directory_is_one_line_exit_2_nothing_bought(
    locked: Path, tmp_path: Path
) -> None:
    from tests.test_cli import ENV, SPEED, urls_args

    prefix = read_only_runner(locked)
    sandbox = Sandbox(seed=81, speed=SPEED)
    async with sandbox.serve() as urls:
        rows = tmp_path / "rows.csv"
        rows.write_text(f"to,energy\n{sandbox.new_target()},65000\n")
        done = await anyio.run_process(
            [
                *prefix,
                *(sys.executable, "-m", "energy_async", "batch", "--provider", "catfee"),
                *(str(rows), "--journal", str(locked / "j.sqlite"), *urls_args(urls, "catfee")),
            ],
            env=ENV,
            check=False,
        )
        stderr = done.stderr.decode()
        assert done.returncode == 2, stderr
        assert "Traceback" not in stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and f"the directory {locked} is not writable" in lines[0], stderr
        assert "nothing was bought" in lines[0]
        assert done.stdout == b""
        assert sandbox.catfee.control.count("create") == 0
        assert sandbox.catfee.total_charged_sun == 0
    assert os.listdir(locked) == []


async def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(JournalError):
        await Journal.open(tmp_path)


async def test_a_journal_open_elsewhere_is_refused(path: Path) -> None:
    async with await Journal.open(path) as journal:
        await journal.record_intent("catfee", request(1))
        with pytest.raises(JournalError, match="open in another process"):
            await Journal.open(path)
        await journal.mark_sent("order-1")
    async with await Journal.open(path, create=False) as journal:
        entry = await journal.get("order-1")
    assert entry is not None and entry.state is EntryState.SENT


async def test_a_damaged_entry_is_reported(path: Path) -> None:
    await written_journal(path, 2)
    sqlite_file(
        path, "UPDATE entries SET request = '{\"target\": 5}' WHERE client_order_id = 'order-1'"
    )
    async with await Journal.open(path, create=False) as journal:
        assert await journal.get("order-0") is not None
        with pytest.raises(JournalError, match="'order-1' is damaged"):
            await journal.get("order-1")

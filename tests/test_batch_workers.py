"""Many workers on one PostgreSQL journal, in one process: claims, limits, takeover."""

from __future__ import annotations

import time
from functools import partial
from typing import cast

import anyio
import pytest

from energy_async import Coordinator
from energy_async.batch import _JournalHooks
from energy_async.journal import EntryState, Journal
from energy_async.ledger import OrderLedger
from energy_async.models import DeliveryResult, OrderRequest, Verdict
from energy_async.sandbox import Delivery
from tests.coordination import Stage, stage
from tests.pg import require_driver

require_driver()

from energy_async.batch_workers import run_worker  # noqa: E402
from energy_async.journal_pg import PgJournal, SpendLimits  # noqa: E402

pytestmark = pytest.mark.anyio

ENERGY = 65_000


async def produce_blocks(st: Stage) -> None:
    while True:
        await anyio.sleep(0.01)
        st.sandbox.chain.advance_blocks(1)


def requests_for(st: Stage, count: int) -> list[OrderRequest]:
    session = st.catfee.session
    return [session.prepare(target=st.sandbox.new_target(), energy=ENERGY) for _ in range(count)]


async def worker(
    st: Stage,
    dsn: str,
    requests: list[OrderRequest],
    out: list[DeliveryResult],
    stops: list[str | None],
    **options: object,
) -> None:
    async with await PgJournal.open(dsn) as journal:
        await journal.record_intents("catfee", requests)  # every worker loads the same rows
        async with run_worker(
            st.catfee,
            journal,
            concurrency=4,
            deadline=2.0,
            **options,  # type: ignore[arg-type]
        ) as run:
            async for result in run:
                out.append(result)
        stops.append(run.stop_reason)


async def test_three_workers_share_one_batch_and_buy_each_row_once(pg_dsn: str) -> None:
    async with stage() as st:
        requests = requests_for(st, 30)
        results: list[list[DeliveryResult]] = [[], [], []]
        stops: list[str | None] = []
        async with anyio.create_task_group() as group:
            group.start_soon(produce_blocks, st)
            async with anyio.create_task_group() as workers:
                for out in results:
                    workers.start_soon(worker, st, pg_dsn, requests, out, stops)
            group.cancel_scope.cancel()
        every = [result.client_order_id for out in results for result in out]
        assert sorted(every) == sorted(request.client_order_id for request in requests)
        assert sum(1 for out in results if out) >= 2  # the work was shared
        assert all(result.verdict is Verdict.DELIVERED for out in results for result in out)
        assert set(st.sandbox.catfee.charge_counts().values()) == {1}
        assert len(st.sandbox.catfee.charge_counts()) == 30
        assert stops == [None, None, None]
        async with await PgJournal.open(pg_dsn, create=False) as journal:
            assert (await journal.counts())["SETTLED"] == 30


async def test_workers_stop_at_a_shared_energy_limit(pg_dsn: str) -> None:
    async with stage() as st:
        requests = requests_for(st, 20)
        results: list[list[DeliveryResult]] = [[], []]
        stops: list[str | None] = []
        limits = SpendLimits(max_energy=ENERGY * 7)
        async with anyio.create_task_group() as group:
            group.start_soon(produce_blocks, st)
            async with anyio.create_task_group() as workers:
                for out in results:
                    one = partial(worker, st, pg_dsn, requests, out, stops, limits=limits)
                    workers.start_soon(one)
            group.cancel_scope.cancel()
        assert sum(len(out) for out in results) == 7
        assert len(st.sandbox.catfee.charge_counts()) == 7
        assert all(stop is not None and "energy limit" in stop for stop in stops)
        async with await PgJournal.open(pg_dsn, create=False) as journal:
            counts = await journal.counts()
        assert (counts["SETTLED"], counts[EntryState.INTENDED]) == (7, 13)


async def test_a_dead_workers_sent_orders_are_replayed_not_rebought(pg_dsn: str) -> None:
    async with stage() as st:
        requests = requests_for(st, 6)
        async with await PgJournal.open(pg_dsn) as dead:
            await dead.record_intents("catfee", requests)
            claim = await dead.claim("catfee", 3, lease=0.2)
            for entry in claim.entries:  # sent (and charged), then the worker died
                await dead.mark_sent(entry.client_order_id)
                await st.catfee.session.place(entry.request)
        results: list[DeliveryResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(produce_blocks, st)
            await worker(st, pg_dsn, requests, results, [], lease=5.0)
            group.cancel_scope.cancel()
        assert sorted(r.client_order_id for r in results) == sorted(
            r.client_order_id for r in requests
        )
        assert set(st.sandbox.catfee.charge_counts().values()) == {1}
        assert all(result.verdict is Verdict.DELIVERED for result in results)


async def test_one_delegation_named_for_two_workers_orders_is_credited_once(pg_dsn: str) -> None:
    """Two workers (each its own process-local ledger) buy for one address and the provider
    names the same delegation for both: the shared journal lets exactly one order count it."""
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        one, two = (st.catfee.session.prepare(target=target, energy=ENERGY) for _ in range(2))
        results: dict[str, DeliveryResult] = {}

        async def buy_as_worker(request: OrderRequest, reuse: bool) -> None:
            # A worker of its own: its own coordinator, ledger and journal connection.
            coordinator = Coordinator(
                st.catfee.session, st.catfee.verifier, poll=st.catfee.poll, ledger=OrderLedger()
            )
            async with await PgJournal.open(pg_dsn) as journal:
                await journal.record_intents("catfee", [one, two])
                if reuse:
                    while sim.control.count("create") == 0:  # noqa: ASYNC110
                        await anyio.sleep(0.002)
                    sim.delivery.for_target(target, Delivery.REUSE_EARLIER_TX)
                result = await coordinator.settle(
                    request, deadline=3.0, hooks=_JournalHooks(cast("Journal", journal))
                )
                await journal.record_result(request.client_order_id, result)
            results[request.client_order_id] = result

        async def ticking() -> None:
            while sim.control.count("create") < 2:  # noqa: ASYNC110
                await anyio.sleep(0.002)
            await produce_blocks(st)

        async with anyio.create_task_group() as group:
            group.start_soon(ticking)
            async with anyio.create_task_group() as orders:
                orders.start_soon(buy_as_worker, one, False)
                orders.start_soon(buy_as_worker, two, True)
            group.cancel_scope.cancel()
    named = {r.evidence.delegations[0].txid for r in results.values()}
    assert len(named) == 1  # the same tx, named for both
    delivered = [r for r in results.values() if r.verdict is Verdict.DELIVERED]
    assert len(delivered) == 1
    (winner,) = delivered
    (loser,) = (r for r in results.values() if r is not winner)
    assert loser.verdict is not Verdict.DELIVERED
    (finding,) = loser.evidence.delegations
    assert not finding.counted
    assert any(f"credited to our order {winner.client_order_id}" in r for r in finding.reasons)
    credits = await credits_of(pg_dsn)
    assert credits == [(named.pop(), winner.client_order_id)]


async def credits_of(dsn: str) -> list[tuple[str, str]]:
    import psycopg

    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        cursor = await connection.execute("SELECT tx_id, client_order_id FROM energy_async.credits")
        return [(str(row[0]), str(row[1])) for row in await cursor.fetchall()]


async def test_a_worker_sees_another_workers_order_to_the_same_address(pg_dsn: str) -> None:
    """The EnergyLimit delta rule of one worker sees the orders another worker has in flight
    to the same address: the claim loads their windows into the worker's ledger."""
    async with stage() as st:
        target = st.sandbox.new_target()
        theirs, mine = (st.catfee.session.prepare(target=target, energy=ENERGY) for _ in range(2))
        coordinator = Coordinator(
            st.catfee.session, st.catfee.verifier, poll=st.catfee.poll, ledger=OrderLedger()
        )
        touched: list[list[str]] = []
        async with anyio.create_task_group() as group:
            group.start_soon(produce_blocks, st)
            async with (
                await PgJournal.open(pg_dsn) as other,
                await PgJournal.open(pg_dsn) as journal,
            ):
                await other.record_intents("catfee", [theirs, mine])
                (held,) = (await other.claim("catfee", 1, lease=30)).entries
                assert held.client_order_id == theirs.client_order_id
                await other.mark_sent(theirs.client_order_id)  # in flight at the other worker
                async with run_worker(coordinator, journal, concurrency=1, deadline=2.0) as run:
                    async for result in run:
                        key = result.client_order_id
                        touched.append(
                            coordinator.ledger.others_touched(key, target, 0.0, time.time())
                        )
                        # The other worker settles its order, so this one may finish.
                        await other.record_result(theirs.client_order_id, _rejected(theirs))
            group.cancel_scope.cancel()
    assert touched == [[theirs.client_order_id]]


def _rejected(request: OrderRequest) -> DeliveryResult:
    from energy_async.models import Evidence

    return DeliveryResult(
        verdict=Verdict.REJECTED,
        provider="catfee",
        client_order_id=request.client_order_id,
        request=request,
        order=None,
        evidence=Evidence(),
    )


async def test_the_delta_stays_silent_for_another_workers_order_claimed_after_ours(
    pg_dsn: str,
) -> None:
    """Another worker claims and sends an order to our address *after* our claim: our ledger
    did not learn it at the claim, so the chain witness asks the journal again just before
    the EnergyLimit delta could speak, and the delta proves nothing for either order."""
    from energy_async.sandbox import Fault

    async with stage() as st:
        target = st.sandbox.new_target()
        mine, theirs = (st.catfee.session.prepare(target=target, energy=ENERGY) for _ in range(2))
        # Every answer to our create is lost: the provider never names a tx, so only the
        # delta could speak for our order (it is charged and delegated all the same).
        st.sandbox.catfee.control.faults.inject(Fault.LOST_RESPONSE, times=10_000)
        coordinator = Coordinator(
            st.catfee.session, st.catfee.verifier, poll=st.catfee.poll, ledger=OrderLedger()
        )
        results: list[DeliveryResult] = []
        async with (
            await PgJournal.open(pg_dsn) as other,
            await PgJournal.open(pg_dsn) as journal,
        ):

            async def the_other_worker() -> None:
                while st.sandbox.catfee.control.count("create") == 0:  # noqa: ASYNC110
                    await anyio.sleep(0.002)
                await other.record_intents("catfee", [theirs])
                (held,) = (await other.claim("catfee", 1, lease=30)).entries
                assert held.client_order_id == theirs.client_order_id
                await other.mark_sent(theirs.client_order_id)
                await produce_blocks(st)  # blocks only now: our delegation lands after this

            await journal.record_intents("catfee", [mine])
            async with anyio.create_task_group() as group:
                group.start_soon(the_other_worker)
                async with run_worker(coordinator, journal, concurrency=1, deadline=1.5) as run:
                    async for result in run:
                        results.append(result)
                        await other.record_result(theirs.client_order_id, _rejected(theirs))
                group.cancel_scope.cancel()
    (result,) = results
    assert result.client_order_id == mine.client_order_id
    assert st.sandbox.catfee.charges(mine.client_order_id) == 1  # charged, never answered
    assert result.evidence.energy_delta is not None and result.evidence.energy_delta > 0
    assert result.verdict is not Verdict.DELIVERED  # the delta is nobody's proof here
    assert any(
        "nobody's proof" in note and theirs.client_order_id in note
        for note in result.evidence.notes
    ), result.evidence.notes

"""The verifier against the sandbox TronGrid: real chain behaviour and every injected fault."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest

from energy_async._http import CallMeter, RetryPolicy
from energy_async.energy import delivery_tolerance, energy_for_sun, sun_for_energy
from energy_async.errors import (
    BadResponse,
    NetworkError,
    NodeError,
    RateLimited,
    ServiceUnavailable,
)
from energy_async.sandbox import Fault, Sandbox
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.faults import ServiceControl
from energy_async.verifier import Verifier

pytestmark = pytest.mark.anyio

TRX = 1_000_000
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005)


@dataclass
class Grid:
    sandbox: Sandbox
    url: str

    @property
    def chain(self) -> Chain:
        return self.sandbox.chain

    @property
    def control(self) -> ServiceControl:
        return self.sandbox.trongrid

    def verifier(self, **kw: Any) -> Verifier:
        kw.setdefault("rate_limit", 1000.0)
        kw.setdefault("retry", FAST)
        return Verifier(self.url, api_key="", **kw)

    def funded_pool(self) -> str:
        return self.chain.new_account(energy_stake_sun=10**15)


@pytest.fixture
async def grid() -> AsyncIterator[Grid]:
    # speed=0: blocks move only when a test advances them, so "not yet solid" stays true.
    sandbox = Sandbox(seed=0, speed=0.0)
    async with sandbox.serve() as urls:
        yield Grid(sandbox, urls.trongrid)


async def test_snapshot_before_and_after_a_delegation(grid: Grid) -> None:
    target, pool = grid.sandbox.new_target(), grid.funded_pool()
    async with grid.verifier() as verifier:
        before = await verifier.snapshot(target)
        assert before.exists and before.energy_limit == 0 and before.total_energy_weight > 0
        sun = sun_for_energy(65_000, before.total_energy_limit, before.total_energy_weight)
        txid = grid.chain.delegate(pool, target, sun)
        pending = await verifier.delegation(txid)
        grid.chain.advance_blocks(2)
        after = await verifier.snapshot(target)
        included = await verifier.delegation(txid)
        record = await verifier.delegated_resource(pool, target)
        grid.chain.advance_blocks(18)
        final = await verifier.delegation(txid)

    worth = energy_for_sun(sun, after.total_energy_limit, after.total_energy_weight)
    assert after.energy_limit - before.energy_limit in (worth, worth - 1)  # node uses doubles
    assert after.energy_limit >= 65_000 - delivery_tolerance(65_000)
    assert after.energy_available == after.energy_limit

    # Not in a block yet: a node's gettransactionbyid does not show it (only the tx store).
    assert not pending.found and not pending.in_block and not pending.solid
    assert pending.contract_type is None and pending.owner is None
    assert included.in_block and not included.solid and included.block_number is not None
    assert final.solid and final.block_number == included.block_number
    for tx in (included, final):
        assert tx.contract_type == "DelegateResourceContract" and tx.resource == "ENERGY"
        assert (tx.owner, tx.receiver, tx.balance_sun) == (pool, target, sun)
        assert tx.contract_ret == "SUCCESS" and not tx.failed

    assert (record.energy_sun, record.bandwidth_sun, record.records) == (sun, 0, 1)


async def test_unknown_account_does_not_exist(grid: Grid) -> None:
    async with grid.verifier() as verifier:
        snap = await verifier.snapshot(grid.chain.new_address())
        tx = await verifier.delegation("ab" * 32)
        record = await verifier.delegated_resource(grid.funded_pool(), grid.chain.new_address())
    assert not snap.exists and snap.energy_limit == 0
    assert not tx.found
    assert record.records == 0 and record.energy_sun == 0


async def test_locked_delegation_and_reclaim(grid: Grid) -> None:
    target, pool = grid.sandbox.new_target(), grid.funded_pool()
    locked = grid.chain.delegate(pool, target, 5_000 * TRX, lock=True, lock_period=100)
    grid.chain.delegate(pool, target, 2_000 * TRX)
    grid.chain.advance_blocks(1)
    async with grid.verifier() as verifier:
        tx = await verifier.delegation(locked, check_solid=False)
        both = await verifier.delegated_resource(pool, target)
        full = await verifier.snapshot(target)
        grid.chain.undelegate(pool, target, 2_000 * TRX)
        grid.chain.advance_blocks(1)
        reclaimed = await verifier.delegated_resource(pool, target)
        less = await verifier.snapshot(target)
    assert tx.lock and tx.lock_period == 100
    assert both.records == 2 and both.energy_sun == 7_000 * TRX
    assert both.energy_expires_at_ms is not None
    assert reclaimed.energy_sun == 5_000 * TRX
    assert less.energy_limit < full.energy_limit


async def test_weight_drift_stays_within_tolerance(grid: Grid) -> None:
    target, pool = grid.sandbox.new_target(), grid.funded_pool()
    async with grid.verifier() as verifier:
        snap = await verifier.snapshot(target)
        grid.chain.delegate(
            pool, target, sun_for_energy(65_000, snap.total_energy_limit, snap.total_energy_weight)
        )
        grid.chain.advance_blocks(1)
        grid.chain.set_total_energy_weight(snap.total_energy_weight * 1005 // 1000)
        drifted = await verifier.snapshot(target)
    assert drifted.total_energy_weight > snap.total_energy_weight
    assert 65_000 - delivery_tolerance(65_000) <= drifted.energy_limit < 65_000


@pytest.mark.parametrize("fault", [Fault.THROTTLE_403, Fault.THROTTLE_429, Fault.THROTTLE_503])
async def test_throttling_is_retried(grid: Grid, fault: Fault) -> None:
    target = grid.sandbox.new_target()
    grid.control.faults.inject(fault, times=2, retry_after=0)
    async with grid.verifier() as verifier:
        snap = await verifier.snapshot(target)
        assert verifier.calls == 3
    assert snap.exists and grid.control.count("getaccountresource") == 3
    grid.control.faults.inject(fault, times=5, retry_after=0)
    async with grid.verifier() as verifier:
        with pytest.raises(RateLimited) as caught:
            await verifier.snapshot(target)
    assert caught.value.attempts == 3 and caught.value.provider_message


async def test_retry_after_from_the_sandbox_is_honoured(grid: Grid) -> None:
    grid.control.faults.inject(Fault.THROTTLE_429, times=1, retry_after=0.2)
    policy = RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.001, jitter=0)
    async with grid.verifier(retry=policy) as verifier:
        started = anyio.current_time()
        await verifier.snapshot(grid.sandbox.new_target())
        assert anyio.current_time() - started >= 0.2


async def test_busy_node_is_retried_and_node_error_is_typed(grid: Grid) -> None:
    target = grid.sandbox.new_target()
    grid.control.faults.inject(Fault.NODE_BUSY, times=2)
    meter = CallMeter()
    async with grid.verifier() as verifier:
        assert (await verifier.snapshot(target, meter=meter)).exists
        assert meter.calls == 3
        grid.control.faults.inject(Fault.NODE_ERROR)
        with pytest.raises(NodeError) as caught:
            await verifier.snapshot(target)
    assert not caught.value.retryable and caught.value.attempts == 1


async def test_a_lagging_node_answers_empty_once(grid: Grid) -> None:
    target, pool = grid.sandbox.new_target(), grid.funded_pool()
    txid = grid.chain.delegate(pool, target, 1_000 * TRX)
    grid.chain.advance_blocks(1)
    grid.control.faults.inject(Fault.STALE, times=2)  # both queries of the first look
    async with grid.verifier() as verifier:
        first = await verifier.delegation(txid, check_solid=False)
        second = await verifier.delegation(txid, check_solid=False)
    assert not first.found
    assert second.found and second.in_block


@pytest.mark.parametrize(
    "fault",
    [Fault.NON_JSON, Fault.HTML_BODY, Fault.TRUNCATED_JSON, Fault.HUGE_BODY, Fault.WRONG_TYPES],
)
async def test_garbage_is_bad_response(grid: Grid, fault: Fault) -> None:
    target = grid.sandbox.new_target()
    grid.chain.delegate(grid.funded_pool(), target, 1_000 * TRX)
    grid.chain.advance_blocks(1)
    grid.control.faults.inject(fault)
    async with grid.verifier() as verifier:
        with pytest.raises(BadResponse):
            await verifier.snapshot(target)
        assert (await verifier.snapshot(target)).energy_limit > 0  # the next answer is fine


@pytest.mark.parametrize("fault", [Fault.SERVER_ERROR, Fault.BAD_GATEWAY])
async def test_server_errors_are_retried(grid: Grid, fault: Fault) -> None:
    target = grid.sandbox.new_target()
    grid.control.faults.inject(fault, times=2)
    async with grid.verifier() as verifier:
        assert (await verifier.snapshot(target)).exists
        grid.control.faults.inject(fault, times=3)
        with pytest.raises(ServiceUnavailable):
            await verifier.snapshot(target)


async def test_lost_response_and_unreachable_are_network_errors(grid: Grid) -> None:
    target = grid.sandbox.new_target()
    grid.control.faults.inject(Fault.LOST_RESPONSE)
    async with grid.verifier() as verifier:
        assert (await verifier.snapshot(target)).exists
        grid.control.unreachable = True
        with pytest.raises(NetworkError) as caught:
            await verifier.snapshot(target)
    assert caught.value.attempts == 3


async def test_many_concurrent_snapshots_share_one_session(grid: Grid) -> None:
    targets = [grid.sandbox.new_target() for _ in range(20)]
    meter = CallMeter()
    results: list[bool] = []

    async def look(address: str) -> None:
        results.append((await verifier.snapshot(address, meter=meter)).exists)

    async with grid.verifier(max_connections=4) as verifier, anyio.create_task_group() as group:
        for address in targets * 5:
            group.start_soon(look, address)
    assert results == [True] * 100 and meter.calls == 100
    assert grid.control.count("getaccountresource") == 100


async def test_orders_asking_for_totals_after_one_block_share_one_read(grid: Grid) -> None:
    block_ms = grid.chain.block_timestamp_ms(grid.chain.head())  # the latest block, sealed
    targets = [grid.sandbox.new_target() for _ in range(8)]
    answers: list[tuple[object, object]] = []
    meters = [CallMeter() for _ in targets]
    async with grid.verifier() as verifier:

        async def price(target: str, meter: CallMeter) -> None:
            answers.append(await verifier.priced_after(block_ms, target, meter=meter))

        async with anyio.create_task_group() as group:
            for target, meter in zip(targets, meters, strict=True):
                group.start_soon(price, target, meter)
        # One more order, once the totals are known: no read at all.
        later = CallMeter()
        known, snapshot = await verifier.priced_after(block_ms, targets[0], meter=later)
    assert grid.control.count("getaccountresource") == 1  # one read for all eight
    assert sorted(meter.calls for meter in meters) == [0] * 7 + [1]  # counted to its reader
    assert all(totals is not None for totals, _ in answers)
    assert sum(snap is not None for _, snap in answers) == 1  # the reader's own snapshot
    assert known is not None and snapshot is None and later.calls == 0
    assert known.node_time_ms >= block_ms
    assert known.total_energy_weight == grid.chain.total_energy_weight


async def test_totals_read_before_a_block_do_not_price_it(grid: Grid) -> None:
    target = grid.sandbox.new_target()
    async with grid.verifier() as verifier:
        await verifier.snapshot(target)  # totals learnt now...
        grid.chain.advance_blocks(2)  # ...then a block is sealed after them
        block_ms = grid.chain.block_timestamp_ms(grid.chain.head())
        assert verifier.totals.since(block_ms) is None
        meter = CallMeter()
        totals, snapshot = await verifier.priced_after(block_ms, target, meter=meter)
    assert meter.calls == 1 and snapshot is not None  # read again, after the block
    assert totals is not None and totals.node_time_ms >= block_ms


async def test_a_stuck_totals_read_of_another_order_is_not_waited_out(grid: Grid) -> None:
    block_ms = grid.chain.block_timestamp_ms(grid.chain.head())
    stuck, mine = grid.sandbox.new_target(), grid.sandbox.new_target()
    grid.control.faults.inject(Fault.LATENCY, endpoint="getaccountresource", delay=5.0)
    other_done = anyio.Event()
    async with grid.verifier(total_timeout=30.0) as verifier:

        async def another_order() -> None:
            far = grid.chain.block_timestamp_ms(grid.chain.head() + 10_000)
            await verifier.priced_after(far, stuck)
            other_done.set()

        async with anyio.create_task_group() as group:
            group.start_soon(another_order)
            while grid.control.faults.pending():  # noqa: ASYNC110 (the stuck read has left)
                await anyio.sleep(0.002)
            totals, snapshot = await verifier.priced_after(block_ms, mine)
            still_waiting = not other_done.is_set()
            group.cancel_scope.cancel()
    assert still_waiting  # this order read its own totals while the other read hung
    assert totals is not None and snapshot is not None and snapshot.address == mine

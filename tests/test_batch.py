"""Batches through the Python API: streaming, isolation of failures, journal, resume, limits."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

from energy_async import DeliveryResult, OrderRequest, Verdict
from energy_async.batch import Outcome, Skipped, SpendGuard
from energy_async.errors import JournalError
from energy_async.journal import EntryState, Journal
from energy_async.models import Order
from energy_async.sandbox import Delivery
from tests.coordination import Stage, stage

pytestmark = pytest.mark.anyio

ENERGY = 65_000


async def produce_blocks(st: Stage) -> None:
    while True:
        await anyio.sleep(0.01)
        st.sandbox.chain.advance_blocks(1)


def requests_for(st: Stage, count: int) -> list[OrderRequest]:
    session = st.catfee.session
    return [session.prepare(target=st.sandbox.new_target(), energy=ENERGY) for _ in range(count)]


async def run(st: Stage, requests: list[OrderRequest], **options: object) -> list[DeliveryResult]:
    results: list[DeliveryResult] = []
    async with anyio.create_task_group() as group:
        group.start_soon(produce_blocks, st)
        async with st.catfee.buy_many(requests, **options) as batch:  # type: ignore[arg-type]
            async for result in batch:
                results.append(result)
        group.cancel_scope.cancel()
    return results


async def test_results_stream_out_and_failures_do_not_cancel_the_rest() -> None:
    async with stage() as st:
        requests = requests_for(st, 30)
        plan = st.sandbox.catfee.delivery
        plan.for_target(requests[3].target, Delivery.WRONG_RECEIVER)
        plan.for_target(requests[7].target, Delivery.CLAIM_WITHOUT_DELEGATING)
        plan.for_target(requests[9].target, Delivery.NEVER_LANDS)
        results = await run(st, requests, concurrency=8, deadline=1.5)
        by_id = {result.client_order_id: result for result in results}
        assert len(results) == len(by_id) == 30
        assert by_id[requests[3].client_order_id].verdict is Verdict.PROVIDER_MISMATCH
        assert by_id[requests[7].client_order_id].verdict is Verdict.PROVIDER_MISMATCH
        assert by_id[requests[9].client_order_id].verdict is Verdict.NOT_DELIVERED
        others = [r for i, r in enumerate(requests) if i not in (3, 7, 9)]
        assert all(by_id[r.client_order_id].verdict is Verdict.DELIVERED for r in others)
        # The slow order (NEVER_LANDS waits for its deadline) settles last, not first.
        assert results[-1].client_order_id == requests[9].client_order_id
        charges = st.sandbox.catfee.charge_counts()
        assert max(charges.values()) == 1
        assert sum(charges.values()) == 30


async def test_journal_records_every_step_and_resume_buys_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "batch.journal"
    async with stage() as st:
        requests = requests_for(st, 12)
        async with await Journal.open(path) as journal:
            results = await run(st, requests, concurrency=4, deadline=2.0, journal=journal)
            assert {r.verdict for r in results} == {Verdict.DELIVERED}
            counts = await journal.counts()
            assert counts["SETTLED"] == 12 and counts["SETTLED:DELIVERED"] == 12
            entry = await journal.get(requests[0].client_order_id)
            assert entry is not None and entry.order is not None and entry.result is not None
        creates = st.sandbox.catfee.control.count("create")
        async with await Journal.open(path, create=False) as journal:
            resumed: list[DeliveryResult] = []
            async with st.catfee.resume(journal, concurrency=4, deadline=2.0) as batch:
                async for result in batch:
                    resumed.append(result)
        assert resumed == []  # everything was settled: nothing is sent again
        assert st.sandbox.catfee.control.count("create") == creates


async def test_cancelled_batch_leaves_in_flight_orders_unsettled_and_resume_finishes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "batch.journal"
    async with stage() as st:
        requests = requests_for(st, 20)
        # Broadcasts that never land keep every order open until the batch is cancelled.
        st.sandbox.catfee.delivery.default = Delivery.NEVER_LANDS
        async with await Journal.open(path) as journal:
            with anyio.move_on_after(0.5):
                await run(st, requests, concurrency=5, deadline=30.0, journal=journal)
            unsettled = await journal.unsettled()
            states = {entry.state for entry in unsettled}
            assert len(unsettled) == 20
            assert EntryState.SENT in states or EntryState.ORDERED in states
            assert EntryState.INTENDED in states  # the rest were never sent
        sent_before = {
            entry.client_order_id for entry in unsettled if entry.state is not EntryState.INTENDED
        }
        st.sandbox.catfee.delivery.clear()
        async with await Journal.open(path, create=False) as journal:
            resumed: list[DeliveryResult] = []
            async with anyio.create_task_group() as group:
                group.start_soon(produce_blocks, st)
                async with st.catfee.resume(journal, concurrency=8, deadline=1.0) as batch:
                    async for result in batch:
                        resumed.append(result)
                group.cancel_scope.cancel()
            assert len(resumed) == 20
            assert (await journal.counts())["SETTLED"] == 20
        # Every order charged exactly once across the crash and the resume.
        charges = st.sandbox.catfee.charge_counts()
        assert {request.client_order_id for request in requests} == set(charges)
        assert set(charges.values()) == {1}
        verdicts = {r.client_order_id: r.verdict for r in resumed}
        # Re-attached orders keep the broadcast that never landed; the rest are new and land.
        assert sent_before and all(verdicts[c] is Verdict.NOT_DELIVERED for c in sent_before)
        never_sent = {r.client_order_id for r in requests} - sent_before
        assert never_sent and all(verdicts[c] is Verdict.DELIVERED for c in never_sent)


async def test_spend_guard_stops_new_orders_cleanly_and_says_which_limit() -> None:
    async with stage() as st:
        requests = requests_for(st, 10)
        guard = SpendGuard(max_energy=4 * ENERGY)
        results: list[DeliveryResult] = []
        async with anyio.create_task_group() as group:
            group.start_soon(produce_blocks, st)
            async with st.catfee.buy_many(
                requests, concurrency=3, deadline=2.0, spend_guard=guard
            ) as batch:
                async for result in batch:
                    results.append(result)
                assert batch.stop_reason is not None and "energy limit" in batch.stop_reason
            group.cancel_scope.cancel()
        assert len(results) == 4
        assert sum(st.sandbox.catfee.charge_counts().values()) == 4


async def test_sun_limit_is_never_overshot_by_a_wave_of_orders() -> None:
    async with stage() as st:
        requests = requests_for(st, 10)
        guard = SpendGuard(max_sun=3_400_000)  # about three orders at 1.105 TRX each
        results = await run(st, requests, concurrency=10, deadline=2.0, spend_guard=guard)
        spent = st.sandbox.catfee.total_charged_sun
        assert spent <= 3_400_000
        assert len(results) == 3


async def test_a_resume_counts_the_journals_spending_against_the_total_limit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "batch.journal"
    async with stage() as st:
        requests = requests_for(st, 5)
        async with await Journal.open(path) as journal:
            guard = SpendGuard(max_energy=2 * ENERGY)
            first = await run(
                st, requests, concurrency=1, deadline=2.0, journal=journal, spend_guard=guard
            )
        assert len(first) == 2
        async with await Journal.open(path, create=False) as journal:
            again = SpendGuard(max_energy=2 * ENERGY)  # the same limit, a new process
            outcomes: list[Outcome] = []
            async with st.catfee.resume(
                journal, concurrency=1, deadline=2.0, spend_guard=again
            ) as batch:
                async for outcome in batch.outcomes():
                    outcomes.append(outcome)
        assert sum(st.sandbox.catfee.charge_counts().values()) == 2  # not 4
        assert len(outcomes) == 3
        assert all(isinstance(o, Skipped) and not o.sent for o in outcomes)
        assert batch.stop_reason is not None
        assert "130,000 by earlier runs of this batch" in batch.stop_reason


def test_earlier_spending_counts_against_the_total_and_prices_the_next_order() -> None:
    guard = SpendGuard(max_sun=3_000_000)
    guard.seed_total(2 * ENERGY, 2 * 1_105_000)
    # No quote: the earlier runs' price is the estimate, and one more order would cross it.
    reason = guard.admit(ENERGY, now=0.0)
    assert reason is not None and "sun limit reached: 2,210,000 of 3,000,000" in reason
    roomy = SpendGuard(max_energy=3 * ENERGY)
    roomy.seed_total(2 * ENERGY, 0)
    assert roomy.admit(ENERGY, now=0.0) is None
    assert roomy.admit(ENERGY, now=0.0) is not None


def test_earlier_orders_without_a_price_are_counted_at_the_highest_price_known() -> None:
    # Two earlier orders, one priced (1,105,000 sun), one whose provider never said a price
    # (TronSave's orders carry none): that one costs as much, not nothing.
    guard = SpendGuard(max_sun=3_000_000)
    guard.seed_total(2 * ENERGY, 1_105_000, unpriced_energy=ENERGY)
    reason = guard.admit(ENERGY, now=0.0)
    assert reason is not None and "2,210,000 of 3,000,000" in reason
    # A quote above the earlier average is the price: never the lower of the two.
    quoted = SpendGuard(max_sun=10_000_000, quoted_sun_per_energy=30.0)
    quoted.seed_total(2 * ENERGY, 1_105_000, unpriced_energy=ENERGY)
    assert quoted.admit(ENERGY, now=0.0) is None  # 1,105,000 + 1,950,000 + 1,950,000 reserved
    # No price known at all: the sun limit cannot be kept, so nothing more is sent.
    blind = SpendGuard(max_sun=3_000_000)
    blind.seed_total(ENERGY, 0, unpriced_energy=ENERGY)
    reason = blind.admit(ENERGY, now=0.0)
    assert reason is not None and "price no provider reported" in reason
    # An energy limit needs no price: it still counts the energy.
    energy_only = SpendGuard(max_energy=2 * ENERGY)
    energy_only.seed_total(ENERGY, 0, unpriced_energy=ENERGY)
    assert energy_only.admit(ENERGY, now=0.0) is None and energy_only.blind is None
    assert energy_only.admit(ENERGY, now=0.0) is not None


def test_the_last_hours_unpriced_orders_count_in_the_hourly_sun_limit() -> None:
    guard = SpendGuard(max_sun_per_hour=2_500_000, quoted_sun_per_energy=17.0)
    guard.seed(ENERGY, 0, at=0.0, unpriced_energy=ENERGY)  # 1,105,000 at the quote
    assert guard.admit(ENERGY, now=1.0) is None
    reason = guard.admit(ENERGY, now=2.0)
    assert reason is not None and "hourly sun limit" in reason


def test_spend_guard_hourly_window_forgets_old_spending() -> None:
    guard = SpendGuard(max_energy_per_hour=2 * ENERGY)
    assert guard.admit(ENERGY, now=0.0) is None
    assert guard.admit(ENERGY, now=10.0) is None
    reason = guard.admit(ENERGY, now=20.0)
    assert reason is not None and "hourly energy limit" in reason
    assert guard.admit(ENERGY, now=3_601.0) is None  # the first order left the window


def test_spend_limits_must_be_positive() -> None:
    from energy_async import ConfigurationError

    with pytest.raises(ConfigurationError):
        SpendGuard(max_sun=0)


async def test_a_failing_journal_stops_sending_and_every_row_still_comes_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with stage() as st:
        requests = requests_for(st, 10)
        async with await Journal.open(tmp_path / "batch.journal") as journal:
            real = journal.record_result
            written = 0

            async def full_disk(client_order_id: str, result: DeliveryResult) -> None:
                nonlocal written
                if written >= 2:
                    raise JournalError("database or disk is full", path=journal.path)
                written += 1
                await real(client_order_id, result)

            monkeypatch.setattr(journal, "record_result", full_disk)
            outcomes: list[Outcome] = []
            async with anyio.create_task_group() as group:
                group.start_soon(produce_blocks, st)
                async with st.catfee.buy_many(
                    requests, concurrency=2, deadline=2.0, journal=journal
                ) as batch:
                    async for outcome in batch.outcomes():
                        outcomes.append(outcome)
                group.cancel_scope.cancel()
        assert batch.journal_error is not None and "disk is full" in str(batch.journal_error)
        assert batch.stop_reason is not None and "journal failed" in batch.stop_reason
        assert sorted(o.client_order_id for o in outcomes) == sorted(
            r.client_order_id for r in requests
        )
        not_sent = [o for o in outcomes if isinstance(o, Skipped)]
        assert not_sent and all(not o.sent for o in not_sent)
        charges = st.sandbox.catfee.charge_counts()
        assert sum(charges.values()) == len(requests) - len(not_sent)
        assert max(charges.values()) == 1


async def test_a_refusal_for_money_stops_new_orders_and_the_refused_row_stays_to_do(
    tmp_path: Path,
) -> None:
    async with stage() as st:
        requests = requests_for(st, 6)
        st.sandbox.catfee.delivery.for_target(requests[2].target, Delivery.REFUSE)
        async with await Journal.open(tmp_path / "batch.journal") as journal:
            outcomes: list[Outcome] = []
            async with anyio.create_task_group() as group:
                group.start_soon(produce_blocks, st)
                async with st.catfee.buy_many(
                    requests, concurrency=1, deadline=2.0, journal=journal
                ) as batch:
                    async for outcome in batch.outcomes():
                        outcomes.append(outcome)
                group.cancel_scope.cancel()
            refused = await journal.get(requests[2].client_order_id)
        assert batch.stop_reason is not None and "cannot pay" in batch.stop_reason
        assert [isinstance(o, Skipped) for o in outcomes] == [False, False, True, True, True, True]
        assert refused is not None and refused.state is not EntryState.SETTLED
        assert sum(st.sandbox.catfee.charge_counts().values()) == 2


def test_a_missing_price_is_never_free() -> None:
    guard = SpendGuard(max_sun=10_000_000)
    assert guard.admit(ENERGY, now=0.0) is None
    priced = Order(provider="catfee", id="1", client_order_id="a", target="T", energy=ENERGY)
    guard.settle(ENERGY, msgspec.structs.replace(priced, cost_sun=1_105_000), now=1.0)
    assert guard.admit(ENERGY, now=2.0) is None
    guard.settle(ENERGY, priced, now=3.0)  # no cost_sun: counted at the highest price seen
    assert guard._sun == 2 * 1_105_000
    blind = SpendGuard(max_sun=10_000_000)
    assert blind.admit(ENERGY, now=0.0) is None
    blind.settle(ENERGY, priced, now=1.0)  # no price and none known: stop, never count 0
    assert blind.blind is not None and blind.admit(ENERGY, now=2.0) == blind.blind
    quoted = SpendGuard(max_sun=10_000_000, quoted_sun_per_energy=17.0)
    assert quoted.admit(ENERGY, now=0.0) is None
    quoted.settle(ENERGY, priced, now=1.0)
    assert quoted._sun == 17 * ENERGY and quoted.blind is None

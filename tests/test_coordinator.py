"""Every cell of the verdict table and every attribution case, through the Python API.

The providers and the chain are the sandbox's, implemented from the documentation; the test
only stages what happens (a delivery behaviour, a fault, a chain event at an exact block) and
checks the verdict, the evidence and the charges.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import anyio
import pytest

from energy_async import DeliveryResult, PollPolicy, Verdict
from energy_async.energy import delivery_tolerance
from energy_async.models import Basis, Order
from energy_async.sandbox import Delivery, Fault
from energy_async.watch.policy import NODE_CLOCK_MARGIN_MS
from tests.coordination import TICK, Stage, stage, tick_after_create

pytestmark = pytest.mark.anyio

ENERGY = 65_000


async def buy(
    st: Stage,
    target: str,
    *,
    provider: str = "catfee",
    hook: Callable[[], None] | None = None,
    deadline: float = 3.0,
    **order: object,
) -> DeliveryResult:
    result: DeliveryResult | None = None
    async with anyio.create_task_group() as group:
        group.start_soon(tick_after_create, st.sandbox, st.sim(provider), hook)
        result = await st.coordinator(provider).buy(
            target=target, energy=ENERGY, duration="1h", deadline=deadline, **order
        )
        group.cancel_scope.cancel()
    assert result is not None
    return result


def charged_once(st: Stage, result: DeliveryResult, provider: str = "catfee") -> None:
    assert st.sim(provider).charges(result.client_order_id) == 1


# --- provider says DELEGATION_CONFIRMED --------------------------------------------------------


async def test_confirmed_and_full_energy_is_delivered() -> None:
    from energy_async import PollPolicy

    # require_solid keeps watching long enough for the provider's confirmation to arrive.
    async with stage(
        PollPolicy(initial_interval=0.01, max_interval=0.05, require_solid=True)
    ) as st:
        target = st.sandbox.new_target()
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert result.order is not None
    assert result.order.confirm_status == "DELEGATION_CONFIRMED"
    evidence = result.evidence
    assert evidence.delegation is not None and evidence.delegation.solid
    assert evidence.delegation.receiver == target
    assert evidence.delegation.resource == "ENERGY"
    assert evidence.energy_before == 0
    assert evidence.attributed_energy is not None and evidence.attributed_energy >= ENERGY
    assert evidence.energy_after == evidence.energy_before + evidence.attributed_energy
    assert evidence.delegated_resource is not None
    assert evidence.delegated_resource.energy_sun == evidence.delegation.balance_sun
    statuses = [change.confirm_status for change in evidence.status_history]
    assert statuses[0] == "UNCONFIRMED" and statuses[-1] == "DELEGATION_CONFIRMED"
    assert evidence.trongrid_calls > 0 and evidence.provider_calls > 0
    assert evidence.started_at <= evidence.ordered_at <= evidence.settled_at  # type: ignore[operator]
    charged_once(st, result)


async def test_confirmed_but_only_half_delegated_is_under_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.PARTIAL)
        result = await buy(st, target)
    assert result.verdict is Verdict.UNDER_DELIVERED
    attributed = result.evidence.attributed_energy
    assert attributed is not None and ENERGY * 0.45 < attributed < ENERGY * 0.55
    charged_once(st, result)


async def test_confirmed_without_delegating_is_provider_mismatch() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.mefree.delivery.for_target(target, Delivery.CLAIM_WITHOUT_DELEGATING)
        result = await buy(st, target, provider="mefree")
    assert result.verdict is Verdict.PROVIDER_MISMATCH
    assert result.order is not None and result.order.confirm_status == "DELEGATION_CONFIRMED"
    assert result.evidence.delegation is not None and not result.evidence.delegation.found
    assert result.evidence.energy_after == result.evidence.energy_before == 0
    charged_once(st, result, "mefree")


async def test_delegation_to_another_receiver_is_provider_mismatch() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.WRONG_RECEIVER)
        result = await buy(st, target)
    assert result.verdict is Verdict.PROVIDER_MISMATCH
    tx = result.evidence.delegation
    assert tx is not None and tx.in_block and tx.receiver != target
    assert any("not to the target" in note for note in result.evidence.notes)


# --- provider still pending --------------------------------------------------------------------


async def test_pending_provider_with_full_energy_on_chain_is_delivered_and_noted() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.PROVIDER_LAG)
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert result.order is not None and result.order.status == "PAYMENT_SUCCESS"
    assert any("before the provider confirmed" in note for note in result.evidence.notes)
    assert any("EnergyLimit delta only" in note for note in result.evidence.notes)


async def test_pending_provider_with_part_on_chain_is_under_delivered_at_the_deadline() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        sim.delivery.for_target(target, Delivery.PROVIDER_LAG)
        weight = st.sandbox.chain.total_energy_weight
        # The network doubles its stake between the provider's quote and the next block:
        # the delegated TRX is now worth half the energy ordered.
        result = await buy(
            st,
            target,
            hook=lambda: st.sandbox.chain.set_total_energy_weight(weight * 2),
            deadline=1.0,
        )
    assert result.verdict is Verdict.UNDER_DELIVERED
    assert "settled at the deadline" in result.evidence.notes


class _SeenOrders:
    """Hooks that keep every order the provider answered with, as the client saw it."""

    def __init__(self) -> None:
        self.orders: list[Order] = []

    async def on_sending(self, client_order_id: str) -> None:
        return None

    async def on_order(self, client_order_id: str, order: Order) -> None:
        self.orders.append(order)


async def test_a_claim_made_after_the_provider_named_its_tx_is_heard_at_the_deadline() -> None:
    # The provider names a made-up tx, still unconfirmed, and is asked at its slowest pace from
    # then on (longer than the deadline here); it claims the tx confirmed a block later. The
    # chain never shows the tx: at the deadline the provider is asked once more, so its false
    # claim is judged (PROVIDER_MISMATCH), never a stale "unconfirmed" (NOT_DELIVERED).
    slow = PollPolicy(initial_interval=0.01, max_interval=30.0, confirm_grace=60.0)
    async with stage(slow) as st:
        target = st.sandbox.new_target()
        sim, chain = st.sandbox.catfee, st.sandbox.chain
        sim.delivery.for_target(target, Delivery.CLAIM_WITHOUT_DELEGATING)
        seen = _SeenOrders()

        async def blocks() -> None:
            while not sim.orders:  # noqa: ASYNC110 (no event for "the create was processed")
                await anyio.sleep(0.002)
            chain.advance_blocks(1)  # the provider now names its tx, unconfirmed
            while not any(order.delegate_hashes for order in seen.orders):  # noqa: ASYNC110
                await anyio.sleep(0.002)
            chain.advance_blocks(2)  # ... and from now on says it is confirmed

        request = st.catfee.session.prepare(target=target, energy=ENERGY)
        async with anyio.create_task_group() as group:
            group.start_soon(blocks)
            result = await st.catfee.settle(request, deadline=1.0, hooks=seen)
    named = [order for order in seen.orders if order.delegate_hashes]
    assert named and named[0].confirm_status == "UNCONFIRMED"
    assert result.verdict is Verdict.PROVIDER_MISMATCH, result.evidence.notes
    assert result.order is not None and result.order.confirm_status == "DELEGATION_CONFIRMED"
    assert "settled at the deadline" in result.evidence.notes


@pytest.mark.slow  # > 2 s: the sandbox finishes the slow answer before it stops
async def test_a_tx_read_cut_off_by_the_deadline_is_read_once_more_before_the_verdict() -> None:
    # The provider names its tx, but the node is slow to answer the first read of it: the
    # deadline cuts that read off. One bounded last look reads it again, so the verdict rests
    # on the chain (DELIVERED), not on a read that never finished (UNKNOWN).
    async with stage() as st:
        grid = st.sandbox.trongrid
        grid.faults.inject(Fault.LATENCY, endpoint="gettransactioninfobyid", delay=2.0)
        result = await buy(st, st.sandbox.new_target(), deadline=1.0)
    assert grid.faults.pending() == 0  # the slow read was the first one
    assert result.verdict is Verdict.DELIVERED, result.evidence.notes
    assert result.evidence.basis is Basis.TX
    assert "settled at the deadline" in result.evidence.notes


async def test_broadcast_that_never_lands_is_not_delivered_at_the_deadline() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.NEVER_LANDS)
        result = await buy(st, target, deadline=1.0)
    assert result.verdict is Verdict.NOT_DELIVERED
    tx = result.evidence.delegation
    assert tx is not None and not tx.in_block
    # Never in a block, so no node ever showed it: gettransactionbyid reads only the tx store.
    assert not tx.found
    assert result.evidence.energy_after == 0
    charged_once(st, result)


# --- provider refused or failed ----------------------------------------------------------------


async def test_refusal_is_rejected_and_nothing_is_charged() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.REFUSE)
        result = await st.catfee.buy(target=target, energy=ENERGY, deadline=2.0)
    assert result.verdict is Verdict.REJECTED
    assert result.order is None
    assert result.error is not None and "insufficient balance" in result.error.lower()
    assert st.sandbox.catfee.charges(result.client_order_id) == 0
    assert st.sandbox.catfee.total_charged_sun == 0


async def test_failed_provider_with_full_energy_on_chain_is_delivered_as_contradiction() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.FAIL_BUT_DELEGATED)
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert any("contradiction" in note for note in result.evidence.notes)


async def test_failed_provider_with_part_on_chain_is_under_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.FAIL_BUT_DELEGATED)
        weight = st.sandbox.chain.total_energy_weight
        result = await buy(
            st, target, hook=lambda: st.sandbox.chain.set_total_energy_weight(weight * 2)
        )
    assert result.verdict is Verdict.UNDER_DELIVERED
    assert result.order is not None and result.order.status == "DELEGATE_FAIL"


# --- provider unreachable -----------------------------------------------------------------------


def lose_every_provider_answer(st: Stage, provider: str = "catfee") -> None:
    """Every request takes effect (the first create charges) and every answer is lost."""
    st.sim(provider).control.faults.inject(Fault.LOST_RESPONSE, times=10_000)


async def test_unreachable_provider_with_full_energy_on_chain_is_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        lose_every_provider_answer(st)
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert result.order is None
    assert any("EnergyLimit delta only" in note for note in result.evidence.notes)
    charged_once(st, result)  # every replay was de-duplicated by client_order_id


async def test_unreachable_provider_with_part_on_chain_is_under_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.PARTIAL)
        lose_every_provider_answer(st)
        result = await buy(st, target, deadline=1.0)
    assert result.verdict is Verdict.UNDER_DELIVERED
    charged_once(st, result)


async def test_provider_and_chain_unreachable_is_unknown_and_resolvable_later() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        lose_every_provider_answer(st)

        def chain_goes_dark() -> None:
            st.sandbox.trongrid.unreachable = True

        result = await buy(st, target, hook=chain_goes_dark, deadline=1.0)
        assert result.verdict is Verdict.UNKNOWN
        assert result.client_order_id and result.client_order_id in (result.error or "")
        # Later, both are back: the same client_order_id finds the order, buying nothing.
        st.sandbox.catfee.control.faults.clear()
        st.sandbox.trongrid.unreachable = False
        order = await st.catfee.session.place(result.request)
        assert order.client_order_id == result.client_order_id
        charged_once(st, result)


async def test_lost_create_is_reconciled_by_replay_and_charged_once() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert result.order is not None
    assert st.sandbox.catfee.control.count("create") >= 2
    charged_once(st, result)


# --- attribution when the raw EnergyLimit delta lies ---------------------------------------------


async def test_two_orders_to_one_address_in_flight_are_each_attributed_their_own() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        results: list[DeliveryResult] = []

        async def one(provider: str) -> None:
            results.append(
                await st.coordinator(provider).buy(target=target, energy=ENERGY, deadline=3.0)
            )

        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, st.sandbox, st.sandbox.mefree, None)
            async with anyio.create_task_group() as orders:
                orders.start_soon(one, "catfee")
                orders.start_soon(one, "mefree")
            group.cancel_scope.cancel()
    assert [r.verdict for r in results] == [Verdict.DELIVERED, Verdict.DELIVERED]
    hashes = {r.evidence.delegation.txid for r in results if r.evidence.delegation}
    assert len(hashes) == 2
    for result in results:
        attributed = result.evidence.attributed_energy
        assert attributed is not None and ENERGY <= attributed < ENERGY + 100
    final = max(r.evidence.energy_after or 0 for r in results)
    assert final >= 2 * ENERGY  # the delta shows both; each order claims only its own


async def test_older_delegation_reclaimed_in_the_window_does_not_hide_delivery() -> None:
    async with stage() as st:
        chain = st.sandbox.chain
        target = st.sandbox.new_target()
        other = chain.new_account(energy_stake_sun=100_000 * 10**6)
        chain.delegate(other, target, 20_000 * 10**6)
        chain.advance_blocks(2)
        before = chain.energy_limit(target)
        assert before > ENERGY
        result = await buy(st, target, hook=lambda: chain.undelegate(other, target, 20_000 * 10**6))
    assert result.verdict is Verdict.DELIVERED
    evidence = result.evidence
    assert evidence.energy_before == before
    assert evidence.energy_delta is not None and evidence.energy_delta < 0
    assert any("other delegations" in note for note in evidence.notes)


async def test_energy_weight_drift_within_tolerance_is_still_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        chain = st.sandbox.chain
        weight = chain.total_energy_weight
        result = await buy(
            st, target, hook=lambda: chain.set_total_energy_weight(weight * 1003 // 1000)
        )
    assert result.verdict is Verdict.DELIVERED
    attributed = result.evidence.attributed_energy
    assert attributed is not None and ENERGY - delivery_tolerance(ENERGY) <= attributed < ENERGY


async def test_energy_weight_drift_beyond_tolerance_is_under_delivered() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        chain = st.sandbox.chain
        weight = chain.total_energy_weight
        result = await buy(
            st, target, hook=lambda: chain.set_total_energy_weight(weight * 102 // 100)
        )
    assert result.verdict is Verdict.UNDER_DELIVERED


async def test_bad_input_raises_before_anything_is_sent() -> None:
    from energy_async import InvalidAddress, InvalidOrder

    async with stage() as st:
        with pytest.raises(InvalidAddress):
            await st.catfee.buy(target="TNotAnAddress", energy=ENERGY)
        with pytest.raises(InvalidOrder):
            await st.catfee.buy(target=st.sandbox.new_target(), energy=1_000)
        assert st.sandbox.catfee.control.count() == 0
        assert st.sandbox.trongrid.count() == 0


# --- a verdict no provider, node or neighbour can fool (issue 8) ---------------------------------


async def ticking(st: Stage, *, after_creates: int) -> None:
    """Produce blocks once the provider has seen more than ``after_creates`` creates."""
    sim = st.sandbox.catfee
    while sim.control.count("create") <= after_creates:  # noqa: ASYNC110
        await anyio.sleep(0.002)
    while True:
        await anyio.sleep(TICK)
        st.sandbox.chain.advance_blocks(1)


async def test_a_tx_of_an_earlier_order_of_ours_is_not_this_orders() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        first = await buy(st, target)
        # One more block: the earlier tx is sealed before the next order's read, so causality
        # speaks too (a block of the read's own second may still be packing: see policy.py).
        st.sandbox.chain.advance_blocks(1)
        st.sandbox.catfee.delivery.for_target(target, Delivery.REUSE_EARLIER_TX)
        second = await buy(st, target)
    assert first.verdict is Verdict.DELIVERED
    assert first.evidence.delegation is not None
    assert second.verdict is Verdict.PROVIDER_MISMATCH
    (finding,) = second.evidence.delegations
    assert finding.txid == first.evidence.delegation.txid and not finding.counted
    assert any("before the order was placed" in reason for reason in finding.reasons)
    assert any(f"credited to our order {first.client_order_id}" in r for r in finding.reasons)
    assert finding.consistent_reads >= 2
    assert second.evidence.attributed_energy is None


async def test_a_delivered_order_reads_no_head_and_guesses_its_delegator_next_time() -> None:
    async with stage() as st:
        grid = st.sandbox.trongrid
        first = await buy(st, st.sandbox.new_target())
        second = await buy(st, st.sandbox.new_target())
    assert first.verdict is second.verdict is Verdict.DELIVERED
    assert grid.count("getnowblock") == 0  # the node's Date header is the causality anchor
    # The read before ordering; info and body beside the target's snapshot; the record.
    for result in (first, second):
        assert result.evidence.trongrid_calls == 5
        assert result.evidence.energy_after is not None
        record = result.evidence.delegated_resource
        assert record is not None and result.evidence.delegation is not None
        assert record.from_address == result.evidence.delegation.owner
    assert grid.count("getdelegatedresourcev2") == 2  # the second order's guess was right
    assert st.catfee.delegators.last == second.evidence.delegation.owner  # type: ignore[union-attr]


async def test_an_order_shares_the_network_totals_another_order_is_reading() -> None:
    # Another order's read of the totals is under way (slowed down here) when this order's
    # tx is named: the first look reads no snapshot of its own, and the tx is priced by the
    # totals that read brings back, read after the tx's block. Four calls, not five.
    async with stage() as st:
        await buy(st, st.sandbox.new_target())  # the delegator is known: one round trip
        grid, verifier = st.sandbox.trongrid, st.catfee.verifier
        stranger = st.sandbox.new_target()
        start_other = anyio.Event()

        async def another_order() -> None:
            await start_other.wait()
            far = st.sandbox.chain.block_timestamp_ms(st.sandbox.chain.head() + 10_000)
            await verifier.priced_after(far, stranger)

        async def blocks_once_ordered() -> None:
            while st.sandbox.catfee.control.count("create") < 2:  # noqa: ASYNC110
                await anyio.sleep(0.002)
            # This order is placed: the other order's read starts now, and is slow.
            grid.faults.inject(Fault.LATENCY, endpoint="getaccountresource", delay=0.5)
            start_other.set()
            while True:
                await anyio.sleep(TICK)
                st.sandbox.chain.advance_blocks(1)

        async with anyio.create_task_group() as group:
            group.start_soon(another_order)
            group.start_soon(blocks_once_ordered)
            result = await st.catfee.buy(
                target=st.sandbox.new_target(), energy=ENERGY, duration="1h", deadline=3.0
            )
            group.cancel_scope.cancel()
    assert result.verdict is Verdict.DELIVERED
    assert grid.faults.pending() == 0  # the other read was the slow one
    assert result.evidence.trongrid_calls == 4  # before ordering; info, body; the record
    assert result.evidence.energy_after is None  # no snapshot of its own after the block
    assert result.evidence.total_energy_weight == st.sandbox.chain.total_energy_weight


async def test_a_slow_create_costs_no_chain_reads_while_it_is_out() -> None:
    # The create takes a while to be answered (within the grace): the EnergyLimit could not
    # speak for the order yet, so the chain is not read meanwhile. Same calls as a quick one.
    async with stage() as st:
        st.sandbox.catfee.control.faults.inject(Fault.LATENCY, endpoint="create", delay=0.2)
        result = await buy(st, st.sandbox.new_target())
    assert st.sandbox.catfee.control.faults.pending() == 0  # the create was the slow one
    assert result.verdict is Verdict.DELIVERED
    # Before ordering; then info, body, the record and the snapshot beside them.
    assert result.evidence.trongrid_calls == 5


async def test_a_wrong_delegator_guess_costs_one_read_and_decides_nothing() -> None:
    async with stage() as st:
        stranger = st.sandbox.chain.new_account(energy_stake_sun=100_000 * 10**6)
        st.catfee.delegators.last = stranger
        result = await buy(st, st.sandbox.new_target())
    assert result.verdict is Verdict.DELIVERED
    record = result.evidence.delegated_resource
    assert result.evidence.delegation is not None and record is not None
    assert record.from_address == result.evidence.delegation.owner != stranger
    assert result.evidence.trongrid_calls == 6  # the stranger's record was read for nothing
    assert st.catfee.delegators.last == result.evidence.delegation.owner


async def test_a_guessed_record_from_a_lagging_node_is_read_again_before_it_can_cap() -> None:
    # The guessed record is read beside the tx; a lagging node (or a read served just before
    # the tx's block) shows no record. It holds less than the tx delegated, so it is read
    # again after the tx, in the same look, and the delivery stands on that read.
    async with stage() as st:
        first = await buy(st, st.sandbox.new_target())
        st.sandbox.trongrid.faults.inject(Fault.STALE, endpoint="getdelegatedresourcev2")
        second = await buy(st, st.sandbox.new_target())
    assert first.verdict is second.verdict is Verdict.DELIVERED
    assert st.sandbox.trongrid.faults.pending() == 0  # the stale read was served
    record = second.evidence.delegated_resource
    assert second.evidence.delegation is not None and record is not None
    assert record.energy_sun == second.evidence.delegation.balance_sun
    assert second.evidence.basis is Basis.TX
    assert second.evidence.trongrid_calls == 6  # the guessed record, then the same again


async def test_a_record_short_after_the_block_on_one_read_waits_for_a_second() -> None:
    # Two lagging answers: the guess, and the read after the tx. One short read after the
    # block is not enough to cap: the next look reads the record again and finds it whole.
    async with stage() as st:
        await buy(st, st.sandbox.new_target())
        st.sandbox.trongrid.faults.inject(Fault.STALE, times=2, endpoint="getdelegatedresourcev2")
        result = await buy(st, st.sandbox.new_target())
    assert result.verdict is Verdict.DELIVERED
    assert st.sandbox.trongrid.faults.pending() == 0
    record = result.evidence.delegated_resource
    assert result.evidence.delegation is not None and record is not None
    assert record.energy_sun == result.evidence.delegation.balance_sun
    assert result.evidence.basis is Basis.TX


async def test_a_delegation_reclaimed_before_the_first_read_is_capped_on_agreeing_reads() -> None:
    # The provider delegates, then takes the stake back before anyone looks, and still
    # claims the delegation: the record shows nothing on every read after the block.
    async with stage() as st:
        chain, sim = st.sandbox.chain, st.sandbox.catfee

        def reclaim_at_once() -> None:
            chain.advance_blocks(1)  # the delegation is included...
            (order,) = sim.orders.values()
            assert order.delegate_hash is not None
            tx = chain.transaction(order.delegate_hash)
            assert tx is not None
            chain.undelegate(tx.owner, tx.receiver, tx.balance)
            chain.advance_blocks(1)  # ...and reclaimed in the next block

        result = await buy(st, st.sandbox.new_target(), hook=reclaim_at_once)
    assert result.verdict is Verdict.PROVIDER_MISMATCH
    (finding,) = result.evidence.delegations
    assert finding.counted and finding.basis is Basis.RECORD_CAPPED
    assert result.evidence.delegated_resource is not None
    assert result.evidence.delegated_resource.energy_sun == 0
    assert any("part was already reclaimed" in note for note in result.evidence.notes)
    (cap,) = [n for n in result.evidence.notes if n.startswith("the cap rests on ")]
    assert int(cap.split()[4]) >= 2  # agreeing reads after the block (the grace took more)


async def test_an_older_delegation_of_a_stranger_fails_causality() -> None:
    async with stage() as st:
        chain = st.sandbox.chain
        sim = st.sandbox.catfee
        target = st.sandbox.new_target()
        stranger = chain.new_account(energy_stake_sun=100_000 * 10**6)
        older = chain.delegate(stranger, target, sim.sun_for(ENERGY))
        chain.advance_blocks(2)  # an older rental, still active
        sim.known_delegation(target, older)
        sim.delivery.for_target(target, Delivery.REUSE_EARLIER_TX)
        result = await buy(st, target)
    assert result.verdict is Verdict.PROVIDER_MISMATCH
    (finding,) = result.evidence.delegations
    assert finding.txid == older and not finding.counted
    assert finding.tx is not None and finding.tx.authentic is True  # real, just not ours
    # The anchor is the node's clock (its Date header) at the read before ordering: no head
    # read was spent, and the older block is timestamped before it by more than the margin.
    anchor = result.evidence.node_time_before_ms
    assert result.evidence.head_before is None
    assert anchor is not None and finding.tx.block_time_ms is not None
    assert finding.tx.block_time_ms <= anchor - NODE_CLOCK_MARGIN_MS
    assert any("before the order was placed" in reason for reason in finding.reasons)


async def test_one_delegation_named_for_two_concurrent_orders_is_credited_once() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        results: list[DeliveryResult] = []

        async def first() -> None:
            results.append(await st.catfee.buy(target=target, energy=ENERGY, deadline=3.0))

        async def second() -> None:
            while sim.control.count("create") == 0:  # noqa: ASYNC110
                await anyio.sleep(0.002)
            sim.delivery.for_target(target, Delivery.REUSE_EARLIER_TX)
            results.append(await st.catfee.buy(target=target, energy=ENERGY, deadline=3.0))

        async with anyio.create_task_group() as group:
            group.start_soon(partial(ticking, st, after_creates=1))
            async with anyio.create_task_group() as orders:
                orders.start_soon(first)
                orders.start_soon(second)
            group.cancel_scope.cancel()
    named = {r.evidence.delegations[0].txid for r in results}
    assert len(named) == 1  # the same tx, named for both
    verdicts = sorted(r.verdict for r in results)
    assert verdicts == [Verdict.DELIVERED, Verdict.PROVIDER_MISMATCH]
    loser = next(r for r in results if r.verdict is not Verdict.DELIVERED)
    winner = next(r for r in results if r.verdict is Verdict.DELIVERED)
    reasons = loser.evidence.delegations[0].reasons
    assert any(f"credited to our order {winner.client_order_id}" in r for r in reasons)


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_the_delta_never_credits_energy_another_order_of_ours_may_explain() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        lose_every_provider_answer(st)
        # A: charged, its answers lost, the chain frozen: UNKNOWN, its delegation still pending.
        earlier = await st.catfee.buy(target=target, energy=ENERGY, deadline=0.5)
        assert earlier.verdict is Verdict.UNKNOWN
        sim.delivery.for_target(target, Delivery.NEVER_LANDS)
        creates = sim.control.count("create")
        # B: its own delegation never lands; A's lands in B's window.
        async with anyio.create_task_group() as group:
            group.start_soon(partial(ticking, st, after_creates=creates))
            result = await st.catfee.buy(target=target, energy=ENERGY, deadline=1.5)
            group.cancel_scope.cancel()
    assert result.evidence.energy_delta is not None and result.evidence.energy_delta >= ENERGY
    assert result.verdict is Verdict.UNKNOWN
    assert any(earlier.client_order_id in note for note in result.evidence.notes)


@pytest.mark.parametrize("refusal", [Delivery.REFUSE_REPLAY, Delivery.REFUSE_REPLAY_DUPLICATE])
async def test_a_refusal_after_a_lost_answer_is_never_nothing_charged(refusal: Delivery) -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        sim.delivery.for_target(target, refusal)
        sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
        result = await buy(st, target)
    assert sim.control.count("create") >= 2  # the replay was refused
    charged_once(st, result)
    assert result.verdict is Verdict.DELIVERED  # the chain shows the charged order's energy
    assert "nothing was charged" not in " ".join(result.evidence.notes)
    notes = result.evidence.notes
    assert any("the first create may stand" in n or "an order exists" in n for n in notes)


async def test_a_refused_replay_with_the_chain_dark_is_unknown_not_rejected() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        sim = st.sandbox.catfee
        sim.delivery.for_target(target, Delivery.REFUSE_REPLAY)
        sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")

        def chain_goes_dark() -> None:
            st.sandbox.trongrid.unreachable = True

        result = await buy(st, target, hook=chain_goes_dark, deadline=1.0)
    charged_once(st, result)
    assert result.verdict is Verdict.UNKNOWN
    assert result.client_order_id in (result.error or "") or any(
        result.client_order_id in note for note in result.evidence.notes
    )
    assert not any("nothing was charged" in note for note in result.evidence.notes)


async def test_a_receiver_echoed_in_41_hex_is_the_same_order() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.catfee.delivery.for_target(target, Delivery.HEX_RECEIVER)
        st.sandbox.catfee.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    assert result.order is not None and result.order.target.startswith("41")
    charged_once(st, result)


async def test_a_half_found_tx_from_a_lagging_node_is_read_again_not_an_accusation() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        # gettransactionbyid lags (`{}`) while gettransactioninfobyid shows the block.
        st.sandbox.trongrid.faults.inject(Fault.STALE, endpoint="gettransactionbyid", times=3)
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    (finding,) = result.evidence.delegations
    assert finding.counted and finding.tx is not None and finding.tx.authentic is True
    assert st.sandbox.trongrid.count("gettransactionbyid") >= 4


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_throttling_before_the_first_read_costs_time_not_the_order() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        faults = st.sandbox.trongrid.faults
        for fault in (Fault.THROTTLE_429, Fault.THROTTLE_429, Fault.THROTTLE_503, Fault.NODE_BUSY):
            faults.inject(fault, endpoint="getaccountresource")
        result = await buy(st, target, deadline=5.0)
    assert result.verdict is Verdict.DELIVERED
    assert st.sandbox.trongrid.count("getaccountresource") >= 5
    charged_once(st, result)


@pytest.mark.slow  # about 2 s or more: outside the quick developer loop
async def test_a_dead_chain_before_ordering_buys_nothing_within_the_deadline() -> None:
    from energy_async import NothingBought

    async with stage() as st:
        target = st.sandbox.new_target()
        st.sandbox.trongrid.faults.inject(
            Fault.LATENCY, endpoint="getaccountresource", times=100, delay=30.0
        )
        started = anyio.current_time()
        with pytest.raises(NothingBought) as caught:
            await st.catfee.buy(target=target, energy=ENERGY, deadline=1.0)
        assert anyio.current_time() - started < 3.0  # bounded by the deadline
        st.sandbox.trongrid.faults.clear()
        st.sandbox.trongrid.unreachable = True
        with pytest.raises(NothingBought):
            await st.catfee.buy(target=target, energy=ENERGY, deadline=1.0)
        assert st.sandbox.catfee.control.count() == 0  # nothing was sent
    assert caught.value.service == "trongrid" and caught.value.host == "127.0.0.1"


async def test_no_order_is_sent_when_the_read_before_it_left_no_time_to_watch() -> None:
    # The read before ordering succeeds, but so late that less than one poll interval of the
    # deadline is left: an order sent now could only end UNKNOWN. Nothing is sent instead.
    from energy_async import NothingBought

    policy = PollPolicy(initial_interval=0.5, max_interval=1.0, confirm_grace=0.3)
    async with stage(policy) as st:
        st.sandbox.trongrid.faults.inject(Fault.LATENCY, endpoint="getaccountresource", delay=0.8)
        with pytest.raises(NothingBought) as caught:
            await st.catfee.buy(target=st.sandbox.new_target(), energy=ENERGY, deadline=1.0)
        assert st.sandbox.trongrid.faults.pending() == 0  # the read was answered, slowly
        assert st.sandbox.catfee.control.count() == 0  # nothing was sent
    assert "too little to watch an order" in caught.value.message
    assert caught.value.service == "trongrid"


async def test_a_provider_that_refuses_connections_fails_fast_naming_its_host() -> None:
    import socket

    from energy_async import CatFee, Coordinator, NothingBought, ProviderSession
    from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET
    from tests.coordination import FAST_POLL, FAST_RETRY

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with stage() as st:
        dead = CatFee(
            api_key=CATFEE_API_KEY,
            api_secret=CATFEE_API_SECRET,
            base_url=f"http://127.0.0.1:{port}",
        )
        async with ProviderSession(dead, retry=FAST_RETRY) as session:
            coordinator = Coordinator(session, st.catfee.verifier, poll=FAST_POLL)
            started = anyio.current_time()
            with pytest.raises(NothingBought) as caught:
                await coordinator.buy(target=st.sandbox.new_target(), energy=ENERGY, deadline=30)
            assert anyio.current_time() - started < 5.0
    assert caught.value.service == "catfee" and caught.value.host == "127.0.0.1"
    assert "never sent" in caught.value.message


async def test_recheck_judges_an_existing_order_again_and_buys_nothing() -> None:
    async with stage() as st:
        target = st.sandbox.new_target()
        first = await buy(st, target)
        assert first.order is not None
        creates = st.sandbox.catfee.control.count("create")
        again = await st.catfee.recheck(first.order, deadline=3.0)
        assert st.sandbox.catfee.control.count("create") == creates
    assert first.verdict is again.verdict is Verdict.DELIVERED
    assert again.evidence.delegations[0].txid == first.evidence.delegations[0].txid
    charged_once(st, first)


async def test_delivered_evidence_states_term_authenticity_and_basis() -> None:
    from energy_async.models import Basis

    async with stage() as st:
        target = st.sandbox.new_target()
        result = await buy(st, target)
    assert result.verdict is Verdict.DELIVERED
    evidence = result.evidence
    assert evidence.basis is Basis.TX
    assert evidence.term is not None and not evidence.term.locked
    assert evidence.term.summary.startswith("revocable at any time")
    assert evidence.term.provider_expires_at_ms is not None
    (finding,) = evidence.delegations
    assert finding.counted and finding.tx is not None and finding.tx.authentic is True
    # Causality rests on the node's clock read before ordering (no head read spent on it).
    assert evidence.node_time_before_ms is not None
    assert finding.tx.block_time_ms is not None
    assert finding.tx.block_time_ms > evidence.node_time_before_ms - NODE_CLOCK_MARGIN_MS


@pytest.mark.slow
async def test_a_lagging_node_at_a_10_percent_rate_accuses_no_honest_provider() -> None:
    # Issue 8: at a 10 % stale rate on gettransactionbyid, 5 of 100 honest orders were accused.
    async with stage() as st:
        st.sandbox.trongrid.faults.set_rate(Fault.STALE, 0.1, endpoint="gettransactionbyid")
        results: list[DeliveryResult] = []

        async def one() -> None:
            target = st.sandbox.new_target()
            results.append(await st.catfee.buy(target=target, energy=ENERGY, deadline=5.0))

        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, st.sandbox, st.sandbox.catfee, None)
            async with anyio.create_task_group() as orders:
                for _ in range(60):
                    orders.start_soon(one)
            group.cancel_scope.cancel()
    verdicts = [result.verdict for result in results]
    assert Verdict.PROVIDER_MISMATCH not in verdicts
    assert verdicts.count(Verdict.DELIVERED) == 60

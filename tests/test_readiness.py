"""Readiness for a USDT transfer, against the sandbox chain (tokens, usage, chain parameters).

Figures are transfer.md's: 64,285 energy to a holder, 130,285 to a new holder, 345 bytes,
100 sun per energy, fee_limit ceil(E x 1.2) x price.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal

import anyio
import pytest

from energy_async.energy import sun_for_energy
from energy_async.errors import BadResponse, InputError, InvalidAddress, TokenNotFound
from energy_async.models import Verdict
from energy_async.providers import CatFee, Mefree, Provider
from energy_async.readiness import (
    USDT,
    ChainParameters,
    Purchase,
    ReadinessChecker,
    ReadyState,
    TransferPurchase,
    TransferReadiness,
    fee_limit_for,
    parse_amount,
    plan_payouts,
    plan_purchase,
    render_readiness,
    transfer_bytes,
)
from energy_async.sandbox import Delivery, Fault
from energy_async.sandbox.chain import TOTAL_ENERGY_LIMIT, Chain
from energy_async.sandbox.trc20 import ENERGY_TO_HOLDER, ENERGY_TO_NEW_HOLDER
from tests.coordination import Stage, stage, tick_after_create

pytestmark = pytest.mark.anyio

TRX = 1_000_000
HOLDER, HOLDER_PENALTY = ENERGY_TO_HOLDER
NEW_HOLDER, NEW_HOLDER_PENALTY = ENERGY_TO_NEW_HOLDER


@dataclass
class World:
    st: Stage
    checker: ReadinessChecker
    clock: list[float]

    @property
    def chain(self) -> Chain:
        return self.st.sandbox.chain

    def sender(self, *, energy: int = 0, trx: float = 100, usdt: int = 1_000) -> str:
        """An activated sender with ``energy`` of own stake, TRX and USDT (whole tokens)."""
        stake = sun_for_energy(energy, TOTAL_ENERGY_LIMIT, self.chain.total_energy_weight)
        address = self.chain.new_account(
            balance_sun=int(trx * TRX), energy_stake_sun=stake if energy else 0
        )
        if usdt:
            self.chain.trc20.mint(USDT, address, usdt * TRX)
        return address

    def receiver(self, *, holds: bool) -> str:
        address = self.chain.new_address()  # a TRC20 receiver needs no activation
        if holds:
            self.chain.trc20.mint(USDT, address, 1)
        return address

    def trongrid_calls(self, endpoint: str) -> int:
        return self.st.sandbox.trongrid.count(endpoint)

    def catfee_creates_and_charges(self) -> tuple[int, dict[str | None, int]]:
        catfee = self.st.sandbox.catfee
        return catfee.control.count("create"), catfee.charge_counts()

    async def buy_while_blocks_come(
        self, sender: str, receiver: str, *, hook: Callable[[], None] | None = None
    ) -> TransferPurchase:
        """CatFee's ``buy_for_transfer``, the chain producing blocks once the create arrived
        (after ``hook``): the order can settle."""
        sandbox = self.st.sandbox
        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, sandbox, sandbox.catfee, hook)
            bought = await self.st.coordinator("catfee").buy_for_transfer(
                sender=sender, receiver=receiver, amount="12.5", deadline=5.0
            )
            group.cancel_scope.cancel()
        return bought


@asynccontextmanager
async def world(**checker_options: bool) -> AsyncIterator[World]:
    clock = [0.0]
    async with stage() as st:
        verifier = st.coordinator("catfee").verifier
        checker = ReadinessChecker(verifier, clock=lambda: clock[0], **checker_options)
        yield World(st, checker, clock)


async def check(w: World, sender: str, receiver: str, amount: str = "12.5") -> TransferReadiness:
    return await w.checker.check(sender, receiver, amount)


# --- the two documented figures, and a sender with enough energy ------------------------------


async def test_receiver_holding_usdt_costs_64285_and_enough_energy_is_ready() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000)
        ready = await check(w, sender, w.receiver(holds=True))
    assert ready.state is ReadyState.READY and ready.ready
    assert (ready.energy_needed, ready.energy_penalty) == (HOLDER, HOLDER_PENALTY)
    assert ready.energy_missing == 0 and ready.energy_available >= HOLDER
    assert ready.fee_limit_sun == 77_142 * 100  # ceil(64,285 x 1.2) x 100 sun
    assert ready.bandwidth_needed == 345 and ready.bandwidth_burn_sun == 0
    assert ready.trx_burn_sun == 0 and ready.would_succeed
    assert ready.amount == 12_500_000 and ready.decimals == 6
    assert ready.problems == ()


async def test_receiver_without_usdt_costs_130285() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000)
        ready = await check(w, sender, w.receiver(holds=False))
    assert (ready.energy_needed, ready.energy_penalty) == (NEW_HOLDER, NEW_HOLDER_PENALTY)
    assert ready.state is ReadyState.NOT_READY
    assert ready.energy_missing == NEW_HOLDER - ready.energy_available
    assert ready.fee_limit_sun == 156_342 * 100
    assert ready.would_succeed  # 100 TRX burn the rest, but that is not READY
    assert ready.trx_burn_sun == ready.energy_missing * 100
    assert any("energy: needs 130,285" in problem for problem in ready.problems)


# --- partial and no energy ---------------------------------------------------------------------


async def test_partial_energy_says_exactly_what_is_missing() -> None:
    async with world() as w:
        sender = w.sender(energy=30_000)
        ready = await check(w, sender, w.receiver(holds=True))
    assert 30_000 <= ready.energy_available < 30_020
    assert ready.energy_missing == HOLDER - ready.energy_available
    assert ready.state is ReadyState.NOT_READY and ready.would_succeed


async def test_used_energy_counts_and_recovers_over_24_hours() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000)
        limit = (await check(w, sender, w.receiver(holds=True))).energy_available
        w.chain.trc20.consume_energy(sender, 60_000)
        spent = await check(w, sender, w.receiver(holds=True))
        w.chain.advance_blocks(14_400)  # 12 h: half of the window
        half = await check(w, sender, w.receiver(holds=True))
        w.chain.advance_blocks(14_400)
        full = await check(w, sender, w.receiver(holds=True))
    assert spent.energy_available == limit - 60_000 and not spent.ready
    assert half.energy_available == limit - 30_000
    assert full.energy_available == limit and full.ready


async def test_no_energy_and_5_trx_is_the_reference_example() -> None:
    """transfer.md §1: no energy, 5 TRX, free bandwidth used up: bandwidth burns 0.345 TRX,
    the rest buys 46,550 energy < 64,285, so it would fail OUT_OF_ENERGY."""
    async with world() as w:
        sender = w.sender(trx=5)
        w.chain.trc20.consume_free_net(sender, 600)
        ready = await check(w, sender, w.receiver(holds=True))
    assert ready.energy_available == 0 and ready.energy_missing == HOLDER
    assert ready.bandwidth_free == 0 and ready.bandwidth_burn_sun == 345_000
    assert ready.fee_limit_sun == 7_714_200
    assert not ready.would_succeed and ready.state is ReadyState.NOT_READY
    assert any("OUT_OF_ENERGY" in problem for problem in ready.problems)


# --- bandwidth ---------------------------------------------------------------------------------


async def test_not_enough_bandwidth_and_no_trx_to_burn_is_not_ready() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000, trx=0.2)
        w.chain.trc20.consume_free_net(sender, 300)  # 300 left: all 345 bytes would be burned
        ready = await check(w, sender, w.receiver(holds=True))
    assert ready.energy_missing == 0
    assert ready.bandwidth_free == 300 and ready.bandwidth_burn_sun == 345_000
    assert ready.state is ReadyState.NOT_READY and not ready.would_succeed
    assert any(problem.startswith("bandwidth:") for problem in ready.problems)


async def test_free_bandwidth_recovers_and_makes_it_ready_again() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000, trx=0)
        w.chain.trc20.consume_free_net(sender, 600)
        before = await check(w, sender, w.receiver(holds=True))
        w.chain.advance_blocks(28_800)
        after = await check(w, sender, w.receiver(holds=True))
    assert not before.ready and after.ready and after.bandwidth_free == 600


# --- what cannot be priced or sent -------------------------------------------------------------


async def test_a_transfer_that_would_revert_is_not_priced() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000, usdt=10)
        ready = await check(w, sender, w.receiver(holds=True), amount="10.000001")
        w.chain.trc20.tokens[USDT].paused = True
        paused = await check(w, sender, w.receiver(holds=True), amount="1")
    for answer in (ready, paused):
        assert answer.state is ReadyState.WOULD_REVERT
        assert answer.energy_needed == 0 and answer.fee_limit_sun is None
        assert answer.revert_message is not None and "REVERT" in answer.revert_message
        assert not answer.would_succeed


async def test_an_unactivated_sender_cannot_send() -> None:
    async with world() as w:
        sender = w.chain.new_address()
        w.chain.trc20.mint(USDT, sender, 100 * TRX)
        ready = await check(w, sender, w.receiver(holds=True))
    assert ready.state is ReadyState.NOT_ACTIVATED and not ready.activated
    assert ready.energy_needed == HOLDER  # still priced: what it will need once activated


async def test_a_bad_token_address_is_a_typed_error_and_nothing_is_sent() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000)
        to = w.receiver(holds=True)
        with pytest.raises(InvalidAddress):
            await w.checker.check(sender, to, "1", token="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u")
        assert w.st.sandbox.trongrid.count() == 0
        with pytest.raises(TokenNotFound):
            await w.checker.check(sender, to, "1", token=w.chain.new_address())
        assert w.st.sandbox.catfee.charge_counts() == {}


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12.1234567", "more decimals"),
        ("-1", "positive"),
        ("0", "positive"),
        ("abc", "not a number"),
        ("NaN", "positive"),
        (1.5, "str, Decimal or int"),
        ("1_000", "digits 0-9"),  # Decimal() reads 1000: no file of payouts means that
        ("\u0661\u0662", "digits 0-9"),  # Arabic-Indic "12", which Decimal() also reads
    ],
)
async def test_bad_amounts_are_refused_before_anything_is_read(
    amount: object, message: str
) -> None:
    async with world() as w:
        sender = w.sender()
        with pytest.raises(InputError, match=message):
            await w.checker.check(sender, w.receiver(holds=True), amount)  # type: ignore[arg-type]
        if message != "more decimals":
            assert w.st.sandbox.trongrid.count() == 0


async def test_decimals_come_from_the_token() -> None:
    async with world() as w:
        token = w.chain.trc20.deploy("T18", 18)
        sender = w.sender(energy=70_000)
        w.chain.trc20.mint(token, sender, 10**21)
        ready = await w.checker.check(sender, w.receiver(holds=False), Decimal("1.5"), token=token)
        await w.checker.check(sender, w.receiver(holds=False), "2", token=token)
        calls_for_decimals = w.trongrid_calls("triggerconstantcontract")
    assert ready.decimals == 18 and ready.amount == 15 * 10**17
    assert calls_for_decimals == 3  # decimals() once, then one simulation per check


# --- chain parameters: read, cached for a stated time, never hard-coded ------------------------


async def test_chain_parameters_are_read_and_cached_for_the_ttl() -> None:
    async with world() as w:
        sender, to = w.sender(energy=70_000), w.receiver(holds=True)
        first = await check(w, sender, to)
        w.chain.trc20.parameters["getEnergyFee"] = 210
        cached = await check(w, sender, to)
        w.clock[0] += w.checker.parameters_ttl
        fresh = await check(w, sender, to)
        reads = w.trongrid_calls("getchainparameters")
    assert first.energy_price_sun == cached.energy_price_sun == 100
    assert fresh.energy_price_sun == 210 and fresh.fee_limit_sun == 77_142 * 210
    assert reads == 2


async def test_max_fee_limit_caps_the_fee_limit_or_rules_it_out() -> None:
    async with world() as w:
        sender, to = w.sender(energy=70_000), w.receiver(holds=True)
        w.chain.trc20.parameters["getMaxFeeLimit"] = 7_000_000  # between E x p and 1.2 E x p
        capped = await check(w, sender, to)
        w.clock[0] += w.checker.parameters_ttl
        w.chain.trc20.parameters["getMaxFeeLimit"] = 6_000_000  # below E x p
        impossible = await check(w, sender, to)
    assert capped.fee_limit_sun == 7_000_000 and capped.ready
    assert impossible.fee_limit_sun is None and not impossible.would_succeed
    assert any("maximum fee_limit" in problem for problem in impossible.problems)


# --- estimateenergy where the node offers it ----------------------------------------------------


async def test_estimateenergy_when_offered_never_lowers_the_fee_limit() -> None:
    async with world() as w:
        w.chain.trc20.estimate_energy_enabled = True
        sender = w.sender(energy=200_000)
        holder = await check(w, sender, w.receiver(holds=True))
        new_holder = await check(w, sender, w.receiver(holds=False))
    assert holder.energy_required == 72_321 and holder.energy_needed == HOLDER
    assert holder.fee_limit_sun == 77_142 * 100
    assert new_holder.energy_required == 138_428
    assert new_holder.fee_limit_sun == 156_342 * 100


async def test_a_node_without_estimateenergy_is_asked_once() -> None:
    async with world() as w:
        sender, to = w.sender(energy=70_000), w.receiver(holds=True)
        first = await check(w, sender, to)
        second = await check(w, sender, to)
        asked = w.trongrid_calls("estimateenergy")
    assert first.energy_required is None and any("estimateenergy" in n for n in first.notes)
    assert second.ready and asked == 1
    # parameters, decimals(), getaccount, getaccountresource, the simulation, estimateenergy;
    # then only the three reads that change with every block.
    assert (first.calls, second.calls) == (6, 3)


# --- the fee_limit rule, on the sandbox chain itself ---------------------------------------------


async def test_the_fee_limit_given_lands_and_a_low_one_fails_with_rented_energy() -> None:
    """fee_limit caps all the energy a call may use: with enough energy on the account, a low
    fee_limit still ends OUT_OF_ENERGY (and consumes the energy); the one given lands."""
    async with world() as w:
        low_sender = w.sender(energy=70_000)
        ok_sender = w.sender(energy=70_000)
        to = w.receiver(holds=True)
        ready = await check(w, ok_sender, to)
        assert ready.ready and ready.fee_limit_sun is not None
        trc20 = w.chain.trc20
        failed = trc20.transfer(USDT, low_sender, to, 12_500_000, fee_limit=1_000_000)
        landed = trc20.transfer(USDT, ok_sender, to, 12_500_000, fee_limit=ready.fee_limit_sun)
    assert failed.result == "OUT_OF_ENERGY" and failed.energy_usage == 10_000
    assert landed.result == "SUCCESS" and landed.energy_fee == 0 and landed.net_fee == 0
    assert landed.energy_usage_total == ready.energy_needed
    assert landed.net_usage == ready.bandwidth_needed


# --- buying for a transfer -----------------------------------------------------------------------


async def test_buy_for_transfer_buys_nothing_when_nothing_is_missing() -> None:
    async with world() as w:
        sender = w.sender(energy=70_000)
        bought = await w.st.coordinator("catfee").buy_for_transfer(
            sender=sender, receiver=w.receiver(holds=True), amount="12.5"
        )
        charges = w.st.sandbox.catfee.charge_counts()
        creates = w.st.sandbox.catfee.control.count("create")
    assert bought.after is not None and bought.after.state is ReadyState.READY and bought.ready
    assert bought.purchase is None and bought.result is None
    assert charges == {} and creates == 0


async def test_buy_for_transfer_buys_the_shortfall_and_ends_ready() -> None:
    async with world() as w:
        sender = w.sender(trx=10)
        coordinator = w.st.coordinator("catfee")
        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, w.st.sandbox, w.st.sandbox.catfee)
            bought = await coordinator.buy_for_transfer(
                sender=sender, receiver=w.receiver(holds=True), amount="12.5", deadline=5.0
            )
            group.cancel_scope.cancel()
    assert bought.before.energy_missing == HOLDER and not bought.before.ready
    assert bought.purchase is not None and bought.purchase.energy == 65_000
    assert bought.result is not None and bought.result.verdict.value == "DELIVERED"
    assert bought.after is not None and bought.ready
    assert bought.after.energy_missing == 0 and bought.after.trx_burn_sun == 0
    assert w.st.sandbox.catfee.charges(bought.result.client_order_id) == 1


async def test_buy_for_transfer_with_mefree_buys_one_transfer_for_a_holder() -> None:
    async with world() as w:
        sender = w.sender(trx=10)
        async with anyio.create_task_group() as group:
            group.start_soon(tick_after_create, w.st.sandbox, w.st.sandbox.mefree)
            bought = await w.st.coordinator("mefree").buy_for_transfer(
                sender=sender, receiver=w.receiver(holds=True), amount=5, deadline=5.0
            )
            group.cancel_scope.cancel()
    assert bought.purchase is not None and bought.purchase.transfers == 1
    assert bought.ready


async def test_buy_for_transfer_buys_nothing_for_a_transfer_that_would_revert() -> None:
    async with world() as w:
        sender = w.sender(usdt=0)
        bought = await w.st.coordinator("catfee").buy_for_transfer(
            sender=sender, receiver=w.receiver(holds=True), amount="1"
        )
    assert bought.after is not None and bought.after.state is ReadyState.WOULD_REVERT
    assert bought.purchase is None
    assert w.st.sandbox.catfee.control.count("create") == 0


async def test_under_delivery_ends_not_ready_saying_what_is_still_missing() -> None:
    """The provider confirms but delegates half: the verdict says so, and the re-read says how
    much energy the transfer still lacks, in the result and in the text a person reads."""
    async with world() as w:
        sender = w.sender(trx=10)
        w.st.sandbox.catfee.delivery.for_target(sender, Delivery.PARTIAL)
        bought = await w.buy_while_blocks_come(sender, w.receiver(holds=True))
        creates, charges = w.catfee_creates_and_charges()
    assert bought.purchase == Purchase(energy=65_000)
    assert bought.result is not None and bought.result.verdict is Verdict.UNDER_DELIVERED
    after = bought.after
    assert after is not None and bought.after_error is None and not bought.ready
    assert after.state is ReadyState.NOT_READY
    assert 65_000 * 0.45 < after.energy_available < 65_000 * 0.55  # about half arrived
    assert after.energy_available == bought.result.evidence.energy_after
    assert after.energy_missing == HOLDER - after.energy_available > 0
    missing = f"{after.energy_missing:,} missing"
    assert any(problem.startswith("energy:") and missing in problem for problem in after.problems)
    assert f"missing {after.energy_missing:,}" in render_readiness(after)
    assert creates == 1 and charges == {bought.result.client_order_id: 1}


async def test_a_chain_read_failing_after_the_order_keeps_the_verdict() -> None:
    """TronGrid fails on the re-read after the purchase: no readiness after it, the typed
    error's text instead, and the order's verdict kept (it was bought: never raised away).

    ``getaccount`` is read by readiness only, never by the coordinator's verification, so a
    fault queued on it once the create has reached the provider hits the re-read alone."""
    async with world() as w:
        sender = w.sender(trx=10)
        node = w.st.sandbox.trongrid

        def getaccount_breaks() -> None:
            node.faults.inject(Fault.NODE_ERROR, endpoint="getaccount", times=10)

        bought = await w.buy_while_blocks_come(
            sender, w.receiver(holds=True), hook=getaccount_breaks
        )
        creates, charges = w.catfee_creates_and_charges()
        getaccount_reads = node.count("getaccount")
    assert bought.result is not None and bought.result.verdict is Verdict.DELIVERED
    assert bought.purchase == Purchase(energy=65_000)
    assert bought.before.energy_missing == HOLDER
    assert bought.after is None and not bought.ready
    assert bought.after_error is not None
    # the node's error, typed by the verifier (NodeError) and kept as its text
    assert "TronGrid node answered an error" in bought.after_error
    assert "path=/wallet/getaccount" in bought.after_error
    assert getaccount_reads >= 2  # the read before the order, and the failed one after it
    assert creates == 1 and charges == {bought.result.client_order_id: 1}


# --- what buy_for_transfer refuses before anything is sent ----------------------------------------


@pytest.mark.parametrize(
    ("token", "error"),
    [
        pytest.param("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u", InvalidAddress, id="bad-checksum"),
        # the zero address: well formed, and no contract there
        pytest.param("T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb", TokenNotFound, id="no-contract"),
        pytest.param(
            "",
            InvalidAddress,
            id="empty",
        ),
    ],
)
async def test_a_bad_token_through_buy_for_transfer_sends_nothing(
    token: str, error: type[Exception]
) -> None:
    async with world() as w:
        sender, to = w.sender(trx=10), w.receiver(holds=True)
        with pytest.raises(error):
            await w.st.coordinator("catfee").buy_for_transfer(
                sender=sender, receiver=to, amount="1", token=token, deadline=1.0
            )
        reads = w.st.sandbox.trongrid.count()
        creates, charges = w.catfee_creates_and_charges()
        provider_requests = w.st.sandbox.catfee.control.count()
    assert creates == 0 and charges == {}
    assert provider_requests == 0  # not even a balance or price query
    if error is InvalidAddress:
        assert reads == 0  # refused before anything was read


def _not_activated(w: World) -> str:
    sender = w.chain.new_address()
    w.chain.trc20.mint(USDT, sender, 100 * TRX)
    return sender


def _no_fee_limit_lands(w: World) -> str:
    w.chain.trc20.parameters["getMaxFeeLimit"] = 6_000_000  # below 64,285 x 100 sun
    return w.sender(trx=100)


def _bandwidth_unpaid(w: World) -> str:
    sender = w.sender(trx=0.2)
    w.chain.trc20.consume_free_net(sender, 600)  # 345 bytes to burn: 0.345 TRX, it has 0.2
    return sender


@pytest.mark.parametrize(
    ("make_sender", "state", "problem"),
    [
        pytest.param(_not_activated, ReadyState.NOT_ACTIVATED, "is not activated", id="inactive"),
        pytest.param(_no_fee_limit_lands, ReadyState.NOT_READY, "maximum fee_limit", id="fee"),
        pytest.param(_bandwidth_unpaid, ReadyState.NOT_READY, "bandwidth:", id="bandwidth"),
    ],
)
async def test_buy_for_transfer_refuses_when_energy_alone_cannot_help(
    make_sender: Callable[[World], str], state: ReadyState, problem: str
) -> None:
    """Energy is missing, but buying it would not make the transfer land: nothing is ordered,
    and the answer is the reading that says why (before and after are the same reading)."""
    async with world() as w:
        sender = make_sender(w)
        bought = await w.st.coordinator("catfee").buy_for_transfer(
            sender=sender, receiver=w.receiver(holds=True), amount="12.5"
        )
        creates, charges = w.catfee_creates_and_charges()
        provider_requests = w.st.sandbox.catfee.control.count()
    assert bought.before.energy_missing == HOLDER  # something is missing, and still not bought
    assert bought.purchase is None and bought.result is None and bought.after_error is None
    assert bought.after is bought.before and not bought.ready
    assert bought.before.state is state and not bought.before.would_succeed
    assert any(problem in found for found in bought.before.problems)
    assert creates == 0 and charges == {} and provider_requests == 0


async def test_a_blacklisted_sender_would_revert_and_is_not_priced() -> None:
    async with world() as w:
        w.chain.trc20.estimate_energy_enabled = True
        sender, to = w.sender(trx=100), w.receiver(holds=True)
        w.chain.trc20.tokens[USDT].blacklisted.add(sender)
        listed = await check(w, sender, to)
        estimates = w.trongrid_calls("estimateenergy")
        bought = await w.st.coordinator("catfee").buy_for_transfer(
            sender=sender, receiver=to, amount="12.5"
        )
        creates, charges = w.catfee_creates_and_charges()
        w.chain.trc20.tokens[USDT].blacklisted.discard(sender)
        cleared = await check(w, sender, to)  # the same transfer, off the list: priced
    assert listed.state is ReadyState.WOULD_REVERT and not listed.would_succeed
    assert listed.revert_message is not None and "REVERT" in listed.revert_message
    assert any("blacklisted" in problem for problem in listed.problems)
    assert listed.energy_needed == listed.energy_missing == listed.energy_penalty == 0
    assert listed.fee_limit_sun is None and listed.energy_required is None
    assert listed.trx_burn_sun == 0
    assert estimates == 0  # a reverting transfer is not estimated either
    assert bought.purchase is None and bought.result is None
    assert bought.after is not None and bought.after.state is ReadyState.WOULD_REVERT
    assert creates == 0 and charges == {}
    assert cleared.state is ReadyState.NOT_READY and cleared.energy_needed == HOLDER
    assert cleared.energy_required == 72_321


# --- the pure rules, table by table -------------------------------------------------------------

PARAMS = ChainParameters(
    energy_fee=100, transaction_fee=1_000, max_fee_limit=15_000_000_000, read_at=0.0
)


@pytest.mark.parametrize(
    ("energy", "required", "expected"),
    [
        (64_285, None, 7_714_200),  # transfer.md §1 example
        (130_285, None, 15_634_200),
        (64_285, 72_321, 7_714_200),  # estimateenergy below the margin: the margin wins
        (64_285, 80_000, 8_000_000),  # ... above it: never below its guarantee
        (140_000_000, None, 15_000_000_000),  # capped by getMaxFeeLimit
        (150_000_001, None, None),  # E x price above the maximum: nothing lands
    ],
)
def test_fee_limit_rule(energy: int, required: int | None, expected: int | None) -> None:
    assert fee_limit_for(energy, required, PARAMS) == expected


@pytest.mark.parametrize(
    ("raw", "fee_limit", "expected"),
    [(205, 7_714_200, 345), (205, 0, 339), (205, 300 * TRX, 346), (205, 2 * TRX, 344)],
)
def test_transfer_bytes(raw: int, fee_limit: int, expected: int) -> None:
    assert transfer_bytes(raw, fee_limit) == expected


CATFEE = CatFee(api_key="k", api_secret="s")
MEFREE = Mefree(api_key="k", api_secret="s")


@pytest.mark.parametrize(
    ("missing", "provider", "expected"),
    [
        (0, CATFEE, None),
        (-5, MEFREE, None),
        (1, CATFEE, Purchase(energy=65_000)),  # rounded up to the provider's minimum
        (64_285, CATFEE, Purchase(energy=65_000)),
        (64_285, MEFREE, Purchase(transfers=1)),  # one count buys the same 65,000
        (130_285, CATFEE, Purchase(energy=130_285)),
        (130_285, MEFREE, Purchase(energy=130_285)),  # 2 counts (130,000) would fall short
        (130_000, MEFREE, Purchase(transfers=2)),
    ],
)
def test_plan_purchase(missing: int, provider: Provider, expected: Purchase | None) -> None:
    assert plan_purchase(missing, provider) == expected


@pytest.mark.parametrize(
    ("amount", "decimals", "expected"),
    [
        ("12.5", 6, 12_500_000),
        ("0.000001", 6, 1),
        ("1e-6", 6, 1),
        (Decimal("12.50"), 1, 125),
        (3, 0, 3),
        (" 7 ", 6, 7_000_000),
    ],
)
def test_parse_amount(amount: str | Decimal | int, decimals: int, expected: int) -> None:
    assert parse_amount(amount, decimals) == expected


# --- TronGrid faults: retried like every read, or a typed error with nothing bought ------------


@pytest.mark.parametrize(
    ("fault", "endpoint"),
    [
        (Fault.THROTTLE_429, "triggerconstantcontract"),
        (Fault.SERVER_ERROR, "getchainparameters"),
        (Fault.NODE_BUSY, "getaccount"),
    ],
)
async def test_a_passing_fault_is_retried(fault: Fault, endpoint: str) -> None:
    async with world() as w:
        sender, to = w.sender(energy=70_000), w.receiver(holds=True)
        w.st.sandbox.trongrid.faults.inject(fault, endpoint=endpoint, params={"retry_after": 0})
        ready = await check(w, sender, to)
    assert ready.ready and ready.calls == 6 + 1  # the usual six reads and one retry


@pytest.mark.parametrize("fault", [Fault.TRUNCATED_JSON, Fault.WRONG_TYPES, Fault.HTML_BODY])
async def test_a_body_we_cannot_trust_is_a_typed_error(fault: Fault) -> None:
    async with world() as w:
        sender, to = w.sender(trx=10), w.receiver(holds=True)
        w.st.sandbox.trongrid.faults.inject(fault, endpoint="triggerconstantcontract", times=10)
        with pytest.raises(BadResponse):
            await w.st.coordinator("catfee").buy_for_transfer(
                sender=sender, receiver=to, amount="1"
            )
        assert w.st.sandbox.catfee.control.count("create") == 0


# --- a payout list: one exact purchase per sender ------------------------------------------------


async def test_a_payout_list_becomes_one_exact_purchase_per_sender() -> None:
    async with world() as w:
        busy = w.sender(energy=10_000, trx=10)
        idle = w.sender(energy=70_000)
        broke = w.sender(usdt=1)
        h1, h2, h3 = (w.receiver(holds=True) for _ in range(3))
        rows = [(busy, h1, "5"), (idle, h2, "1"), (busy, h3, "5"), (broke, h1, "2")]
        plans = await plan_payouts(w.checker, CATFEE, rows)
    by_sender = {plan.sender: plan for plan in plans}
    assert [plan.sender for plan in plans] == [busy, idle, broke]
    two = by_sender[busy]
    assert len(two.transfers) == 2 and two.energy_needed == 2 * HOLDER
    assert two.energy_missing == 2 * HOLDER - two.energy_available > 65_000
    assert two.purchase == Purchase(energy=two.energy_missing)
    assert two.bandwidth_burn_sun == 345_000  # the free 600 bytes pay for one of the two
    assert by_sender[idle].purchase is None and by_sender[idle].energy_missing == 0
    assert by_sender[broke].purchase is None
    assert "WOULD_REVERT" in by_sender[broke].problems[0]
    assert w.st.sandbox.catfee.control.count() == 0  # planning buys nothing

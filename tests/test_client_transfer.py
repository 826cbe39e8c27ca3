"""The facade's transfer methods against the sandbox: readiness, and buying what a transfer lacks
through the router or a named provider (figures as in test_readiness: transfer.md's)."""

from __future__ import annotations

import anyio
import pytest

from energy_async import Verdict
from energy_async.energy import sun_for_energy
from energy_async.readiness import USDT, ReadyState, TransferPurchase
from energy_async.sandbox import Delivery, Sandbox, SandboxURLs
from energy_async.sandbox.chain import TOTAL_ENERGY_LIMIT
from energy_async.sandbox.trc20 import ENERGY_TO_HOLDER
from tests.test_router import _charged, _tick, client

pytestmark = pytest.mark.anyio

TRX = 1_000_000
HOLDER, _ = ENERGY_TO_HOLDER


def _sender(sandbox: Sandbox) -> str:
    """An activated sender with 10 TRX and 1,000 USDT, and no energy of its own."""
    address = sandbox.chain.new_account(balance_sun=10 * TRX)
    sandbox.chain.trc20.mint(USDT, address, 1_000 * TRX)
    return address


def _holder(sandbox: Sandbox) -> str:
    address = sandbox.chain.new_address()
    sandbox.chain.trc20.mint(USDT, address, 1)
    return address


async def _buy_for_transfer(
    sandbox: Sandbox, urls: SandboxURLs, sender: str, receiver: str, provider: str
) -> TransferPurchase:
    bought: TransferPurchase | None = None
    async with client(urls, sandbox) as built, anyio.create_task_group() as group:
        group.start_soon(_tick, sandbox)
        bought = await built.buy_for_transfer(
            sender=sender, receiver=receiver, amount="12.5", provider=provider, deadline=3.0
        )
        group.cancel_scope.cancel()
    assert bought is not None
    return bought


async def test_ready_reads_the_chain_and_buys_nothing() -> None:
    sandbox = Sandbox(seed=23, speed=0.0)
    async with sandbox.serve() as urls, client(urls, sandbox) as built:
        sender, receiver = _sender(sandbox), _holder(sandbox)
        ready = await built.ready(sender=sender, receiver=receiver, amount="12.5")
    assert ready.state is ReadyState.NOT_READY
    assert (ready.energy_needed, ready.energy_missing) == (HOLDER, HOLDER)
    assert ready.fee_limit_sun == 77_142 * 100
    assert all(sim.control.count("create") == 0 for sim in sandbox.providers.values())


async def test_auto_routes_the_shortfall_to_the_cheapest_and_ends_ready() -> None:
    sandbox = Sandbox(seed=23, speed=0.0)
    async with sandbox.serve() as urls:
        sender, receiver = _sender(sandbox), _holder(sandbox)
        # iTRX is the cheapest in the sandbox; it refuses, so the router goes to CatFee.
        sandbox.providers["itrx"].delivery.for_target(sender, Delivery.REFUSE)
        bought = await _buy_for_transfer(sandbox, urls, sender, receiver, "auto")
    assert bought.purchase is not None and bought.purchase.energy == 65_000
    assert bought.result is not None and bought.result.verdict is Verdict.DELIVERED
    assert bought.result.provider == "catfee"
    assert any(step.startswith("itrx: refused at create") for step in bought.result.evidence.route)
    assert bought.ready and bought.after is not None and bought.after.energy_missing == 0
    assert _charged(sandbox, sender) == {"catfee": 1}


async def test_a_named_provider_buys_in_its_own_units() -> None:
    sandbox = Sandbox(seed=23, speed=0.0)
    async with sandbox.serve() as urls:
        sender, receiver = _sender(sandbox), _holder(sandbox)
        bought = await _buy_for_transfer(sandbox, urls, sender, receiver, "mefree")
    assert bought.purchase is not None and bought.purchase.transfers == 1  # 65,000 exactly
    assert bought.result is not None and bought.result.provider == "mefree"
    assert bought.ready
    assert _charged(sandbox, sender) == {"mefree": 1}


async def test_nothing_is_bought_when_nothing_is_missing_or_the_transfer_would_revert() -> None:
    sandbox = Sandbox(seed=23, speed=0.0)
    async with sandbox.serve() as urls, client(urls, sandbox) as built:
        chain = sandbox.chain
        stake = sun_for_energy(70_000, TOTAL_ENERGY_LIMIT, chain.total_energy_weight)
        staked = chain.new_account(balance_sun=10 * TRX, energy_stake_sun=stake)
        chain.trc20.mint(USDT, staked, 1_000 * TRX)
        enough = await built.buy_for_transfer(
            sender=staked, receiver=_holder(sandbox), amount="12.5", deadline=3.0
        )
        # More than the sender holds: the node says it would revert; energy cannot help.
        too_much = await built.buy_for_transfer(
            sender=_sender(sandbox), receiver=_holder(sandbox), amount="5000", deadline=3.0
        )
    assert enough.purchase is None and enough.result is None and enough.ready
    assert too_much.purchase is None and too_much.after is not None
    assert too_much.after.state is ReadyState.WOULD_REVERT
    assert all(sim.control.count("create") == 0 for sim in sandbox.providers.values())

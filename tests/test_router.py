"""The router against the sandbox: cheapest first, failover only when nothing was bought.

Sandbox prices for 100,000 energy over 1h: iTRX 1,500,000 sun, CatFee 1,700,000, TronSave
3,000,000 (a day's worth at least); Mefree and TEnergy publish no price, so they come last.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest

from energy_async import Client, PollPolicy, Verdict
from energy_async._http import RetryPolicy
from energy_async.errors import NothingBought
from energy_async.models import DeliveryResult, Order, OrderRequest
from energy_async.router import Router, fails_over, rank
from energy_async.sandbox import Delivery, Fault, Sandbox, SandboxURLs
from energy_async.sandbox.provider_core import ProviderSim

pytestmark = pytest.mark.anyio

ENERGY = 100_000
FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.005, max_delay=0.02, max_retry_after=1)
FAST_POLL = PollPolicy(initial_interval=0.01, max_interval=0.05, confirm_grace=0.3)
TICK = 0.01


def test_rank_puts_priced_providers_cheapest_first_then_the_unpriced() -> None:
    providers = ["catfee", "mefree", "tenergy", "itrx", "tronsave"]
    prices = {"catfee": 17, "itrx": 15, "tronsave": 17}
    assert rank(providers, prices, ["tenergy", "mefree"]) == [
        "itrx",
        "catfee",  # a tie keeps the order given
        "tronsave",
        "mefree",
        "tenergy",
    ]


def _result(verdict: Verdict, order: Order | None) -> DeliveryResult:
    from energy_async.models import Evidence

    request = OrderRequest(target="T", energy=ENERGY, client_order_id="c")
    return DeliveryResult(
        verdict=verdict,
        provider="x",
        client_order_id="c",
        request=request,
        order=order,
        evidence=Evidence(),
    )


@pytest.mark.parametrize(
    ("verdict", "has_order", "expected"),
    [
        (Verdict.REJECTED, False, True),  # refused at create: nothing bought
        (Verdict.REJECTED, True, False),  # the provider took the order, then failed it
        (Verdict.UNKNOWN, False, False),
        (Verdict.NOT_DELIVERED, True, False),
        (Verdict.DELIVERED, True, False),
    ],
)
def test_only_a_refused_create_fails_over(
    verdict: Verdict, has_order: bool, expected: bool
) -> None:
    order = Order(provider="x", id="1", client_order_id="c", target="T", energy=ENERGY)
    assert fails_over(_result(verdict, order if has_order else None)) is expected


@asynccontextmanager
async def client(urls: SandboxURLs, sandbox: Sandbox) -> AsyncIterator[Client]:
    env = {}
    for name, sim in sandbox.providers.items():
        env[f"{name.upper()}_API_KEY"] = sim.api_key
        if sim.api_secret:
            env[f"{name.upper()}_API_SECRET"] = sim.api_secret
    built = Client.from_env(
        urls={name: urls.provider(name) for name in sandbox.providers},
        trongrid_url=urls.trongrid,
        environ=env,
        retry=FAST_RETRY,
        poll=FAST_POLL,
    )
    async with built:
        yield built


async def _tick(sandbox: Sandbox, hook: Callable[[], None] | None = None) -> None:
    """Once any provider has seen a create, run ``hook``, then make a block every TICK."""
    sims = list(sandbox.providers.values())
    while not any(sim.control.count("create") for sim in sims):  # noqa: ASYNC110
        await anyio.sleep(0.002)
    if hook is not None:
        hook()
    while True:
        await anyio.sleep(TICK)
        sandbox.chain.advance_blocks(1)


async def _buy(
    sandbox: Sandbox, urls: SandboxURLs, target: str, hook: Callable[[], None] | None = None
) -> DeliveryResult:
    result: DeliveryResult | None = None
    async with client(urls, sandbox) as built, anyio.create_task_group() as group:
        group.start_soon(_tick, sandbox, hook)
        result = await built.buy(target=target, energy=ENERGY, duration="1h", deadline=3.0)
        group.cancel_scope.cancel()
    assert result is not None
    return result


def _orders(sim: ProviderSim, target: str) -> int:
    return sum(1 for order in sim.orders.values() if order.receiver == target)


def _charged(sandbox: Sandbox, target: str) -> dict[str, int]:
    counts = {name: _orders(sim, target) for name, sim in sandbox.providers.items()}
    return {name: n for name, n in counts.items() if n}


async def test_quotes_rank_every_configured_provider() -> None:
    sandbox = Sandbox(seed=21, speed=0.0)
    async with sandbox.serve() as urls, client(urls, sandbox) as built:
        sandbox.providers["tronsave"].control.unreachable = True
        board = await built.quotes(energy=ENERGY, duration="1h")
    assert [(q.provider, q.cost_sun) for q in board.quotes] == [
        ("itrx", 1_500_000),
        ("catfee", 1_700_000),
    ]
    assert [name for name, _ in board.unpriced] == ["mefree", "tenergy"]
    assert [name for name, _ in board.down] == ["tronsave"]


async def test_the_cheapest_provider_is_chosen() -> None:
    sandbox = Sandbox(seed=21, speed=0.0)
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        result = await _buy(sandbox, urls, target)
    assert result.verdict is Verdict.DELIVERED and result.provider == "itrx"
    assert _charged(sandbox, target) == {"itrx": 1}
    assert result.evidence.route[-1] == "itrx: chosen, verdict DELIVERED"


async def test_a_refused_create_fails_over_to_the_next_cheapest() -> None:
    sandbox = Sandbox(seed=21, speed=0.0)
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        sandbox.providers["itrx"].delivery.for_target(target, Delivery.REFUSE)
        result = await _buy(sandbox, urls, target)
    assert result.verdict is Verdict.DELIVERED and result.provider == "catfee"
    assert _charged(sandbox, target) == {"catfee": 1}
    assert any(step.startswith("itrx: refused at create") for step in result.evidence.route)


async def test_an_unknown_outcome_never_fails_over() -> None:
    """iTRX takes the order, its answer is lost and it goes dark: no second provider is asked."""
    sandbox = Sandbox(seed=21, speed=0.0)
    itrx = sandbox.providers["itrx"]
    itrx.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")

    def go_dark() -> None:
        itrx.control.unreachable = True

    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        result = await _buy(sandbox, urls, target, hook=go_dark)
    assert result.provider == "itrx" and not fails_over(result)
    assert _charged(sandbox, target) == {"itrx": 1}
    assert all(
        sim.control.count("create") == 0
        for name, sim in sandbox.providers.items()
        if name != "itrx"
    )


async def test_a_provider_that_is_down_is_skipped() -> None:
    sandbox = Sandbox(seed=21, speed=0.0)
    sandbox.providers["itrx"].control.unreachable = True
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        result = await _buy(sandbox, urls, target)
    assert result.verdict is Verdict.DELIVERED and result.provider == "catfee"
    assert _charged(sandbox, target) == {"catfee": 1}
    assert any(step.startswith("itrx: skipped, could not answer") for step in result.evidence.route)


def test_router_refuses_duplicate_or_missing_providers() -> None:
    from energy_async.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        Router([])


async def test_a_batch_goes_to_the_cheapest_provider_that_takes_every_row() -> None:
    sandbox = Sandbox(seed=21, speed=0.0)
    async with sandbox.serve() as urls, client(urls, sandbox) as built:
        name, route = await built.router.pick(
            energy=ENERGY, duration="1h", accepts=lambda name: name != "itrx"
        )
        assert (name, route[-1]) == ("catfee", "catfee: chosen for every row of the batch")
        assert "itrx: cannot take every row" in route
        with pytest.raises(NothingBought, match="no configured provider can take every row"):
            await built.router.pick(energy=ENERGY, duration="1h", accepts=lambda name: False)
    assert sum(sim.control.count("create") for sim in sandbox.providers.values()) == 0

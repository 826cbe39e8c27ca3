"""TEnergy, iTRX and TronSave against their sandbox apps, written from their docs.

Each provider, one behaviour per test: normal, split fill (two delegators), partial fill, a lost
create response (exactly one charge, whatever the provider's idempotency capability; TronSave
by reconciling from its order history), refusal, and bad input refused before anything is sent.
The chain is frozen: blocks move only when a test says so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from energy_async._http import RateLimiter
from energy_async.errors import InsufficientBalance, NotSupported, OutcomeUnknown
from energy_async.models import OrderPhase
from energy_async.providers import Idempotency, Itrx, Provider, TEnergy, TronSave
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.faults import Fault
from energy_async.sandbox.itrx import ITRX_API_KEY, ITRX_API_SECRET, build_itrx_app, itrx_sim
from energy_async.sandbox.pools import SplitSim
from energy_async.sandbox.provider_core import Delivery
from energy_async.sandbox.tenergy import (
    TENERGY_API_KEY,
    TENERGY_API_SECRET,
    build_tenergy_app,
    tenergy_sim,
)
from energy_async.sandbox.tronsave import TRONSAVE_API_KEY, build_tronsave_app, tronsave_sim
from energy_async.session import ProviderSession, RetryPolicy
from tests.loopback import serving

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.001)
NAMES = ["tenergy", "itrx", "tronsave"]


@dataclass
class World:
    chain: Chain
    sims: dict[str, SplitSim]
    urls: dict[str, str]

    def provider(self, name: str) -> Provider:
        url = self.urls[name]
        if name == "tenergy":
            return TEnergy(api_key=TENERGY_API_KEY, api_secret=TENERGY_API_SECRET, base_url=url)
        if name == "itrx":
            return Itrx(api_key=ITRX_API_KEY, api_secret=ITRX_API_SECRET, base_url=url)
        return TronSave(api_key=TRONSAVE_API_KEY, base_url=url)

    def session(self, name: str) -> ProviderSession:
        return ProviderSession(self.provider(name), retry=FAST, limiter=RateLimiter(10_000))

    def advance(self, blocks: int) -> None:
        self.chain.advance_blocks(blocks)
        for sim in self.sims.values():
            sim.catch_up()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    chain = Chain(seed=3, speed=0.0)
    sims = {
        "tenergy": tenergy_sim(chain, seed=3),
        "itrx": itrx_sim(chain, seed=3),
        "tronsave": tronsave_sim(chain, seed=3),
    }
    root = web.Application()
    root.add_subapp("/tenergy", build_tenergy_app(sims["tenergy"]))
    root.add_subapp("/itrx", build_itrx_app(sims["itrx"]))
    root.add_subapp("/tronsave", build_tronsave_app(sims["tronsave"]))
    async with serving(root, access_log=None) as base:
        urls = {
            "tenergy": f"{base}/tenergy/v1",
            "itrx": f"{base}/itrx",
            "tronsave": f"{base}/tronsave",
        }
        yield World(chain, sims, urls)


def _orders_to(sim: SplitSim, target: str) -> int:
    return sum(1 for order in sim.orders.values() if order.receiver == target)


@pytest.mark.parametrize("name", NAMES)
async def test_normal_order_is_bought_once_and_confirmed(world: World, name: str) -> None:
    target = world.chain.new_account()
    sim = world.sims[name]
    async with world.session(name) as session:
        order = await session.create_order(target=target, energy=65_000)
        assert order.target == target and order.energy == 65_000
        world.advance(3)
        later = await session.get_order(order.id)
    assert later.phase is OrderPhase.CONFIRMED
    assert len(later.delegate_hashes) == 1
    tx = world.chain.transaction(later.delegate_hashes[0])
    assert tx is not None and tx.receiver == target and tx.owner == sim.pool_address
    assert _orders_to(sim, target) == 1 and sim.balance_sun < 100_000 * 1_000_000


@pytest.mark.parametrize("name", NAMES)
async def test_split_fill_names_both_delegations(world: World, name: str) -> None:
    target = world.chain.new_account()
    sim = world.sims[name]
    sim.split_for(target)
    async with world.session(name) as session:
        order = await session.create_order(target=target, energy=200_000)
        world.advance(3)
        later = await session.get_order(order.id)
    assert later.phase is OrderPhase.CONFIRMED and len(later.delegate_hashes) == 2
    txs = [world.chain.transaction(txid) for txid in later.delegate_hashes]
    assert all(tx is not None and tx.receiver == target for tx in txs)
    assert {tx.owner for tx in txs if tx} == {sim.pool_address, sim.second_pool}
    staked = next(iter(sim.orders.values())).staked_sun
    assert sum(tx.balance for tx in txs if tx) == staked


@pytest.mark.parametrize("name", NAMES)
async def test_partial_fill_delegates_less_than_ordered(world: World, name: str) -> None:
    target = world.chain.new_account()
    sim = world.sims[name]
    sim.delivery.for_target(target, Delivery.PARTIAL)
    async with world.session(name) as session:
        order = await session.create_order(target=target, energy=200_000)
        world.advance(3)
        later = await session.get_order(order.id)
    (txid,) = later.delegate_hashes
    tx = world.chain.transaction(txid)
    staked = next(iter(sim.orders.values())).staked_sun
    assert tx is not None and tx.balance < staked
    if name == "tronsave":  # the market says how much it filled; the others claim it all
        assert later.phase is OrderPhase.DELEGATED
        assert later.raw["fulfilledPercent"] < 100 and later.raw["remainAmount"] > 0


@pytest.mark.parametrize("name", ["tenergy", "itrx"])
async def test_lost_create_response_is_settled_with_one_charge(world: World, name: str) -> None:
    target = world.chain.new_account()
    sim = world.sims[name]
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    async with world.session(name) as session:
        order = await session.create_order(target=target, energy=65_000)
    assert order.target == target
    assert _orders_to(sim, target) == 1
    assert sim.charges(order.client_order_id) == 1


async def test_itrx_never_resends_a_create_blindly(world: World) -> None:
    """The lost create is found by out_trade_no: one create sent, one lookup before and after."""
    target = world.chain.new_account()
    sim = world.sims["itrx"]
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    async with world.session("itrx") as session:
        order = await session.create_order(target=target, energy=65_000)
    assert sim.control.count("create") == 1
    assert [r.endpoint for r in sim.control.requests] == ["get", "create", "get"]
    assert sim.charges(order.client_order_id) == 1


async def test_itrx_creates_again_only_after_the_lookup_proves_there_is_none(
    world: World,
) -> None:
    target = world.chain.new_account()
    sim = world.sims["itrx"]
    # The create fails before the provider acts (a 500 from the edge): nothing was bought.
    sim.control.faults.inject(Fault.SERVER_ERROR, endpoint="create")
    async with world.session("itrx") as session:
        order = await session.create_order(target=target, energy=65_000)
    assert [r.endpoint for r in sim.control.requests] == ["get", "create", "get", "create"]
    assert sim.charges(order.client_order_id) == 1 and _orders_to(sim, target) == 1


async def test_tronsave_lost_response_is_found_in_the_history_and_never_posted_again(
    world: World,
) -> None:
    target = world.chain.new_account()
    sim = world.sims["tronsave"]
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    async with world.session("tronsave") as session:
        request = session.prepare(target=target, energy=65_000)
        with pytest.raises(OutcomeUnknown):
            await session.place(request)
        order = await session.place(request)  # reconciled from GET /v2/orders
        again = await session.place(request)
    assert order.id == again.id and order.target == target and order.energy == 65_000
    assert sim.control.count("create") == 1 and sim.control.count("list") == 2
    assert _orders_to(sim, target) == 1


async def _post_raw(world: World, target: str) -> None:
    """A TronSave order for ``target`` made elsewhere (another process, the web site)."""
    provider = world.provider("tronsave")
    wire = provider.create_wire(provider.order_request(target=target, energy=65_000))
    headers = provider.signer.headers(provider.api_key, "", 0.0, "POST", wire.path, wire.body)
    async with (
        aiohttp.ClientSession() as http,
        http.post(world.urls["tronsave"] + wire.path, data=wire.body, headers=headers) as reply,
    ):
        assert reply.status == 201


async def test_tronsave_reconciliation_that_cannot_tell_is_unknown(world: World) -> None:
    """Two orders of the same shape since the intent: which is ours is unknowable, so UNKNOWN;
    and an order the session already holds is never adopted for a second intent."""
    target = world.chain.new_account()
    sim = world.sims["tronsave"]
    await _post_raw(world, target)
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    async with world.session("tronsave") as session:
        request = session.prepare(target=target, energy=65_000)
        with pytest.raises(OutcomeUnknown):
            await session.place(request)
        with pytest.raises(OutcomeUnknown, match="2 orders in the history match"):
            await session.place(request)
        held = await session.create_order(target=target, energy=65_000)
        second = session.prepare(target=target, energy=65_000)
        session.note_sent_before(second.client_order_id, 0.0)
        with pytest.raises(OutcomeUnknown, match="2 orders in the history match"):
            await session.place(second)  # the unclaimed two, never ``held``
    assert held.id in sim.orders
    assert sim.control.count("create") == 3 and _orders_to(sim, target) == 3


async def test_tronsave_unreadable_history_is_unknown(world: World) -> None:
    target = world.chain.new_account()
    sim = world.sims["tronsave"]
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    sim.control.faults.inject(Fault.SERVER_ERROR, endpoint="list", times=10)
    async with world.session("tronsave") as session:
        request = session.prepare(target=target, energy=65_000)
        with pytest.raises(OutcomeUnknown):
            await session.place(request)
        with pytest.raises(OutcomeUnknown, match="history could not be read"):
            await session.place(request)
    assert sim.control.count("create") == 1 and _orders_to(sim, target) == 1


@pytest.mark.parametrize("chain_clear", [True, False])
async def test_tronsave_creates_again_only_when_history_and_chain_prove_nothing_was_bought(
    world: World, chain_clear: bool
) -> None:
    target = world.chain.new_account()
    sim = world.sims["tronsave"]
    sim.control.faults.inject(Fault.SERVER_ERROR, endpoint="create")  # refused before acting
    asked: list[str] = []

    async def probe(receiver: str) -> bool:
        asked.append(receiver)
        return chain_clear

    async with world.session("tronsave") as session:
        session.chain_probe = probe
        request = session.prepare(target=target, energy=65_000)
        with pytest.raises(OutcomeUnknown):
            await session.place(request)
        with pytest.raises(OutcomeUnknown, match="not listed yet"):
            await session.place(request)  # the create may still be on its way
        assert asked == []
        sim.clock_offset += 33  # 33 s later on the provider's clock
        if chain_clear:
            order = await session.place(request)
            assert order.target == target
        else:
            with pytest.raises(OutcomeUnknown, match="delegations to the receiver"):
                await session.place(request)
    assert asked == [target]
    assert sim.control.count("create") == (2 if chain_clear else 1)
    assert _orders_to(sim, target) == (1 if chain_clear else 0)


@pytest.mark.parametrize("name", NAMES)
async def test_refusal_charges_nothing(world: World, name: str) -> None:
    target = world.chain.new_account()
    sim = world.sims[name]
    sim.delivery.for_target(target, Delivery.REFUSE)
    async with world.session(name) as session:
        with pytest.raises(InsufficientBalance):
            await session.create_order(target=target, energy=65_000)
    assert _orders_to(sim, target) == 0 and sim.total_charged_sun == 0


@pytest.mark.parametrize(
    ("name", "duration"), [("tenergy", "3d"), ("itrx", "5m"), ("tronsave", "fast")]
)
async def test_bad_input_is_refused_before_sending(world: World, name: str, duration: str) -> None:
    target = world.chain.new_account()
    async with world.session(name) as session:
        with pytest.raises(NotSupported):
            await session.create_order(target=target, energy=65_000, duration=duration)
        with pytest.raises(NotSupported):
            await session.create_order(target=target, transfers=1)
    assert world.sims[name].control.count() == 0


@pytest.mark.parametrize("name", ["itrx", "tronsave"])
async def test_the_sandbox_charges_a_repeated_create_again(world: World, name: str) -> None:
    """Why the session never repeats these creates: the provider would charge twice."""
    target = world.chain.new_account()
    sim = world.sims[name]
    provider = world.provider(name)
    request = provider.order_request(target=target, energy=65_000, client_order_id="same")
    wire = provider.create_wire(request)
    async with aiohttp.ClientSession() as http:
        for _ in range(2):
            headers = provider.signer.headers(
                provider.api_key,
                provider.api_secret,
                sim.now(),
                "POST",
                URL(world.urls[name]).path + wire.path,
                wire.body,
            )
            url = world.urls[name] + wire.path
            async with http.post(url, data=wire.body, headers=headers) as response:
                assert response.status in (200, 201)
    assert _orders_to(sim, target) == 2


@pytest.mark.parametrize("name", NAMES)
async def test_declared_idempotency(world: World, name: str) -> None:
    expected = {
        "tenergy": Idempotency.NATIVE_KEY,
        "itrx": Idempotency.LOOKUP_KEY,
        "tronsave": Idempotency.NONE,
    }
    assert world.provider(name).idempotency is expected[name]


@pytest.mark.parametrize("name", NAMES)
async def test_account_balance_is_read_in_sun(world: World, name: str) -> None:
    async with world.session(name) as session:
        account = await session.account()
    assert account.balance_sun == world.sims[name].balance_sun


async def test_quotes_where_a_price_is_published(world: World) -> None:
    async with world.session("itrx") as itrx, world.session("tronsave") as tronsave:
        quotes = [await s.quote(energy=100_000, duration="1h") for s in (itrx, tronsave)]
    assert [q.cost_sun for q in quotes] == [100_000 * 15, 100_000 * 30]
    async with world.session("tenergy") as tenergy:
        with pytest.raises(NotSupported):
            await tenergy.quote(energy=100_000)
    assert world.sims["tenergy"].control.count() == 0

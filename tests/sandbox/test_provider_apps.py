"""The simulated CatFee and Mefree apps, driven with raw aiohttp requests signed right here.

Nothing from the client library is used: the signature is computed with hmac in this module,
so a bug shared by the client and the sandbox cannot hide.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest
import yarl
from aiohttp import web

from energy_async.sandbox.catfee import (
    ACTIVATE_AMOUNT_SUN,
    HOUR_PRICE_SUN,
    build_catfee_app,
    catfee_sim,
)
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.faults import Fault
from energy_async.sandbox.mefree import build_mefree_app, mefree_sim
from energy_async.sandbox.provider_core import LAG_BLOCKS, Delivery, ProviderSim
from tests.loopback import serving

pytestmark = pytest.mark.anyio

TRX = 1_000_000
VECTOR_SECRET = "your_api_secret"
CATFEE_VECTOR = (
    "2023-08-26T12:34:56.789Z",
    "/v1/order?quantity=65000&receiver=TRON_ADDRESS&duration=1h",
    "YGUEHUn06m0HfsE2rCz5SapoQwlT1SAZFSzdVCes0S8=",
)
MEFREE_VECTOR = (
    "2024-11-26T12:34:56.789Z",
    "/api/order?quantity=65000&target_address=TRON_ADDRESS&period=1",
    "ppOU1OPIbOFlR9xacyApXu00ZyiU0i8IMiY3G/PuWZw=",
)


def stamp(unix_seconds: float) -> str:
    moment = datetime.fromtimestamp(unix_seconds, UTC).isoformat(timespec="milliseconds")
    return moment.replace("+00:00", "Z")


def signature(secret: str, timestamp: str, method: str, path: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}{method}{path}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    @property
    def data(self) -> Any:
        payload = self.json
        assert payload["code"] == 0, payload
        return payload["data"]


@dataclass
class Provider:
    """One mounted provider app as a test sees it: its sim and a signed raw request."""

    sim: ProviderSim
    prefix: str  # header prefix: CF / MF
    base: str  # scheme://host:port
    mount: str  # "/catfee", "" when mounted at the root
    http: aiohttp.ClientSession

    async def call(
        self,
        method: str,
        path: str,
        *,
        timestamp: str | None = None,
        key: str | None = None,
        signed_path: str | None = None,
        sign: str | None = None,
    ) -> Reply:
        """Send ``path`` (below the mount) byte for byte, signed over what goes on the wire."""
        wire = self.mount + path
        timestamp = timestamp or stamp(time.time())
        headers = {
            "Content-Type": "application/json",
            f"{self.prefix}-ACCESS-KEY": self.sim.api_key if key is None else key,
            f"{self.prefix}-ACCESS-TIMESTAMP": timestamp,
            f"{self.prefix}-ACCESS-SIGN": sign
            or signature(self.sim.api_secret, timestamp, method, signed_path or wire),
        }
        url = yarl.URL(self.base + wire, encoded=True)
        async with self.http.request(method, url, headers=headers) as response:
            return Reply(response.status, response.headers, await response.read())


@dataclass
class World:
    chain: Chain
    catfee: Provider
    mefree: Provider

    def target(self) -> str:
        return self.chain.new_account()

    async def buy(self, target: str, client_order_id: str | None = None, **extra: str) -> Reply:
        query = f"/v1/order?quantity=65000&receiver={target}&duration=1h"
        if client_order_id is not None:
            query += f"&client_order_id={client_order_id}"
        query += "".join(f"&{name}={value}" for name, value in extra.items())
        return await self.catfee.call("POST", query)

    async def order(self, order_id: str) -> dict[str, Any]:
        reply = await self.catfee.call("GET", f"/v1/order/{order_id}")
        data: dict[str, Any] = reply.data
        return data


@pytest.fixture
async def world() -> AsyncIterator[World]:
    chain = Chain(seed=3, speed=0)  # frozen: only advance_blocks moves it
    catfee, mefree = catfee_sim(chain, seed=3), mefree_sim(chain, seed=3)
    root = web.Application()
    root.add_subapp("/catfee", build_catfee_app(catfee))
    root.add_subapp("/mefree", build_mefree_app(mefree))
    async with serving(root) as base, aiohttp.ClientSession() as http:
        yield World(
            chain,
            Provider(catfee, "CF", base, "/catfee", http),
            Provider(mefree, "MF", base, "/mefree", http),
        )


# -- signing ------------------------------------------------------------------------------------


def test_published_vectors_are_what_hmac_gives() -> None:
    for timestamp, path, expected in (CATFEE_VECTOR, MEFREE_VECTOR):
        assert signature(VECTOR_SECRET, timestamp, "POST", path) == expected


@pytest.mark.parametrize("which", ["catfee", "mefree"])
async def test_published_vector_signatures_are_accepted(which: str) -> None:
    # Mounted at the root and with the provider's clock at the vector's moment, the exact
    # published request must pass authentication; TRON_ADDRESS then fails validation.
    chain = Chain(speed=0)
    timestamp, path, expected = CATFEE_VECTOR if which == "catfee" else MEFREE_VECTOR
    sim = catfee_sim(chain) if which == "catfee" else mefree_sim(chain)
    app = build_catfee_app(sim) if which == "catfee" else build_mefree_app(sim)
    sim.api_secret = VECTOR_SECRET
    vector_time = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    sim.clock_offset = vector_time.timestamp() - time.time()
    async with serving(app) as base, aiohttp.ClientSession() as http:
        provider = Provider(sim, "CF" if which == "catfee" else "MF", base, "", http)
        reply = await provider.call("POST", path, timestamp=timestamp, sign=expected)
        assert reply.status == 200
        assert reply.json["sub_code"] == "INVALID_ADDRESS"
        tampered = await provider.call("POST", path, timestamp=timestamp, sign=expected[::-1])
        assert tampered.status == 401
        assert tampered.json["sub_code"] == "INVALID_SIGNATURE"
    assert sim.total_charged_sun == 0


async def test_every_signing_mistake_is_a_401_that_says_which(world: World) -> None:
    provider, target = world.catfee, world.target()
    path = f"/v1/order?quantity=65000&receiver={target}&duration=1h"
    tampered_query = path.replace("65000", "650000")
    cases = {
        "wrong key": (
            await provider.call("POST", path, key="someone-else"),
            "INVALID_API_KEY",
        ),
        "tampered query": (
            await provider.call("POST", path, signed_path="/catfee" + tampered_query),
            "INVALID_SIGNATURE",
        ),
        "path signed without the mount prefix": (
            await provider.call("POST", path, signed_path=path),
            "INVALID_SIGNATURE",
        ),
        "tampered path": (
            await provider.call("GET", "/v1/account", signed_path="/catfee/v1/accounts"),
            "INVALID_SIGNATURE",
        ),
        "stale timestamp": (
            await provider.call("POST", path, timestamp=stamp(time.time() - 6)),
            "INVALID_TIMESTAMP",
        ),
        "future timestamp": (
            await provider.call("POST", path, timestamp=stamp(time.time() + 6)),
            "INVALID_TIMESTAMP",
        ),
        "seconds only": (
            await provider.call("POST", path, timestamp=stamp(time.time())[:19] + "Z"),
            "INVALID_TIMESTAMP",
        ),
    }
    for name, (reply, sub_code) in cases.items():
        assert reply.status == 401, name
        assert reply.json["sub_code"] == sub_code, name
        assert reply.json["code"] != 0, name
        assert "Date" in reply.headers, name
    assert provider.sim.total_charged_sun == 0
    assert not provider.sim.orders
    ok = await provider.call("POST", path, timestamp=stamp(time.time() - 4))
    assert ok.status == 200 and ok.data["quantity"] == 65000


async def test_missing_headers_are_rejected(world: World) -> None:
    url = f"{world.catfee.base}/catfee/v1/account"
    async with world.catfee.http.get(url) as response:
        assert response.status == 401
        assert (await response.json())["sub_code"] == "INVALID_API_KEY"
    headers = {"CF-ACCESS-KEY": world.catfee.sim.api_key}
    async with world.catfee.http.get(url, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["sub_code"] == "INVALID_TIMESTAMP"


async def test_mefree_checks_its_own_headers_and_keys(world: World) -> None:
    reply = await world.mefree.call("GET", "/api/config")
    assert reply.data["api_key"] == world.mefree.sim.api_key
    catfee_key = await world.mefree.call("GET", "/api/config", key=world.catfee.sim.api_key)
    assert catfee_key.status == 401


async def test_clock_offset_is_honoured_and_shown_in_date(world: World) -> None:
    sim = world.catfee.sim
    sim.clock_offset = 3600.0
    reply = await world.catfee.call("GET", "/v1/account")
    assert reply.status == 401
    assert reply.json["sub_code"] == "INVALID_TIMESTAMP"
    assert "server time" in reply.json["sub_msg"]
    server_date = email.utils.parsedate_to_datetime(reply.headers["Date"]).timestamp()
    assert abs(server_date - (time.time() + 3600)) < 2
    # A client that learns the offset from Date gets in.
    learned = await world.catfee.call("GET", "/v1/account", timestamp=stamp(server_date + 0.5))
    assert learned.status == 200
    assert learned.data["balance"] == sim.balance_sun


async def test_account_and_estimate(world: World) -> None:
    account = (await world.catfee.call("GET", "/v1/account")).data
    assert account["balance"] == world.catfee.sim.balance_sun
    assert world.catfee.sim.api_secret not in account["api_secret"]
    estimate = await world.catfee.call("GET", "/v1/estimate?quantity=100000&duration=1h")
    assert estimate.data == 100_000 * HOUR_PRICE_SUN
    too_low = await world.catfee.call("GET", "/v1/estimate?quantity=100&duration=1h")
    assert too_low.json["sub_code"] == "QUANTITY_TOO_LOW"
    config = (await world.mefree.call("GET", "/api/config")).data
    assert config["account_balance"] == world.mefree.sim.balance_sun
    assert world.mefree.sim.api_secret not in config["api_secret"]
    assert world.catfee.sim.control.count("estimate") == 2
    assert world.mefree.sim.control.count("account") == 1


# -- orders, validation, idempotency ------------------------------------------------------------


async def test_create_charges_once_and_reports_the_documented_fields(world: World) -> None:
    sim, target = world.catfee.sim, world.target()
    balance = sim.balance_sun
    data = (await world.buy(target, "order-1")).data
    assert data["status"] == "PAYMENT_SUCCESS"
    assert data["confirm_status"] == "UNCONFIRMED"
    assert data["activate_status"] == "ALREADY_ACTIVATED"
    assert "delegate_hash" not in data
    assert data["client_order_id"] == "order-1"
    assert data["receiver"] == target
    assert data["quantity"] == 65000 and data["duration"] == 60
    assert data["pay_amount_sun"] == 65000 * HOUR_PRICE_SUN
    assert data["staked_sun"] == 6_851 * TRX  # tron.md: 65,000 energy needs 6,851 TRX
    assert data["expired_timestamp"] - data["pay_timestamp"] == 3_600_000
    assert data["balance"] == balance - data["pay_amount_sun"] == sim.balance_sun
    assert len(data["id"]) == 36
    assert sim.charges("order-1") == 1
    assert sim.total_charged_sun == data["pay_amount_sun"]


async def test_repeated_client_order_id_returns_the_same_order_without_charging(
    world: World,
) -> None:
    sim, target = world.catfee.sim, world.target()
    first = (await world.buy(target, "same")).data
    balance = sim.balance_sun
    world.chain.advance_blocks(2)
    again = (await world.buy(target, "same")).data
    assert again["id"] == first["id"]
    assert again["confirm_status"] == "DELEGATION_CONFIRMED"  # the current state, not a copy
    assert sim.charges("same") == 1
    assert sim.balance_sun == balance
    other = (await world.buy(target, "other")).data
    assert other["id"] != first["id"]
    await world.buy(target)
    await world.buy(target)
    assert sim.charge_counts() == {"same": 1, "other": 1, None: 2}
    assert len(sim.orders) == 4
    # Mefree keeps its own books.
    mefree = f"/api/order?quantity=65000&target_address={target}&period=1&client_order_id=same"
    one = (await world.mefree.call("POST", mefree)).data
    two = (await world.mefree.call("POST", mefree)).data
    assert one["pay_hash"] == two["pay_hash"]
    assert world.mefree.sim.charges("same") == 1


@pytest.mark.parametrize(
    ("query", "sub_code"),
    [
        ("quantity=64999&receiver={t}&duration=1h", "QUANTITY_TOO_LOW"),
        ("quantity=5000001&receiver={t}&duration=1h", "QUANTITY_TOO_HIGH"),
        ("quantity=65000.0&receiver={t}&duration=1h", "INVALID_PARAMETER"),
        ("quantity=-65000&receiver={t}&duration=1h", "INVALID_PARAMETER"),
        ("quantity=65000&quantity=70000&receiver={t}&duration=1h", "INVALID_PARAMETER"),
        ("receiver={t}&duration=1h", "INVALID_PARAMETER"),
        ("quantity=65000&receiver=TXYZ&duration=1h", "INVALID_ADDRESS"),
        ("quantity=65000&receiver={t}x&duration=1h", "INVALID_ADDRESS"),
        ("quantity=65000&duration=1h", "INVALID_PARAMETER"),
        ("quantity=65000&receiver={t}&duration=24h", "INVALID_DURATION"),
        ("quantity=65000&receiver={t}&duration=60", "INVALID_DURATION"),
        ("quantity=65000&receiver={t}", "INVALID_PARAMETER"),
        (
            "quantity=65000&receiver={t}&duration=1h&client_order_id=" + "x" * 65,
            "INVALID_PARAMETER",
        ),
        ("quantity=65000&receiver={t}&duration=1h&activate=maybe", "INVALID_PARAMETER"),
    ],
)
async def test_catfee_refusals_charge_nothing(world: World, query: str, sub_code: str) -> None:
    reply = await world.catfee.call("POST", "/v1/order?" + query.format(t=world.target()))
    assert reply.status == 200
    assert reply.json["code"] != 0
    assert reply.json["sub_code"] == sub_code
    assert world.catfee.sim.total_charged_sun == 0
    assert not world.catfee.sim.orders


@pytest.mark.parametrize(
    ("query", "sub_code"),
    [
        ("quantity=65000&count=1&target_address={t}&period=1", "INVALID_PARAMETER"),
        ("target_address={t}&period=1", "INVALID_PARAMETER"),
        ("count=0&target_address={t}&period=1", "INVALID_PARAMETER"),
        ("count=77&target_address={t}&period=1", "QUANTITY_TOO_HIGH"),
        ("quantity=1000&target_address={t}&period=1", "QUANTITY_TOO_LOW"),
        ("quantity=65000&target_address={t}&period=31", "INVALID_DURATION"),
        ("quantity=65000&target_address={t}", "INVALID_PARAMETER"),
        ("quantity=65000&target_address=nope&period=1", "INVALID_ADDRESS"),
    ],
)
async def test_mefree_refusals_charge_nothing(world: World, query: str, sub_code: str) -> None:
    reply = await world.mefree.call("POST", "/api/order?" + query.format(t=world.target()))
    assert reply.status == 200
    assert reply.json["sub_code"] == sub_code
    assert world.mefree.sim.total_charged_sun == 0


async def test_mefree_count_and_periods(world: World) -> None:
    target = world.target()
    two = await world.mefree.call("POST", f"/api/order?count=2&target_address={target}&period=1")
    data = two.data
    assert data["energy_quantity"] == 130_000
    assert data["status"] == "TRANSFER_SUCCESS"
    assert data["energy_to_address"] == target
    assert data["energy_period"] == 1
    assert data["energy_expired_timestamp"] - data["timestamp"] == 3_600_000
    assert data["pay_address"] == world.mefree.sim.pool_address
    day = await world.mefree.call(
        "POST", f"/api/order?quantity=65000&target_address={target}&period=2"
    )
    assert day.data["energy_expired_timestamp"] - day.data["timestamp"] == 86_400_000
    days = await world.mefree.call(
        "POST", f"/api/order?quantity=65000&target_address={target}&period=30"
    )
    assert days.data["energy_expired_timestamp"] - days.data["timestamp"] == 30 * 86_400_000
    fast = await world.mefree.call(
        "POST", f"/api/order?quantity=65000&target_address={target}&period=0"
    )
    assert fast.data["energy_period"] == 0
    assert world.mefree.sim.charge_counts() == {None: 4}


async def test_unactivated_receivers(world: World) -> None:
    sim = world.catfee.sim
    fresh = world.chain.new_address()
    refused = await world.buy(fresh, "no-activate", activate="false")
    assert refused.json["sub_code"] == "ADDRESS_NOT_ACTIVATED"
    assert sim.total_charged_sun == 0 and not world.chain.is_activated(fresh)
    data = (await world.buy(fresh, "activate")).data
    assert data["activate_status"] == "ACTIVATED"
    assert data["activate_amount_sun"] == ACTIVATE_AMOUNT_SUN
    assert sim.total_charged_sun == data["pay_amount_sun"] + ACTIVATE_AMOUNT_SUN
    assert world.chain.is_activated(fresh)
    world.chain.advance_blocks(2)
    assert world.chain.energy_limit(fresh) >= 65_000
    mefree_fresh = world.chain.new_address()
    path = f"/api/order?quantity=65000&target_address={mefree_fresh}&period=1"
    made = (await world.mefree.call("POST", path)).data
    assert made["activate_status"] == "ACTIVATED"
    assert world.chain.is_activated(mefree_fresh)


async def test_insufficient_balance_is_refused_and_free(world: World) -> None:
    sim = world.catfee.sim
    sim.balance_sun = 1_000_000
    reply = await world.buy(world.target(), "poor")
    assert reply.json["sub_code"] == "INSUFFICIENT_BALANCE"
    assert sim.balance_sun == 1_000_000 and sim.charges("poor") == 0
    sim.balance_sun = 65_000 * HOUR_PRICE_SUN
    assert (await world.buy(world.target(), "poor")).data["balance"] == 0
    assert sim.charges("poor") == 1


async def test_a_delegation_the_chain_rejects_charges_nothing(world: World) -> None:
    sim = world.catfee.sim
    sim.pool_address = world.chain.new_account(energy_stake_sun=TRX)  # an almost empty pool
    with pytest.raises(ValueError, match="delegateBalance"):
        sim.place(
            client_order_id="empty-pool",
            receiver=world.target(),
            quantity=65_000,
            term=60,
            seconds=3600,
            price_sun=1,
            category="hour",
        )
    assert sim.charges("empty-pool") == 0 and sim.total_charged_sun == 0 and not sim.orders


async def test_unknown_order_and_unknown_path(world: World) -> None:
    missing = await world.catfee.call("GET", "/v1/order/00000000-0000-4000-8000-000000000000")
    assert missing.status == 200 and missing.json["sub_code"] == "ORDER_NOT_FOUND"
    missing = await world.mefree.call("GET", "/api/order/nope")
    assert missing.json["sub_code"] == "ORDER_NOT_FOUND"
    nowhere = await world.catfee.call("GET", "/v2/whatever")
    assert nowhere.status == 404 and "Date" in nowhere.headers
    wrong_method = await world.catfee.call("GET", "/v1/order?quantity=65000")
    assert wrong_method.status == 404
    assert world.catfee.sim.control.count("other") == 2


# -- the status walk ----------------------------------------------------------------------------


async def test_status_walk_follows_the_chain(world: World) -> None:
    chain, sim, target = world.chain, world.catfee.sim, world.target()
    created = chain.head()
    order = (await world.buy(target, "walk")).data
    assert (order["status"], order["confirm_status"]) == ("PAYMENT_SUCCESS", "UNCONFIRMED")
    assert "delegate_hash" not in order
    assert chain.energy_limit(target) == 0
    # B+1: the delegation is in a block; the provider shows it as broadcast.
    chain.advance_blocks(1)
    order = await world.order(order["id"])
    assert (order["status"], order["confirm_status"]) == ("DELEGATE_SUCCESS", "UNCONFIRMED")
    txid = order["delegate_hash"]
    assert chain.tx_block(txid) == created + 1
    tx = chain.transaction(txid)
    assert tx is not None
    assert (tx.owner, tx.receiver, tx.balance) == (sim.pool_address, target, order["staked_sun"])
    assert 65_000 <= chain.energy_limit(target) < 65_010
    # B+2: the provider has noticed.
    chain.advance_blocks(1)
    order = await world.order(order["id"])
    assert (order["status"], order["confirm_status"]) == (
        "DELEGATE_SUCCESS",
        "DELEGATION_CONFIRMED",
    )
    # One hour (1,200 blocks) after the order the provider takes its TRX back.
    chain.advance_blocks(1197)
    assert "reclaim_hash" not in await world.order(order["id"])
    chain.advance_blocks(1)
    order = await world.order(order["id"])
    assert order["confirm_status"] == "DELEGATION_CONFIRMED"
    reclaim = order["reclaim_hash"]
    assert chain.transaction(reclaim) is not None
    chain.advance_blocks(1)
    assert chain.tx_block(reclaim) == created + 1201
    assert chain.energy_limit(target) == 0
    assert chain.delegated_sun(sim.pool_address, target) == 0
    chain.advance_blocks(1)
    order = await world.order(order["id"])
    assert (order["status"], order["confirm_status"]) == ("DELEGATE_SUCCESS", "RECLAIM_CONFIRMED")
    assert order["reclaim_timestamp"] >= order["expired_timestamp"]


async def test_mefree_walks_from_transfer_success(world: World) -> None:
    target = world.target()
    path = f"/api/order?quantity=100000&target_address={target}&period=1"
    created = (await world.mefree.call("POST", path)).data
    assert created["status"] == "TRANSFER_SUCCESS"
    world.chain.advance_blocks(2)
    data = (await world.mefree.call("GET", f"/api/order/{created['pay_hash']}")).data
    assert (data["status"], data["confirm_status"]) == ("DELEGATE_SUCCESS", "DELEGATION_CONFIRMED")
    assert world.chain.transaction(data["delegate_hash"]) is not None
    assert world.chain.energy_limit(target) >= 100_000


# -- delivery behaviours ------------------------------------------------------------------------


async def settled(world: World, target: str, delivery: Delivery, blocks: int = 3) -> dict[str, Any]:
    """Buy for ``target`` served as ``delivery``, let ``blocks`` pass one by one, read it back."""
    world.catfee.sim.delivery.for_target(target, delivery)
    order = (await world.buy(target)).data
    for _ in range(blocks):
        world.chain.advance_blocks(1)
        await world.order(order["id"])
    return await world.order(order["id"])


async def test_never_lands(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.NEVER_LANDS, blocks=25)
    assert (order["status"], order["confirm_status"]) == ("DELEGATE_SUCCESS", "UNCONFIRMED")
    assert world.chain.tx_block(order["delegate_hash"]) is None
    assert world.chain.tx_state(order["delegate_hash"]) == "unknown"  # expired unconfirmed
    assert order["delegate_hash"] == world.catfee.sim.orders[order["id"]].delegate_hash
    assert world.chain.energy_limit(target) == 0


async def test_claim_without_delegating(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.CLAIM_WITHOUT_DELEGATING)
    assert order["confirm_status"] == "DELEGATION_CONFIRMED"
    assert len(order["delegate_hash"]) == 64
    assert world.chain.tx_state(order["delegate_hash"]) == "unknown"
    assert world.chain.energy_limit(target) == 0


async def test_partial(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.PARTIAL)
    assert order["confirm_status"] == "DELEGATION_CONFIRMED"
    delegated = world.chain.delegated_sun(world.catfee.sim.pool_address, target)
    assert delegated == order["staked_sun"] // TRX // 2 * TRX
    assert 0 < world.chain.energy_limit(target) < 33_000


async def test_wrong_receiver(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.WRONG_RECEIVER)
    assert order["confirm_status"] == "DELEGATION_CONFIRMED"
    tx = world.chain.transaction(order["delegate_hash"])
    assert tx is not None and tx.receiver != target and tx.balance == order["staked_sun"]
    assert world.chain.energy_limit(tx.receiver) >= 65_000
    assert world.chain.energy_limit(target) == 0


async def test_refuse(world: World) -> None:
    target = world.target()
    world.catfee.sim.delivery.for_target(target, Delivery.REFUSE)
    reply = await world.buy(target, "refused")
    assert reply.json["sub_code"] == "INSUFFICIENT_BALANCE"
    assert world.catfee.sim.charges("refused") == 0 and not world.catfee.sim.orders


async def test_fail_but_delegated(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.FAIL_BUT_DELEGATED)
    assert (order["status"], order["confirm_status"]) == ("DELEGATE_FAIL", "UNCONFIRMED")
    assert world.chain.energy_limit(target) >= 65_000


async def test_provider_lag(world: World) -> None:
    target = world.target()
    order = await settled(world, target, Delivery.PROVIDER_LAG)
    assert (order["status"], order["confirm_status"]) == ("PAYMENT_SUCCESS", "UNCONFIRMED")
    assert "delegate_hash" not in order
    assert world.chain.energy_limit(target) >= 65_000  # delivered, the provider just lags
    world.chain.advance_blocks(LAG_BLOCKS)
    order = await world.order(order["id"])
    assert (order["status"], order["confirm_status"]) == (
        "DELEGATE_SUCCESS",
        "DELEGATION_CONFIRMED",
    )


async def test_delivery_rates_and_default(world: World) -> None:
    plan = world.catfee.sim.delivery
    plan.set_rate(Delivery.CLAIM_WITHOUT_DELEGATING, 1.0)
    pinned = world.target()
    plan.for_target(pinned, Delivery.NORMAL)
    assert plan.choose(world.target()) is Delivery.CLAIM_WITHOUT_DELEGATING
    assert plan.choose(pinned) is Delivery.NORMAL
    plan.set_rate(Delivery.CLAIM_WITHOUT_DELEGATING, 0.5)
    drawn = [plan.choose(world.target()) for _ in range(400)]
    assert 120 < drawn.count(Delivery.CLAIM_WITHOUT_DELEGATING) < 280
    plan.set_rate(Delivery.CLAIM_WITHOUT_DELEGATING, 0)
    plan.default = Delivery.PARTIAL
    assert plan.choose(world.target()) is Delivery.PARTIAL
    with pytest.raises(ValueError):
        plan.set_rate(Delivery.PARTIAL, 1.5)


# -- faults -------------------------------------------------------------------------------------


async def test_lost_response_charges_once_and_the_client_sees_a_disconnect(world: World) -> None:
    sim, target = world.catfee.sim, world.target()
    sim.control.faults.inject(Fault.LOST_RESPONSE, endpoint="create")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await world.buy(target, "lost")
    assert sim.charges("lost") == 1 and len(sim.orders) == 1
    assert sim.control.requests[-1].status == 0
    retry = (await world.buy(target, "lost")).data
    assert retry["id"] in sim.orders
    assert sim.charges("lost") == 1


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        (Fault.SERVER_ERROR, 500, "application/json"),
        (Fault.BAD_GATEWAY, 502, "text/html"),
        (Fault.HTML_BODY, 200, "text/html"),
        (Fault.NON_JSON, 200, "text/plain"),
        (Fault.RATE_LIMIT, 429, "application/json"),
    ],
)
async def test_faults_that_answer_before_the_provider(
    world: World, fault: Fault, status: int, content_type: str
) -> None:
    sim = world.catfee.sim
    sim.control.faults.inject(fault, endpoint="create")
    reply = await world.buy(world.target(), "early")
    assert reply.status == status
    assert reply.headers["Content-Type"].startswith(content_type)
    assert sim.charges("early") == 0 and not sim.orders
    if fault is Fault.NON_JSON:
        assert reply.body == b"error code: 1010"
    if fault is Fault.RATE_LIMIT:
        assert reply.headers["Retry-After"] == "1"
    assert (await world.buy(world.target(), "early")).data  # injected once only
    assert sim.charges("early") == 1


async def test_rate_limit_retry_after_param_and_endpoint_scope(world: World) -> None:
    faults = world.catfee.sim.control.faults
    faults.inject(Fault.RATE_LIMIT, endpoint="account", retry_after=7)
    assert (await world.catfee.call("GET", "/v1/estimate?quantity=65000&duration=1h")).data
    limited = await world.catfee.call("GET", "/v1/account")
    assert limited.status == 429 and limited.headers["Retry-After"] == "7"
    # TronGrid-only faults never hit a provider.
    faults.inject(Fault.THROTTLE_403)
    assert (await world.catfee.call("GET", "/v1/account")).status == 200


async def test_latency(world: World) -> None:
    world.catfee.sim.control.faults.inject(Fault.LATENCY, delay=0.15)
    started = time.monotonic()
    reply = await world.catfee.call("GET", "/v1/account")
    assert time.monotonic() - started >= 0.15
    assert reply.status == 200


@pytest.mark.parametrize("fault", [Fault.TRUNCATED_JSON, Fault.HUGE_BODY, Fault.WRONG_TYPES])
async def test_spoiled_answers_still_took_effect(world: World, fault: Fault) -> None:
    sim = world.catfee.sim
    sim.control.faults.inject(fault, endpoint="create", size=2 * 1024 * 1024)
    reply = await world.buy(world.target(), "spoiled")
    assert reply.status == 200
    assert sim.charges("spoiled") == 1
    if fault is Fault.TRUNCATED_JSON:
        with pytest.raises(msgspec.DecodeError):
            reply.json  # noqa: B018
    elif fault is Fault.HUGE_BODY:
        assert len(reply.body) > 2 * 1024 * 1024
        assert reply.json["data"]["client_order_id"] == "spoiled"
    else:
        assert reply.json["code"] == "0"
        assert reply.json["data"]["quantity"] == "65000"


async def test_fault_rates_are_seeded(world: World) -> None:
    world.catfee.sim.control.faults.set_rate(Fault.SERVER_ERROR, 0.5, endpoint="account")
    statuses = [(await world.catfee.call("GET", "/v1/account")).status for _ in range(40)]
    assert set(statuses) == {200, 500}


async def test_unreachable_drops_everything_and_logs_it(world: World) -> None:
    control = world.catfee.sim.control
    control.unreachable = True
    for path in ("/v1/account", "/v1/order/x"):
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await world.catfee.call("GET", path)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await world.buy(world.target(), "down")
    assert world.catfee.sim.charges("down") == 0
    # aiohttp itself retries an idempotent GET once after a disconnect; a POST never.
    assert {record.status for record in control.requests} == {0}
    assert [control.count(name) for name in ("account", "get", "create")] == [2, 2, 1]
    assert world.mefree.sim.control.count() == 0
    assert (await world.mefree.call("GET", "/api/config")).status == 200
    control.unreachable = False
    assert (await world.catfee.call("GET", "/v1/account")).status == 200


async def test_request_log_can_be_switched_off(world: World) -> None:
    control = world.catfee.sim.control
    await world.catfee.call("GET", "/v1/account")
    assert control.requests[0].raw_path == "/catfee/v1/account"
    assert control.requests[0].status == 200
    control.keep_log = False
    for _ in range(3):
        await world.catfee.call("GET", "/v1/account")
    assert len(control.requests) == 1
    assert control.count() == control.count("account") == 4

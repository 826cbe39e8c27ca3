"""The /_sandbox admin endpoints, driven over HTTP as a script in another process would."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import msgspec
import pytest
import yarl

from energy_async.sandbox import Delivery, Fault, ProviderSim, Sandbox, SandboxURLs
from energy_async.sandbox.admin import _is_loopback
from energy_async.sandbox.base58 import decode_address
from energy_async.sandbox.catfee import build_catfee_app, catfee_sim
from energy_async.sandbox.registry import PROVIDER_APPS, ProviderApp
from energy_async.sandbox.trc20 import USDT
from energy_async.sandbox.world import World

pytestmark = pytest.mark.anyio


@dataclass
class Admin:
    sandbox: Sandbox
    urls: SandboxURLs
    http: aiohttp.ClientSession

    async def get(self, path: str) -> Any:
        async with self.http.get(f"{self.urls.admin}{path}") as response:
            assert response.status == 200
            return await response.json()

    async def post(self, path: str, body: Any = None, *, status: int = 200) -> Any:
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body or {})
        async with self.http.post(f"{self.urls.admin}{path}", data=raw) as response:
            assert response.status == status, await response.text()
            return await response.json()

    async def buy(
        self, sim: ProviderSim, target: str, client_order_id: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A signed create on ``sim`` (CatFee or Mefree); returns (HTTP status, envelope)."""
        if sim is self.sandbox.catfee:
            base, prefix = self.urls.catfee, "CF"
            path = f"/v1/order?quantity=65000&receiver={target}&duration=1h"
        else:
            base, prefix = self.urls.mefree, "MF"
            path = f"/api/order?quantity=65000&target_address={target}&period=1"
        if client_order_id is not None:
            path += f"&client_order_id={client_order_id}"
        url = yarl.URL(base + path, encoded=True)
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        message = f"{stamp}POST{url.raw_path_qs}".encode()
        sign = hmac.new(sim.api_secret.encode(), message, hashlib.sha256).digest()
        headers = {
            f"{prefix}-ACCESS-KEY": sim.api_key,
            f"{prefix}-ACCESS-SIGN": base64.b64encode(sign).decode(),
            f"{prefix}-ACCESS-TIMESTAMP": stamp,
        }
        async with self.http.post(url, headers=headers) as response:
            envelope: dict[str, Any] = msgspec.json.decode(await response.read())
            return response.status, envelope


@pytest.fixture
async def admin() -> AsyncIterator[Admin]:
    sandbox = Sandbox(seed=11, speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        yield Admin(sandbox, urls, http)


async def test_state_reports_chain_and_books(admin: Admin) -> None:
    sandbox = admin.sandbox
    target = sandbox.new_target()
    await admin.buy(sandbox.catfee, target, "with-id")
    await admin.buy(sandbox.catfee, target, "with-id")
    await admin.buy(sandbox.catfee, target)
    state = await admin.get("/state")
    assert state["head"] == sandbox.chain.head()
    assert state["solid_head"] == state["head"] - 18
    assert state["total_energy_weight"] == sandbox.chain.total_energy_weight
    assert state["total_energy_limit"] == sandbox.chain.total_energy_limit
    catfee = state["catfee"]
    assert catfee["charges"] == {"with-id": 1}
    assert catfee["charges_without_id"] == 1
    assert catfee["orders"] == 2
    assert catfee["requests"] == 3
    assert catfee["balance_sun"] == sandbox.catfee.balance_sun
    assert catfee["total_charged_sun"] == 2 * 65_000 * 17
    assert catfee["pool_address"] == sandbox.catfee.pool_address
    assert state["mefree"]["orders"] == 0
    assert state["trongrid"]["requests"] == 0  # admin calls are not service traffic


async def test_targets_are_fresh_activated_addresses(admin: Admin) -> None:
    first = (await admin.post("/targets"))["address"]
    second = (await admin.post("/targets"))["address"]
    assert first != second
    assert admin.sandbox.chain.is_activated(first)
    assert admin.sandbox.chain.energy_limit(first) == 0


TRX = 1_000_000


async def trongrid(admin: Admin, servlet: str, body: dict[str, Any]) -> Any:
    async with admin.http.post(f"{admin.urls.trongrid}/wallet/{servlet}", json=body) as response:
        assert response.status == 200
        return await response.json()


async def usdt_of(admin: Admin, holder: str, token: str = USDT) -> int:
    """balanceOf as a wallet reads it: triggerconstantcontract on the sandbox's TronGrid."""
    raw = decode_address(holder)
    assert raw is not None
    call = {
        "owner_address": holder,
        "contract_address": token,
        "function_selector": "balanceOf(address)",
        "parameter": "0" * 24 + raw[1:].hex(),
        "visible": True,
    }
    answer = await trongrid(admin, "triggerconstantcontract", call)
    return int(answer["constant_result"][0], 16)


async def test_accounts_hold_trx_stakes_and_usdt(admin: Admin) -> None:
    spec = {
        "balance_sun": 5 * TRX,
        "energy_stake_sun": 10_000 * TRX,
        "bandwidth_stake_sun": 1_000 * TRX,
        "usdt_base_units": 12_500_000,
    }
    made = await admin.post("/accounts", spec)
    address = made["address"]
    account = await trongrid(admin, "getaccount", {"address": address, "visible": True})
    resource = await trongrid(admin, "getaccountresource", {"address": address, "visible": True})
    assert account["balance"] == 5 * TRX
    assert resource["EnergyLimit"] == made["energy_limit"] > 0
    assert resource["NetLimit"] == made["net_limit"] == 1_629  # 1,000 TRX of 26.5M TRX's 43.2G
    assert made["balance_sun"] == 5 * TRX and made["usdt_base_units"] == 12_500_000
    assert await usdt_of(admin, address) == 12_500_000


async def test_an_account_with_no_body_or_an_empty_one_has_nothing(admin: Admin) -> None:
    for body in (b"", {}):
        made = await admin.post("/accounts", body)
        assert admin.sandbox.chain.is_activated(made["address"])
        assert made == {
            "address": made["address"],
            "balance_sun": 0,
            "energy_limit": 0,
            "net_limit": 0,
            "usdt_base_units": 0,
        }


@pytest.mark.parametrize(
    "body",
    [
        {"balance_sun": -1},
        {"energy_stake_sun": 1.5},
        {"bandwidth_stake_sun": "1000"},
        {"usdt_base_units": True},
        {"balance_sun": 2**63},
        {"usdt_base_units": 2**256},
        {"balance_sun": TRX, "usdt": 1},  # unknown field: nothing half-made
        b"[]",
        b"{not json",
    ],
)
async def test_bad_accounts_are_400_and_make_nothing(admin: Admin, body: Any) -> None:
    weight = admin.sandbox.chain.total_energy_weight
    assert (await admin.post("/accounts", body, status=400))["error"]
    assert admin.sandbox.chain.total_energy_weight == weight
    # The addresses come from a seeded sequence: a half-made account would shift it.
    assert (await admin.post("/targets"))["address"] == World(seed=11, speed=0).new_target()


async def test_mint_gives_any_address_tokens_activated_or_not(admin: Admin) -> None:
    chain = admin.sandbox.chain
    stranger = chain.new_address()  # never activated
    made = await admin.post("/trc20/mint", {"address": stranger, "amount": 7})
    again = await admin.post("/trc20/mint", {"address": stranger, "amount": 5, "token": USDT})
    assert made == {"address": stranger, "token": USDT, "balance": 7, "activated": False}
    assert again["balance"] == 12 and await usdt_of(admin, stranger) == 12
    assert await trongrid(admin, "getaccount", {"address": stranger, "visible": True}) == {}
    other = chain.trc20.deploy("TKN", 18)
    holder = (await admin.post("/targets"))["address"]
    minted = await admin.post("/trc20/mint", {"address": holder, "amount": 10**24, "token": other})
    assert minted == {"address": holder, "token": other, "balance": 10**24, "activated": True}
    assert await usdt_of(admin, holder, other) == 10**24
    assert await usdt_of(admin, holder) == 0


@pytest.mark.parametrize(
    "body",
    [
        {"address": "TNotAnAddressAtAll", "amount": 1},
        {"address": "<holder>", "amount": 0},
        {"address": "<holder>", "amount": -5},
        {"address": "<holder>", "amount": 1.5},
        {"address": "<holder>", "amount": "1"},
        {"address": "<holder>", "amount": 2**256},
        {"address": "<holder>", "amount": 2**256 - 1},  # it already holds 1: past uint256
        {"address": "<holder>", "amount": 1, "token": "<stranger>"},  # no contract there
        {"address": "<holder>"},
        {"amount": 1},
        {"address": "<holder>", "amount": 1, "symbol": "USDT"},
    ],
)
async def test_bad_mints_are_400_and_mint_nothing(admin: Admin, body: dict[str, Any]) -> None:
    chain = admin.sandbox.chain
    holder, stranger = chain.new_address(), chain.new_address()
    chain.trc20.mint(USDT, holder, 1)
    names = {"<holder>": holder, "<stranger>": stranger}
    body = {key: names.get(value, value) for key, value in body.items()}
    assert (await admin.post("/trc20/mint", body, status=400))["error"]
    assert chain.trc20.tokens[USDT].balances == {holder: 1}


async def test_delivery_per_target_rate_and_default(admin: Admin) -> None:
    sandbox = admin.sandbox
    cheated = sandbox.new_target()
    await admin.post(
        "/delivery",
        {"provider": "mefree", "target": cheated, "delivery": "CLAIM_WITHOUT_DELEGATING"},
    )
    status, envelope = await admin.buy(sandbox.mefree, cheated)
    assert status == 200
    order = sandbox.mefree.orders[envelope["data"]["pay_hash"]]
    assert order.delivery is Delivery.CLAIM_WITHOUT_DELEGATING
    await admin.post("/delivery", {"provider": "catfee", "delivery": "REFUSE", "rate": 1.0})
    _, refused = await admin.buy(sandbox.catfee, sandbox.new_target())
    assert refused["sub_code"] == "INSUFFICIENT_BALANCE"
    await admin.post("/delivery", {"provider": "catfee", "delivery": "REFUSE", "rate": 0})
    await admin.post("/delivery", {"provider": "catfee", "delivery": "PARTIAL"})
    assert sandbox.catfee.delivery.default is Delivery.PARTIAL
    _, made = await admin.buy(sandbox.catfee, sandbox.new_target())
    assert sandbox.catfee.orders[made["data"]["id"]].delivery is Delivery.PARTIAL


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "nosuchprovider", "delivery": "NORMAL"},
        {"provider": "catfee", "delivery": "LOST"},
        {"provider": "catfee", "delivery": "NORMAL", "target": "not-an-address"},
        {"provider": "catfee", "delivery": "NORMAL", "rate": 1.5},
        {"provider": "catfee", "delivery": "NORMAL", "colour": "red"},
        {"delivery": "NORMAL"},
    ],
)
async def test_bad_delivery_changes_are_400(admin: Admin, body: dict[str, Any]) -> None:
    reply = await admin.post("/delivery", body, status=400)
    assert reply["error"]
    assert admin.sandbox.catfee.delivery.default is Delivery.NORMAL


async def test_faults_injected_with_times_endpoint_and_params(admin: Admin) -> None:
    sandbox = admin.sandbox
    await admin.post(
        "/faults",
        {
            "service": "catfee",
            "fault": "RATE_LIMIT",
            "times": 2,
            "endpoint": "create",
            "params": {"retry_after": 3},
        },
    )
    target = sandbox.new_target()
    for _ in range(2):
        status, envelope = await admin.buy(sandbox.catfee, target, "limited")
        assert (status, envelope["code"]) == (429, 429)
    status, envelope = await admin.buy(sandbox.catfee, target, "limited")
    assert (status, envelope["code"]) == (200, 0)
    assert sandbox.catfee.charges("limited") == 1


async def test_fault_rates_and_trongrid_faults(admin: Admin) -> None:
    sandbox = admin.sandbox
    await admin.post("/faults", {"service": "mefree", "fault": "SERVER_ERROR", "rate": 1.0})
    status, _ = await admin.buy(sandbox.mefree, sandbox.new_target())
    assert status == 500
    await admin.post("/faults", {"service": "mefree", "fault": "SERVER_ERROR", "rate": 0.0})
    status, _ = await admin.buy(sandbox.mefree, sandbox.new_target())
    assert status == 200
    await admin.post("/faults", {"service": "trongrid", "fault": Fault.THROTTLE_429})
    url = f"{admin.urls.trongrid}/wallet/getnowblock"
    async with admin.http.post(url, json={}) as response:
        assert response.status == 429
    async with admin.http.post(url, json={}) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"service": "catfee", "fault": "THROTTLE_403"},  # a TronGrid-only fault
        {"service": "trongrid", "fault": "RATE_LIMIT"},  # a provider-only fault
        {"service": "catfee", "fault": "NOPE"},
        {"service": "nosuchservice", "fault": "SERVER_ERROR"},
        {"service": "catfee", "fault": "SERVER_ERROR", "times": 0},
        {"service": "catfee", "fault": "SERVER_ERROR", "rate": -0.1},
        {"service": "catfee", "fault": "SERVER_ERROR", "params": []},
    ],
)
async def test_bad_fault_changes_are_400(admin: Admin, body: dict[str, Any]) -> None:
    assert (await admin.post("/faults", body, status=400))["error"]
    status, _ = await admin.buy(admin.sandbox.catfee, admin.sandbox.new_target())
    assert status == 200  # nothing was switched on


async def test_malformed_json_is_400(admin: Admin) -> None:
    assert (await admin.post("/faults", b"{not json", status=400))["error"]
    assert (await admin.post("/advance", b"", status=400))["error"]


async def test_advance_moves_the_chain_and_lets_providers_act(admin: Admin) -> None:
    sandbox = admin.sandbox
    head = sandbox.chain.head()
    _, made = await admin.buy(sandbox.catfee, sandbox.new_target())
    assert (await admin.post("/advance", {"blocks": 1300}))["head"] == head + 1300
    order = sandbox.catfee.orders[made["data"]["id"]]
    assert order.reclaim_hash is not None
    assert sandbox.chain.tx_block(order.reclaim_hash) == head + 1201
    assert (await admin.post("/advance", {"blocks": 0}))["head"] == head + 1300
    for bad in ({"blocks": -1}, {"blocks": "ten"}, {}):
        assert (await admin.post("/advance", bad, status=400))["error"]
    assert sandbox.chain.head() == head + 1300


def test_loopback_only() -> None:
    assert _is_loopback("127.0.0.1") and _is_loopback("127.8.9.10") and _is_loopback("::1")
    for remote in ("10.0.0.1", "192.168.1.20", "2001:db8::1", None, "", "localhost"):
        assert not _is_loopback(remote)


async def test_a_registered_provider_app_is_served_and_staged_by_name() -> None:
    """One ProviderApp line is all a new provider needs: its own sim, prefix and admin name."""
    extra = ProviderApp("catfee2", catfee_sim, build_catfee_app)
    sandbox = Sandbox(seed=3, speed=0, provider_apps=(*PROVIDER_APPS, extra))
    assert list(sandbox.providers) == ["catfee", "mefree", "tenergy", "itrx", "tronsave", "catfee2"]
    second = sandbox.providers["catfee2"]
    assert second is not sandbox.catfee and second.pool_address != sandbox.catfee.pool_address
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        admin = Admin(sandbox, urls, http)
        assert urls.provider("catfee2") == f"{urls.base}/catfee2"
        await admin.post("/faults", {"service": "catfee2", "fault": "SERVER_ERROR"})
        async with http.get(f"{urls.provider('catfee2')}/v1/account") as response:
            assert response.status == 500
        assert second.control.count() == 1 and sandbox.catfee.control.count() == 0
        await admin.post("/delivery", {"provider": "catfee2", "delivery": "REFUSE"})
        assert second.delivery.default is Delivery.REFUSE
        assert sandbox.catfee.delivery.default is not Delivery.REFUSE
        error = await admin.post(
            "/delivery", {"provider": "nobody", "delivery": "REFUSE"}, status=400
        )
        assert "nobody" in error["error"] and "catfee2" in error["error"]
        assert "catfee2" in (await admin.get("/state"))
        assert urls.provider("catfee2") in sandbox.describe(urls)


def test_the_world_runs_without_a_server() -> None:
    world = World(seed=3, speed=0)
    target = world.new_target()
    world.advance_blocks(5)
    assert world.chain.is_activated(target) and list(world.providers) == [
        "catfee",
        "mefree",
        "tenergy",
        "itrx",
        "tronsave",
    ]
    assert Sandbox(seed=3, speed=0).catfee.pool_address == world.catfee.pool_address

"""The Sandbox: one loopback server for every service, closed cleanly, agreeing with the chain."""

from __future__ import annotations

import base64
import gc
import hashlib
import hmac
import socket
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
import yarl
from anyio.abc import TaskStatus

from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Delivery,
    Fault,
    ProviderSim,
    Sandbox,
    SandboxURLs,
)
from energy_async.sandbox.provider_core import SimOrder

pytestmark = pytest.mark.anyio


def signed_headers(sim: ProviderSim, prefix: str, method: str, wire_path: str) -> dict[str, str]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = f"{stamp}{method}{wire_path}".encode()
    sign = base64.b64encode(hmac.new(sim.api_secret.encode(), message, hashlib.sha256).digest())
    return {
        f"{prefix}-ACCESS-KEY": sim.api_key,
        f"{prefix}-ACCESS-SIGN": sign.decode(),
        f"{prefix}-ACCESS-TIMESTAMP": stamp,
    }


async def provider_call(
    http: aiohttp.ClientSession, base_url: str, sim: ProviderSim, method: str, path: str
) -> Any:
    """A signed request to a provider URL from ``SandboxURLs``; returns ``data``."""
    url = yarl.URL(base_url + path, encoded=True)
    prefix = "CF" if sim.api_key == CATFEE_API_KEY else "MF"
    headers = signed_headers(sim, prefix, method, url.raw_path_qs)
    async with http.request(method, url, headers=headers) as response:
        payload = msgspec.json.decode(await response.read())
    assert payload["code"] == 0, payload
    return payload["data"]


async def trongrid_call(
    http: aiohttp.ClientSession, urls: SandboxURLs, path: str, **body: Any
) -> Any:
    async with http.post(f"{urls.trongrid}{path}", json={**body, "visible": True}) as response:
        assert response.status == 200
        return await response.json()


async def test_serve_mounts_every_service_on_one_port_and_closes() -> None:
    sandbox = Sandbox(seed=1, speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        port = yarl.URL(urls.base).port or 0
        assert urls.base == f"http://127.0.0.1:{port}"
        assert (urls.catfee, urls.mefree, urls.trongrid, urls.admin) == (
            f"{urls.base}/catfee",
            f"{urls.base}/mefree",
            f"{urls.base}/trongrid",
            f"{urls.base}/_sandbox",
        )
        account = await provider_call(http, urls.catfee, sandbox.catfee, "GET", "/v1/account")
        assert account["balance"] == sandbox.catfee.balance_sun
        config = await provider_call(http, urls.mefree, sandbox.mefree, "GET", "/api/config")
        assert config["account_balance"] == sandbox.mefree.balance_sun
        block = await trongrid_call(http, urls, "/wallet/getnowblock")
        assert block["block_header"]["raw_data"]["number"] == sandbox.chain.head()
        async with http.get(f"{urls.admin}/state") as response:
            assert (await response.json())["head"] == sandbox.chain.head()
        assert sandbox.trongrid.count() == 1
        assert sandbox.catfee.control.count() == sandbox.mefree.control.count() == 1
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


async def test_credentials_are_the_exported_fake_ones() -> None:
    sandbox = Sandbox(speed=0)
    assert (sandbox.catfee.api_key, sandbox.catfee.api_secret) == (
        CATFEE_API_KEY,
        CATFEE_API_SECRET,
    )
    assert (sandbox.mefree.api_key, sandbox.mefree.api_secret) == (
        MEFREE_API_KEY,
        MEFREE_API_SECRET,
    )
    assert all("sandbox" in value for value in (CATFEE_API_KEY, MEFREE_API_SECRET))


async def test_many_servers_side_by_side_and_one_sandbox_served_twice() -> None:
    first, second = Sandbox(seed=1, speed=0), Sandbox(seed=2, speed=0)
    async with first.serve() as a, second.serve() as b, aiohttp.ClientSession() as http:
        assert a.base != b.base
        target = first.new_target()
        path = f"/v1/order?quantity=65000&receiver={target}&duration=1h&client_order_id=x"
        await provider_call(http, a.catfee, first.catfee, "POST", path)
        assert first.catfee.charges("x") == 1 and second.catfee.charges("x") == 0
    async with first.serve() as again, aiohttp.ClientSession() as http:
        replay = await provider_call(http, again.catfee, first.catfee, "POST", path)
        assert replay["id"] in first.catfee.orders
        assert first.catfee.charges("x") == 1


async def test_serve_on_a_taken_port_fails_cleanly() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            async with Sandbox(speed=0).serve(port=port):
                pytest.fail("served on a taken port")


async def test_a_long_running_server_stops_when_cancelled() -> None:
    # The CLI serves until Ctrl-C: cancellation must close the port.
    sandbox = Sandbox(speed=0)

    async def run_forever(*, task_status: TaskStatus[SandboxURLs]) -> None:
        async with sandbox.serve() as urls:
            task_status.started(urls)
            await anyio.sleep_forever()

    async with anyio.create_task_group() as group:
        urls: SandboxURLs = await group.start(run_forever)
        async with aiohttp.ClientSession() as http, http.get(f"{urls.admin}/state") as reply:
            assert reply.status == 200
        group.cancel_scope.cancel()
    port = yarl.URL(urls.base).port
    assert port
    with pytest.raises(OSError):
        await anyio.connect_tcp("127.0.0.1", port)


async def test_new_target_is_activated_without_energy() -> None:
    sandbox = Sandbox(speed=0)
    target = sandbox.new_target()
    assert sandbox.chain.is_activated(target)
    assert sandbox.chain.energy_limit(target) == 0
    assert target != sandbox.new_target()


async def test_order_delivers_and_trongrid_proves_it() -> None:
    sandbox = Sandbox(seed=5, speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        target = sandbox.new_target()
        path = f"/api/order?quantity=65000&target_address={target}&period=1&client_order_id=e2e"
        order = await provider_call(http, urls.mefree, sandbox.mefree, "POST", path)
        sandbox.advance_blocks(2)
        order = await provider_call(
            http, urls.mefree, sandbox.mefree, "GET", f"/api/order/{order['pay_hash']}"
        )
        assert order["confirm_status"] == "DELEGATION_CONFIRMED"
        resource = await trongrid_call(http, urls, "/wallet/getaccountresource", address=target)
        assert resource["EnergyLimit"] >= 65_000
        tx = await trongrid_call(
            http, urls, "/wallet/gettransactionbyid", value=order["delegate_hash"]
        )
        contract = tx["raw_data"]["contract"][0]
        assert contract["type"] == "DelegateResourceContract"
        assert contract["parameter"]["value"]["receiver_address"] == target
        assert contract["parameter"]["value"]["owner_address"] == sandbox.mefree.pool_address


async def test_every_request_lets_providers_catch_up_even_trongrid_ones() -> None:
    sandbox = Sandbox(seed=6, speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        target = sandbox.new_target()
        path = f"/v1/order?quantity=65000&receiver={target}&duration=1h"
        order = await provider_call(http, urls.catfee, sandbox.catfee, "POST", path)
        sandbox.chain.advance_blocks(1300)  # behind the sandbox's back: nobody has acted yet
        assert sandbox.catfee.orders[order["id"]].reclaim_hash is None
        await trongrid_call(http, urls, "/wallet/getaccountresource", address=target)
        reclaim = sandbox.catfee.orders[order["id"]].reclaim_hash
        assert reclaim is not None  # the TronGrid request made the provider act first
        sandbox.chain.advance_blocks(1)
        resource = await trongrid_call(http, urls, "/wallet/getaccountresource", address=target)
        assert "EnergyLimit" not in resource


async def test_advance_blocks_lets_providers_act_on_the_block_they_are_due() -> None:
    sandbox = Sandbox(seed=7, speed=0)
    created = sandbox.chain.head()
    target = sandbox.new_target()
    catfee = sandbox.catfee.place(
        client_order_id=None,
        receiver=target,
        quantity=65_000,
        term=60,
        seconds=3600,
        price_sun=1,
        category="hour",
    )
    mefree = sandbox.mefree.place(
        client_order_id=None,
        receiver=target,
        quantity=65_000,
        term=0,
        seconds=600,
        price_sun=1,
        category="flash",
    )
    assert isinstance(catfee, SimOrder) and isinstance(mefree, SimOrder)
    sandbox.advance_blocks(1300)
    assert sandbox.chain.head() == created + 1300
    for order, expiry in ((mefree, 200), (catfee, 1200)):
        assert order.reclaim_hash is not None
        assert sandbox.chain.tx_block(order.reclaim_hash) == created + expiry + 1
    assert sandbox.chain.energy_limit(target) == 0
    with pytest.raises(ValueError):
        sandbox.advance_blocks(-1)


async def test_speed_and_drift_reach_the_chain() -> None:
    fast = Sandbox(speed=1000)
    head = fast.chain.head()
    await anyio.sleep(0.05)
    assert fast.chain.head() >= head + 10
    drifting = Sandbox(speed=0, drift_per_block=0.001)
    weight = drifting.chain.total_energy_weight
    drifting.advance_blocks(50)
    assert drifting.chain.total_energy_weight != weight


async def test_describe_tells_a_person_everything_needed() -> None:
    sandbox = Sandbox(speed=0)
    async with sandbox.serve() as urls:
        text = sandbox.describe(urls)
    for needed in (
        urls.catfee,
        urls.mefree,
        urls.trongrid,
        urls.admin,
        CATFEE_API_KEY,
        CATFEE_API_SECRET,
        MEFREE_API_KEY,
        MEFREE_API_SECRET,
        "CATFEE_API_KEY=",
        Delivery.CLAIM_WITHOUT_DELEGATING,
        Fault.RATE_LIMIT,
        Fault.THROTTLE_429,
        "/faults",
        "/delivery",
        "/advance",
        "/targets",
    ):
        assert needed in text


@pytest.mark.slow  # > 2 s: outside the quick developer loop
def test_ten_thousand_orders_stay_small_and_quick() -> None:
    sandbox = Sandbox(speed=0)
    targets = [sandbox.new_target() for _ in range(10_000)]

    def place(index: int) -> None:
        sandbox.catfee.place(
            client_order_id=f"bulk-{index}",
            receiver=targets[index],
            quantity=65_000,
            term=60,
            seconds=3600,
            price_sun=1_105_000,
            category="hour",
        )

    gc.collect()
    tracemalloc.start()  # slows everything down: measure a sample only
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(1_000):
            place(index)
        gc.collect()
        per_order = (tracemalloc.get_traced_memory()[0] - before) / 1_000
    finally:
        tracemalloc.stop()
    assert per_order < 3_000  # bytes, provider and chain together (about 1.4 KB measured)
    started = time.perf_counter()
    for index in range(1_000, 10_000):
        place(index)
    sandbox.advance_blocks(1300)  # and 10,000 reclaims
    assert time.perf_counter() - started < 10  # about 2 s measured
    assert len(sandbox.catfee.orders) == 10_000
    assert sandbox.chain.energy_limit(targets[-1]) == 0

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from tronpy.keys import Signature

from energy_async.sandbox.base58 import decode_address
from energy_async.sandbox.chain import SOLID_DEPTH, Chain
from energy_async.sandbox.faults import Fault, ServiceControl
from energy_async.sandbox.trongrid import build_trongrid_app
from tests.loopback import serving

pytestmark = pytest.mark.anyio

TRX = 1_000_000
PREFIX = "/trongrid"


@dataclass
class Grid:
    chain: Chain
    control: ServiceControl
    session: aiohttp.ClientSession
    base: str

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        data = body if isinstance(body, (bytes, str)) else msgspec.json.encode(body or {})
        async with self.session.post(self.base + path, data=data, **kwargs) as response:
            assert response.status == 200, await response.text()
            return msgspec.json.decode(await response.read())

    async def get(self, path: str, **params: str) -> Any:
        async with self.session.get(self.base + path, params=params) as response:
            assert response.status == 200
            return msgspec.json.decode(await response.read())

    async def raw(self, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
        data = msgspec.json.encode(body or {})
        async with self.session.post(self.base + path, data=data) as response:
            return response.status, dict(response.headers), await response.read()


@pytest.fixture
async def grid() -> AsyncIterator[Grid]:
    chain = Chain(seed=11, speed=0)
    control = ServiceControl()
    root = web.Application()
    root.add_subapp(PREFIX, build_trongrid_app(chain, control))
    async with serving(root) as url, aiohttp.ClientSession() as session:
        yield Grid(chain, control, session, f"{url}{PREFIX}")


def hex_of(address: str) -> str:
    raw = decode_address(address)
    assert raw is not None
    return raw.hex()


def signer(signature_hex: str, txid: str) -> str:
    """The address whose key made ``signature_hex`` over ``txid``, as a wallet would check it."""
    signature = Signature(bytes.fromhex(signature_hex))
    address: str = signature.recover_public_key_from_msg_hash(
        bytes.fromhex(txid)
    ).to_base58check_address()
    return address


def bad_checksum(address: str) -> str:
    return address[:-1] + ("2" if address[-1] != "2" else "3")


def delegated(grid: Grid, sun: int = 6_851 * TRX, **kwargs: Any) -> tuple[str, str, str]:
    provider = grid.chain.new_account(energy_stake_sun=100_000 * TRX)
    target = grid.chain.new_account()
    txid = grid.chain.delegate(provider, target, sun, **kwargs)
    return provider, target, txid


# -- getaccountresource -------------------------------------------------------------------------


async def test_account_resource_shape_and_zero_omission(grid: Grid) -> None:
    provider, target, _ = delegated(grid)
    grid.chain.set_total_energy_weight(18_971_780_957)  # after the provider's stake counted
    before = await grid.post("/wallet/getaccountresource", {"address": target, "visible": True})
    assert "EnergyLimit" not in before and "EnergyUsed" not in before
    assert before["TotalEnergyLimit"] == 180_000_000_000
    assert before["TotalEnergyWeight"] == 18_971_780_957
    assert before["freeNetLimit"] == 600
    grid.chain.advance_blocks(1)
    after = await grid.post("/wallet/getaccountresource", {"address": target, "visible": True})
    assert after["EnergyLimit"] == 65_000
    assert list(after) == [
        "freeNetLimit",
        "TotalNetLimit",
        "TotalNetWeight",
        "EnergyLimit",
        "TotalEnergyLimit",
        "TotalEnergyWeight",
    ]
    # visible false: 41-hex in; "true" as a string counts too (Boolean.parseBoolean).
    by_hex = await grid.post("/wallet/getaccountresource", {"address": hex_of(target)})
    assert by_hex["EnergyLimit"] == 65_000
    as_text = await grid.post("/wallet/getaccountresource", {"address": target, "visible": "true"})
    assert as_text["EnergyLimit"] == 65_000
    by_get = await grid.get("/wallet/getaccountresource", address=target, visible="true")
    assert by_get["EnergyLimit"] == 65_000
    own = await grid.post("/wallet/getaccountresource", {"address": provider, "visible": True})
    assert own["EnergyLimit"] == int((100_000 - 6_851) * 180e9 / 18_971_780_957)


async def test_account_resource_empty_answers(grid: Grid) -> None:
    stranger = grid.chain.new_address()
    for body in (
        {"address": stranger, "visible": True},  # not activated
        {},  # no address
        {"address": bad_checksum(grid.chain.new_account()), "visible": True},
        {"address": "41" + "00" * 20},  # hex of no account
        {"address": "abcd"},  # hex, not an address
    ):
        assert await grid.post("/wallet/getaccountresource", body) == {}
    assert await grid.post("/wallet/getaccountresource", b"") == {}


async def test_account_resource_errors(grid: Grid) -> None:
    error = await grid.post("/wallet/getaccountresource", {"address": "T0OIl", "visible": True})
    assert error["Error"].startswith("class java.lang.IllegalArgumentException : ")
    error = await grid.post("/wallet/getaccountresource", {"address": "zz41"})
    assert error["Error"].startswith(
        "class org.bouncycastle.util.encoders.DecoderException : exception decoding Hex string"
    )
    error = await grid.post("/wallet/getaccountresource", b"{not json")
    assert error["Error"].startswith("class org.tron.json.JSONException : ")
    error = await grid.post("/wallet/getaccountresource", b"[1, 2]")
    assert error["Error"].startswith("class org.tron.json.JSONException : ")


async def test_no_solidity_getaccountresource(grid: Grid) -> None:
    status, headers, body = await grid.raw("/walletsolidity/getaccountresource", {"address": "x"})
    assert status == 404
    assert headers["Content-Type"].startswith("application/json")
    assert msgspec.json.decode(body) == {"Error": "this API is unavailable due to config"}
    assert grid.control.count("not_found") == 1
    status, _, body = await grid.raw("/wallet/nosuchservlet")
    assert status == 404
    assert msgspec.json.decode(body) == {"Error": "this API is unavailable due to config"}


async def test_api_key_header_is_accepted_and_requests_are_counted(grid: Grid) -> None:
    target = grid.chain.new_account()
    headers = {"TRON-PRO-API-KEY": "sandbox-key"}
    for _ in range(3):
        await grid.post("/wallet/getaccountresource", {"address": target}, headers=headers)
    await grid.get("/walletsolidity/getnowblock")
    assert grid.control.count("getaccountresource") == 3
    assert grid.control.count("solidity.getnowblock") == 1
    first = grid.control.requests[0]
    assert (first.method, first.raw_path, first.status) == (
        "POST",
        f"{PREFIX}/wallet/getaccountresource",
        200,
    )


# -- getaccount ---------------------------------------------------------------------------------


async def test_get_account_shape(grid: Grid) -> None:
    provider, target, _ = delegated(grid, 40 * TRX)
    grid.chain.advance_blocks(1)
    receiver = await grid.post("/wallet/getaccount", {"address": target, "visible": True})
    assert receiver["address"] == target
    assert "balance" not in receiver and "frozenV2" not in receiver
    assert receiver["account_resource"] == {
        "acquired_delegated_frozenV2_balance_for_energy": 40 * TRX
    }
    owner = await grid.post("/wallet/getaccount", {"address": hex_of(provider)})
    assert owner["address"] == hex_of(provider)
    assert owner["frozenV2"] == [
        {},
        {"type": "ENERGY", "amount": (100_000 - 40) * TRX},
        {"type": "TRON_POWER"},
    ]
    assert owner["account_resource"] == {"delegated_frozenV2_balance_for_energy": 40 * TRX}
    assert isinstance(owner["create_time"], int)
    rich = grid.chain.new_account(balance_sun=5 * TRX)
    assert (await grid.get("/wallet/getaccount", address=rich, visible="true"))[
        "balance"
    ] == 5 * TRX
    stranger = {"address": grid.chain.new_address(), "visible": True}
    assert await grid.post("/wallet/getaccount", stranger) == {}


async def test_get_account_errors_differ_from_getaccountresource(grid: Grid) -> None:
    target = grid.chain.new_account()
    error = await grid.post(
        "/wallet/getaccount", {"address": bad_checksum(target), "visible": True}
    )
    assert error == {"Error": "class java.lang.NullPointerException : null"}
    error = await grid.post("/wallet/getaccount", {"address": "T0O", "visible": True})
    assert "JsonFormat$ParseException" in error["Error"] and "INVALID base58" in error["Error"]
    error = await grid.post("/wallet/getaccount", {"address": "xyz"})
    assert "JsonFormat$ParseException" in error["Error"] and "INVALID hex" in error["Error"]


async def test_solidity_getaccount_lags_by_18_blocks(grid: Grid) -> None:
    _, target, _ = delegated(grid, 40 * TRX)
    grid.chain.advance_blocks(1)
    body = {"address": target, "visible": True}
    assert "account_resource" not in await grid.post("/walletsolidity/getaccount", body)
    assert "account_resource" in await grid.post("/wallet/getaccount", body)
    grid.chain.advance_blocks(SOLID_DEPTH)
    assert "account_resource" in await grid.post("/walletsolidity/getaccount", body)


# -- transactions -------------------------------------------------------------------------------


async def test_transaction_by_id_shape(grid: Grid) -> None:
    provider, target, txid = delegated(grid, 6_851 * TRX)
    grid.chain.advance_blocks(1)
    tx = await grid.post("/wallet/gettransactionbyid", {"value": txid, "visible": True})
    assert list(tx) == ["ret", "signature", "txID", "raw_data", "raw_data_hex"]
    assert tx["ret"] == [{"contractRet": "SUCCESS"}]
    assert tx["txID"] == txid
    assert len(tx["signature"]) == 1 and len(tx["signature"][0]) == 130
    assert hashlib.sha256(bytes.fromhex(tx["raw_data_hex"])).hexdigest() == txid
    assert signer(tx["signature"][0], txid) == provider
    (contract,) = tx["raw_data"]["contract"]
    assert contract["type"] == "DelegateResourceContract"
    assert (
        contract["parameter"]["type_url"] == "type.googleapis.com/protocol.DelegateResourceContract"
    )
    assert contract["parameter"]["value"] == {
        "owner_address": provider,
        "resource": "ENERGY",
        "balance": 6_851 * TRX,
        "receiver_address": target,
    }
    raw = tx["raw_data"]
    assert len(raw["ref_block_bytes"]) == 4 and len(raw["ref_block_hash"]) == 16
    assert raw["expiration"] - raw["timestamp"] == 60_000
    hex_view = await grid.post("/wallet/gettransactionbyid", {"value": txid})
    assert hex_view["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"] == hex_of(
        provider
    )
    by_get = await grid.get("/wallet/gettransactionbyid", value=txid.upper())
    assert by_get["txID"] == txid


async def test_bandwidth_and_locked_delegation_json(grid: Grid) -> None:
    provider = grid.chain.new_account(bandwidth_stake_sun=100 * TRX, energy_stake_sun=100 * TRX)
    target = grid.chain.new_account()
    bandwidth = grid.chain.delegate(provider, target, 10 * TRX, resource="BANDWIDTH", lock=True)
    locked = grid.chain.delegate(provider, target, 10 * TRX, lock=True, lock_period=1200)
    reclaim_base = grid.chain.delegate(provider, target, 5 * TRX)
    grid.chain.advance_blocks(1)
    value = await _contract_value(grid, bandwidth)
    assert "resource" not in value and value["lock"] is True and "lock_period" not in value
    value = await _contract_value(grid, locked)
    assert value["resource"] == "ENERGY" and value["lock_period"] == 1200
    assert "lock" not in await _contract_value(grid, reclaim_base)
    reclaim = grid.chain.undelegate(provider, target, 5 * TRX)
    grid.chain.advance_blocks(1)
    tx = await grid.post("/wallet/gettransactionbyid", {"value": reclaim, "visible": True})
    contract = tx["raw_data"]["contract"][0]
    assert contract["type"] == "UnDelegateResourceContract"
    assert contract["parameter"]["type_url"].endswith("protocol.UnDelegateResourceContract")
    assert contract["parameter"]["value"]["balance"] == 5 * TRX


async def _contract_value(grid: Grid, txid: str) -> dict[str, Any]:
    tx = await grid.post("/wallet/gettransactionbyid", {"value": txid, "visible": True})
    value: dict[str, Any] = tx["raw_data"]["contract"][0]["parameter"]["value"]
    return value


async def test_transaction_life_cycle_across_wallet_and_solidity(grid: Grid) -> None:
    _, _, txid = delegated(grid)
    body = {"value": txid, "visible": True}
    # Pending: only the pending pool shows it (Wallet.getTransactionById reads the store).
    assert await grid.post("/wallet/gettransactionbyid", body) == {}
    assert await grid.post("/wallet/gettransactioninfobyid", body) == {}
    assert await grid.post("/walletsolidity/gettransactionbyid", body) == {}
    pending = await grid.post("/wallet/gettransactionfrompending", body)
    assert list(pending) == ["signature", "txID", "raw_data", "raw_data_hex"]
    assert pending["txID"] == txid
    assert await grid.get("/wallet/gettransactionlistfrompending") == {"txId": [txid]}
    grid.chain.advance_blocks(1)
    assert await grid.post("/wallet/gettransactionfrompending", body) == {}
    assert await grid.post("/wallet/gettransactionlistfrompending") == {}
    included = await grid.post("/wallet/gettransactionbyid", body)
    assert included["raw_data"] == pending["raw_data"] and included["txID"] == txid
    info = await grid.post("/wallet/gettransactioninfobyid", body)
    block = grid.chain.tx_block(txid)
    assert block is not None
    assert info == {
        "id": txid,
        "blockNumber": block,
        "blockTimeStamp": grid.chain.block_timestamp_ms(block),
        "contractResult": [""],
        "receipt": {"net_usage": info["receipt"]["net_usage"]},
    }
    assert 200 < info["receipt"]["net_usage"] < 400
    assert await grid.post("/walletsolidity/gettransactioninfobyid", body) == {}
    grid.chain.advance_blocks(SOLID_DEPTH)
    assert await grid.post("/walletsolidity/gettransactioninfobyid", body) == info
    assert (await grid.post("/walletsolidity/gettransactionbyid", body))["txID"] == txid
    node = await grid.get("/wallet/getnodeinfo")
    assert node["solidityBlock"].startswith(f"Num:{block},ID:")


async def test_transaction_not_found_and_bad_ids(grid: Grid) -> None:
    provider, target, _ = delegated(grid)
    lost = grid.chain.delegate(provider, target, 5 * TRX, lands=False)
    assert (await grid.post("/wallet/gettransactionfrompending", {"value": lost}))["txID"] == lost
    grid.chain.clock.advance(61)
    paths = (
        "/wallet/gettransactionbyid",
        "/wallet/gettransactioninfobyid",
        "/wallet/gettransactionfrompending",
    )
    for path in paths:
        assert await grid.post(path, {"value": "ab" * 32}) == {}
        assert await grid.post(path, {"value": lost}) == {}
        assert await grid.post(path, {}) == {}
        error = await grid.post(path, {"value": "not-hex"})
        assert error["Error"].startswith("class org.tron.core.services.http.JsonFormat$Parse")
        error = await grid.get(path, value="not-hex")
        assert error["Error"].startswith("class org.bouncycastle.util.encoders.DecoderException")


# -- delegated resources ------------------------------------------------------------------------


async def test_delegated_resource_v2_records(grid: Grid) -> None:
    provider, target, _ = delegated(grid, 30 * TRX)
    body = {"fromAddress": provider, "toAddress": target, "visible": True}
    assert await grid.post("/wallet/getdelegatedresourcev2", body) == {}  # still pending
    grid.chain.delegate(provider, target, 20 * TRX, lock=True, lock_period=100)
    grid.chain.advance_blocks(1)
    answer = await grid.post("/wallet/getdelegatedresourcev2", body)
    unlocked, locked = answer["delegatedResource"]
    assert unlocked == {"from": provider, "to": target, "frozen_balance_for_energy": 30 * TRX}
    assert locked["frozen_balance_for_energy"] == 20 * TRX
    assert locked["expire_time_for_energy"] > grid.chain.block_timestamp_ms(grid.chain.head())
    assert list(locked) == ["from", "to", "frozen_balance_for_energy", "expire_time_for_energy"]
    hex_body = {"fromAddress": hex_of(provider), "toAddress": hex_of(target)}
    hex_answer = await grid.post("/wallet/getdelegatedresourcev2", hex_body)
    assert hex_answer["delegatedResource"][0]["from"] == hex_of(provider)
    assert await grid.post("/walletsolidity/getdelegatedresourcev2", body) == {}
    grid.chain.advance_blocks(SOLID_DEPTH)
    assert await grid.post("/walletsolidity/getdelegatedresourcev2", body) == answer
    reverse = {"fromAddress": target, "toAddress": provider, "visible": True}
    assert await grid.post("/wallet/getdelegatedresourcev2", reverse) == {}


async def test_delegated_resource_v2_address_errors(grid: Grid) -> None:
    provider, target, _ = delegated(grid, 30 * TRX)
    grid.chain.advance_blocks(1)
    broken = bad_checksum(target)
    assert (
        await grid.get(
            "/wallet/getdelegatedresourcev2", fromAddress=provider, toAddress=broken, visible="true"
        )
        == {}
    )
    body = {"fromAddress": provider, "toAddress": broken, "visible": True}
    assert await grid.post("/wallet/getdelegatedresourcev2", body) == {
        "Error": "class java.lang.NullPointerException : null"
    }
    body["toAddress"] = "T0000"
    error = await grid.post("/wallet/getdelegatedresourcev2", body)
    assert "INVALID base58 String" in error["Error"]


async def test_delegated_resource_account_index_v2(grid: Grid) -> None:
    provider, target, _ = delegated(grid, 30 * TRX)
    grid.chain.advance_blocks(1)
    owner_index = await grid.post(
        "/wallet/getdelegatedresourceaccountindexv2", {"value": provider, "visible": True}
    )
    assert owner_index == {"account": provider, "toAccounts": [target]}
    target_index = await grid.post(
        "/wallet/getdelegatedresourceaccountindexv2", {"value": hex_of(target)}
    )
    assert target_index == {"account": hex_of(target), "fromAccounts": [hex_of(provider)]}


# -- blocks -------------------------------------------------------------------------------------


async def test_now_block_and_node_info(grid: Grid) -> None:
    head = grid.chain.head()
    block = await grid.get("/wallet/getnowblock", visible="true")
    raw = block["block_header"]["raw_data"]
    assert raw["number"] == head
    assert raw["timestamp"] == grid.chain.block_timestamp_ms(head)
    assert block["blockID"] == grid.chain.block_id(head)
    assert block["blockID"][:16] == head.to_bytes(8, "big").hex()
    assert raw["parentHash"] == grid.chain.block_id(head - 1)
    assert raw["witness_address"].startswith("T")
    # POST reads visible from the query only (doPost calls doGet): a body's is ignored.
    posted = await grid.post("/wallet/getnowblock", {"visible": True})
    assert posted["block_header"]["raw_data"]["witness_address"] == hex_of(raw["witness_address"])
    solid = await grid.get("/walletsolidity/getnowblock")
    assert solid["block_header"]["raw_data"]["number"] == head - SOLID_DEPTH
    assert solid["block_header"]["raw_data"]["witness_address"].startswith("41")
    node = await grid.post("/wallet/getnodeinfo")
    assert node["block"] == f"Num:{head},ID:{grid.chain.block_id(head)}"
    assert node["solidityBlock"] == f"Num:{head - SOLID_DEPTH},ID:{grid.chain.block_id(head - 18)}"


# -- faults -------------------------------------------------------------------------------------


THROTTLE_MESSAGE = (
    "The key exceeds the frequency limit(15), and the query server is suspended for 30s"
)


@pytest.mark.parametrize(
    ("fault", "status", "retry_after"),
    [
        (Fault.THROTTLE_403, 403, None),
        (Fault.THROTTLE_429, 429, "1"),
        (Fault.THROTTLE_503, 503, "7"),
    ],
)
async def test_throttling(grid: Grid, fault: Fault, status: int, retry_after: str | None) -> None:
    params = {"retry_after": 7} if status == 503 else {}
    grid.control.faults.inject(fault, endpoint="getaccountresource", **params)
    code, headers, body = await grid.raw("/wallet/getaccountresource", {"address": "x"})
    assert code == status
    assert headers.get("Retry-After") == retry_after
    assert msgspec.json.decode(body) == {
        "Success": False,
        "Error": THROTTLE_MESSAGE,
        "StatusCode": status,
    }
    assert grid.control.requests[-1].status == status
    code, _, _ = await grid.raw("/wallet/getaccountresource", {"address": "x"})
    assert code == 200  # only the next request was throttled


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault.NODE_BUSY, "class java.lang.IllegalAccessException : lack of computing resources"),
        (Fault.NODE_ERROR, "class java.lang.NullPointerException : null"),
    ],
)
async def test_node_errors_are_http_200(grid: Grid, fault: Fault, error: str) -> None:
    grid.control.faults.inject(fault)
    assert await grid.post("/wallet/getnowblock") == {"Error": error}


async def test_stale_node(grid: Grid) -> None:
    provider, target, txid = delegated(grid, 30 * TRX)
    grid.chain.advance_blocks(1)
    pair = {"fromAddress": provider, "toAddress": target, "visible": True}
    for path, body in [
        ("/wallet/gettransactionbyid", {"value": txid}),
        ("/wallet/gettransactioninfobyid", {"value": txid}),
        ("/wallet/getdelegatedresourcev2", pair),
    ]:
        grid.control.faults.inject(Fault.STALE)
        assert await grid.post(path, body) == {}
        assert await grid.post(path, body) != {}
    # Account reads from a lagging node show the state before the delegation.
    grid.control.faults.inject(Fault.STALE)
    lagging = await grid.post("/wallet/getaccountresource", {"address": target, "visible": True})
    assert "EnergyLimit" not in lagging
    current = await grid.post("/wallet/getaccountresource", {"address": target, "visible": True})
    assert current["EnergyLimit"] > 0
    # A lagging node's newest block is the solid one; the pending pool looks empty on it.
    head = grid.chain.head()
    grid.control.faults.inject(Fault.STALE)
    assert await grid.post("/wallet/getblockbynum", {"num": head}) == {}
    grid.control.faults.inject(Fault.STALE)
    stale_now = await grid.post("/wallet/getnowblock")
    assert stale_now["block_header"]["raw_data"]["number"] == grid.chain.solid_head()
    pending = grid.chain.delegate(provider, target, 5 * TRX)
    grid.control.faults.inject(Fault.STALE)
    assert await grid.post("/wallet/gettransactionfrompending", {"value": pending}) == {}
    assert (await grid.post("/wallet/gettransactionfrompending", {"value": pending}))["txID"]


async def test_account_net_address_parsing(grid: Grid) -> None:
    """getaccountnet parses by hand on GET (bad checksum: {}) and through JsonFormat on POST."""
    provider = grid.chain.new_account(bandwidth_stake_sun=100 * TRX)
    net = await grid.post("/wallet/getaccountnet", {"address": provider, "visible": True})
    assert list(net) == ["freeNetLimit", "NetLimit", "TotalNetLimit", "TotalNetWeight"]
    assert net["NetLimit"] == grid.chain.net_limit(provider) > 0
    bad = bad_checksum(provider)
    assert await grid.get("/wallet/getaccountnet", address=bad, visible="true") == {}
    error = await grid.post("/wallet/getaccountnet", {"address": bad, "visible": True})
    assert error == {"Error": "class java.lang.NullPointerException : null"}
    error = await grid.post("/wallet/getaccountnet", {"address": "zz"})
    assert error["Error"].startswith("class org.tron.core.services.http.JsonFormat$ParseException")
    stranger = grid.chain.new_address()
    assert await grid.post("/wallet/getaccountnet", {"address": stranger, "visible": True}) == {}


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        (Fault.NON_JSON, 200, "text/plain"),
        (Fault.HTML_BODY, 200, "text/html"),
        (Fault.SERVER_ERROR, 500, "text/plain"),
        (Fault.BAD_GATEWAY, 502, "text/html"),
    ],
)
async def test_non_json_answers(grid: Grid, fault: Fault, status: int, content_type: str) -> None:
    grid.control.faults.inject(fault)
    code, headers, body = await grid.raw("/wallet/getnowblock")
    assert code == status
    assert headers["Content-Type"].startswith(content_type)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)
    if fault is Fault.NON_JSON:
        assert body == b"this API is closed because this node is a lite fullnode"


async def test_truncated_and_huge_bodies(grid: Grid) -> None:
    grid.control.faults.inject(Fault.TRUNCATED_JSON)
    _, _, body = await grid.raw("/wallet/getnowblock")
    whole = msgspec.json.encode(await grid.post("/wallet/getnowblock"))
    assert whole.startswith(body) and 0 < len(body) < len(whole)
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(body)
    grid.control.faults.inject(Fault.HUGE_BODY)
    _, _, body = await grid.raw("/wallet/getnowblock")
    assert len(body) == 5 * 1024 * 1024
    grid.control.faults.inject(Fault.HUGE_BODY, size=2_000_000)
    _, _, body = await grid.raw("/wallet/getnowblock")
    assert len(body) == 2_000_000


async def test_wrong_types(grid: Grid) -> None:
    target = grid.chain.new_account()
    grid.control.faults.inject(Fault.WRONG_TYPES)
    body = await grid.post("/wallet/getaccountresource", {"address": target, "visible": True})
    assert body["TotalEnergyLimit"] == "180000000000"


async def test_latency(grid: Grid) -> None:
    grid.control.faults.inject(Fault.LATENCY, delay=0.05)
    started = time.monotonic()
    block = await grid.post("/wallet/getnowblock")
    assert time.monotonic() - started >= 0.05
    assert "blockID" in block


async def test_lost_response_and_unreachable_drop_the_connection(grid: Grid) -> None:
    grid.control.faults.inject(Fault.LOST_RESPONSE, endpoint="getnowblock")
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await grid.post("/wallet/getnowblock")
    assert grid.control.requests[-1].status == 0
    grid.control.unreachable = True
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await grid.post("/wallet/getaccountresource", {})
    assert grid.control.count("getaccountresource") == 1
    grid.control.unreachable = False
    assert "blockID" in await grid.post("/wallet/getnowblock")


async def test_provider_only_faults_are_not_drawn(grid: Grid) -> None:
    grid.control.faults.inject(Fault.RATE_LIMIT)
    assert "blockID" in await grid.post("/wallet/getnowblock")

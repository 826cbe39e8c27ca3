"""The sandbox's TronGrid against java-tron's published behaviour, endpoint by endpoint.

Two independent witnesses: tronpy, a real client no one here wrote, drives every endpoint it
uses (over loopback, in a worker thread: its client is synchronous); and the example bodies of
tronprotocol/documentation-en, quoted in ``tests/fixtures/tron/docs/*.json`` with their source path
and commit, are compared key by key with the sandbox's answer to the same request: key names
and casing, JSON types, the order keys are printed in, and hex lengths. Every difference the
sandbox is allowed is listed below with its reason; any other one fails.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import anyio
import msgspec
import pytest
from tronpy import Tron
from tronpy.exceptions import AddressNotFound, BlockNotFound, TransactionNotFound
from tronpy.keys import Signature
from tronpy.providers import HTTPProvider

from energy_async.sandbox import Sandbox
from energy_async.sandbox.base58 import decode_address
from energy_async.sandbox.chain import SOLID_DEPTH

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent.parent / "fixtures" / "tron" / "docs"
TRX = 1_000_000
T = TypeVar("T")

# What the sandbox answers differently from the documented example, and why. Paths use "[]"
# for every element of a list. Anything not listed here is a conformance failure.
NOT_SIMULATED = "not simulated by the sandbox"
ALLOWED: dict[str, dict[str, str]] = {
    "getblockbylatestnum": {
        "missing $.block[].transactions": "the older block holds none: empty lists are not printed",
    },
    "gettransactionbyid": {
        # The docs' example is a TriggerSmartContract; the sandbox's are DelegateResourceContract
        # (their value is checked against the delegateresource outline separately).
        "missing $.raw_data.contract[].parameter.value.data": "another contract type",
        "missing $.raw_data.contract[].parameter.value.contract_address": "another contract type",
        "extra $.raw_data.contract[].parameter.value.resource": "another contract type",
        "extra $.raw_data.contract[].parameter.value.balance": "another contract type",
        "extra $.raw_data.contract[].parameter.value.receiver_address": "another contract type",
        "missing $.raw_data.fee_limit": "only contract calls carry a fee limit",
    },
    "gettransactioninfobyid": {
        "missing $.fee": "a delegation paid with bandwidth burns no TRX (zero is not printed)",
        "missing $.contract_address": "only contract calls have one",
        "missing $.log": "only contract calls log events",
        "missing $.internal_transactions": "only contract calls make internal calls",
        "missing $.receipt.energy_fee": "a delegation burns no energy",
        "missing $.receipt.energy_usage_total": "a delegation uses no energy",
        "missing $.receipt.net_fee": "paid with bandwidth, not TRX",
        "missing $.receipt.result": "only VM transactions set receipt.result",
        "extra $.receipt.net_usage": "the bandwidth a delegation used",
    },
    "getaccount": {
        "missing $.latest_opration_time": NOT_SIMULATED + " (operation times)",
        "missing $.free_net_usage": NOT_SIMULATED + " (bandwidth windows)",
        "missing $.latest_consume_free_time": NOT_SIMULATED + " (bandwidth windows)",
        "missing $.net_window_size": NOT_SIMULATED + " (bandwidth windows)",
        "missing $.net_window_optimized": NOT_SIMULATED + " (bandwidth windows)",
        "missing $.account_resource.latest_consume_time_for_energy": NOT_SIMULATED,
        "missing $.account_resource.energy_window_size": NOT_SIMULATED + " (energy windows)",
        "missing $.account_resource.energy_window_optimized": NOT_SIMULATED,
        "missing $.assetV2": NOT_SIMULATED + " (TRC-10)",
        "missing $.free_asset_net_usageV2": NOT_SIMULATED + " (TRC-10)",
        "missing $.asset_optimized": NOT_SIMULATED + " (TRC-10)",
        # The compared account is a delegator: it has stake, a balance and delegates energy.
        "extra $.account_resource.delegated_frozenV2_balance_for_energy": "it delegates energy",
        "extra $.frozenV2[].amount": "it has energy staked (the docs' account has none)",
    },
    "getaccountresource": {
        "missing $.freeNetUsed": "no bandwidth used yet (zero is not printed)",
        "missing $.assetNetUsed": NOT_SIMULATED + " (TRC-10)",
        "missing $.assetNetLimit": NOT_SIMULATED + " (TRC-10)",
        "extra $.EnergyLimit": "the compared account received a delegation",
    },
    "getaccountnet": {
        "missing $.freeNetUsed": "no bandwidth used yet (zero is not printed)",
        "missing $.assetNetUsed": NOT_SIMULATED + " (TRC-10)",
        "missing $.assetNetLimit": NOT_SIMULATED + " (TRC-10)",
    },
}


@dataclass
class Scene:
    """A served sandbox with a delegation in the head block and one still pending."""

    sandbox: Sandbox
    base: str
    http: aiohttp.ClientSession
    tron: Tron
    pool: str
    target: str
    locked_target: str
    idle: str
    txid: str
    locked_txid: str
    pending_txid: str

    async def post(self, path: str, body: dict[str, Any], *, status: int = 200) -> Any:
        async with self.http.post(self.base + path, data=msgspec.json.encode(body)) as response:
            assert response.status == status
            assert response.content_type == "application/json"
            return msgspec.json.decode(await response.read())

    async def get(self, path: str, **query: str) -> Any:
        async with self.http.get(self.base + path, params=query) as response:
            assert response.status == 200
            return msgspec.json.decode(await response.read())

    async def client(self, call: Callable[[Tron], T]) -> T:
        """Run one tronpy call in a worker thread while the sandbox serves on this loop."""
        return await anyio.to_thread.run_sync(call, self.tron)


@pytest.fixture
async def scene() -> AsyncIterator[Scene]:
    sandbox = Sandbox(seed=14, speed=0)
    chain = sandbox.chain
    pool = chain.new_account(balance_sun=50 * TRX, energy_stake_sun=100_000 * TRX)
    target, locked_target, idle = chain.new_account(), chain.new_account(), chain.new_account()
    txid = chain.delegate(pool, target, 6_851 * TRX)
    locked_txid = chain.delegate(pool, locked_target, 100 * TRX, lock=True, lock_period=1_200)
    chain.advance_blocks(1)  # both are in the head block now
    pending_txid = chain.delegate(pool, idle, 10 * TRX)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        provider = HTTPProvider(endpoint_uri=urls.trongrid + "/", api_key="sandbox", timeout=10)
        provider.sess.trust_env = False  # loopback only, whatever proxy the environment names
        yield Scene(
            sandbox,
            urls.trongrid,
            http,
            Tron(provider),
            pool,
            target,
            locked_target,
            idle,
            txid,
            locked_txid,
            pending_txid,
        )


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def hex_of(address: str) -> str:
    raw = decode_address(address)
    assert raw is not None
    return raw.hex()


def _is_hex(text: str) -> bool:
    return bool(text) and len(text) % 2 == 0 and all(c in "0123456789abcdef" for c in text)


def differences(doc: Any, ours: Any, path: str = "$") -> set[str]:
    """Where ``ours`` has another shape than the documented example ``doc``.

    Keys missing or extra, shared keys in another order, another JSON type, and a hex string
    of another length (placeholders such as ``"..."`` in the docs are not compared).
    """
    found: set[str] = set()
    if isinstance(doc, dict) and isinstance(ours, dict):
        found |= {f"missing {path}.{key}" for key in doc if key not in ours}
        found |= {f"extra {path}.{key}" for key in ours if key not in doc}
        shared = [key for key in doc if key in ours]
        if shared != [key for key in ours if key in doc]:
            found.add(f"order {path}")
        for key in shared:
            found |= differences(doc[key], ours[key], f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(ours, list):
        if doc:  # an element of ours is compared with the doc's element at its place
            for index, item in enumerate(ours):
                found |= differences(doc[min(index, len(doc) - 1)], item, f"{path}[]")
    elif type(doc) is not type(ours) and not (isinstance(doc, float) and isinstance(ours, int)):
        found.add(f"type {path}: {type(doc).__name__} documented, {type(ours).__name__} served")
    elif (
        isinstance(doc, str)
        and _is_hex(doc)
        and len(doc) >= 8
        and not (_is_hex(ours) and len(ours) == len(doc))
    ):
        found.add(f"hex {path}: {len(doc)} hex digits documented, served {ours!r}")
    return found


async def compare(scene: Scene, name: str, request: dict[str, Any]) -> dict[str, Any]:
    """POST the documented request (with the scene's values) and hold the answer to the docs."""
    documented = fixture(name)
    assert set(request) == set(documented["request"]), "the request must keep the docs' keys"
    ours: dict[str, Any] = await scene.post(documented["path"], request)
    assert ours, f"{name}: the sandbox found nothing"
    unexpected = differences(documented["response"], ours) - set(ALLOWED.get(name, {}))
    assert unexpected == set(), f"{name} differs from {documented['source']['path']}"
    return ours


# -- the documented examples, key by key --------------------------------------------------------


async def test_blocks_match_the_documented_examples(scene: Scene) -> None:
    head = scene.sandbox.chain.head()
    now = await compare(scene, "getnowblock", {})
    assert now["block_header"]["raw_data"]["number"] == head
    assert {tx["txID"] for tx in now["transactions"]} == {scene.txid, scene.locked_txid}
    by_num = await compare(scene, "getblockbynum", {"num": head})
    assert by_num == now
    header_only = await compare(scene, "getblock", {"id_or_num": str(head), "detail": False})
    assert header_only == {key: now[key] for key in ("blockID", "block_header")}
    latest = await compare(scene, "getblockbylatestnum", {"num": 2})
    assert latest["block"][0] == now and "transactions" not in latest["block"][1]
    assert [block["blockID"] for block in latest["block"]] == [
        now["blockID"],
        now["block_header"]["raw_data"]["parentHash"],
    ]


async def test_block_witness_signature_recovers_to_the_witness(scene: Scene) -> None:
    chain = scene.sandbox.chain
    block = await scene.post("/wallet/getnowblock", {})
    raw = block["block_header"]["raw_data"]
    signature = Signature(bytes.fromhex(block["block_header"]["witness_signature"]))
    signer = signature.recover_public_key_from_msg_hash(chain.block_hash(raw["number"]))
    assert signer.to_hex_address() == raw["witness_address"]
    assert block["blockID"][16:] == chain.block_hash(raw["number"]).hex()[16:]


async def test_transactions_match_the_documented_examples(scene: Scene) -> None:
    tx = await compare(scene, "gettransactionbyid", {"value": scene.txid})
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    outline = fixture("delegateresource_contract")["response"]
    assert set(value) <= {*outline, "lock_period"}
    locked = await scene.post("/wallet/gettransactionbyid", {"value": scene.locked_txid})
    locked_value = locked["raw_data"]["contract"][0]["parameter"]["value"]
    assert set(locked_value) == {*outline, "lock_period"}
    assert differences(outline, {k: v for k, v in locked_value.items() if k != "lock_period"}) == {
        "order $"  # the outline is hand-written; the printer writes proto field order
    }
    info = await compare(scene, "gettransactioninfobyid", {"value": scene.txid})
    assert info["blockNumber"] == scene.sandbox.chain.head()
    pending = await compare(scene, "gettransactionfrompending", {"value": scene.pending_txid})
    assert pending["txID"] == scene.pending_txid and "ret" not in pending
    listed = await compare(scene, "gettransactionlistfrompending", {})
    assert listed == {"txId": [scene.pending_txid]}


async def test_accounts_match_the_documented_examples(scene: Scene) -> None:
    account = await compare(scene, "getaccount", {"address": hex_of(scene.pool)})
    assert account["owner_permission"]["keys"] == [{"address": hex_of(scene.pool), "weight": 1}]
    resource = await compare(scene, "getaccountresource", {"address": hex_of(scene.target)})
    assert resource["EnergyLimit"] > 0
    await compare(scene, "getaccountnet", {"address": hex_of(scene.target)})
    record = await compare(
        scene,
        "getdelegatedresourcev2",
        {"fromAddress": hex_of(scene.pool), "toAddress": hex_of(scene.locked_target)},
    )
    assert record["delegatedResource"][0]["frozen_balance_for_energy"] == 100 * TRX
    index = await compare(
        scene, "getdelegatedresourceaccountindexv2", {"value": hex_of(scene.idle)}
    )
    assert index == {"account": hex_of(scene.idle)}


async def test_node_info_and_the_disabled_api_match_the_docs(scene: Scene) -> None:
    node = await compare(scene, "getnodeinfo", {})
    assert node["block"].startswith(f"Num:{scene.sandbox.chain.head()},ID:")
    documented = fixture("disabled_api")
    for path in (documented["path"], "/wallet/no-such-api", "/"):
        body = await scene.post(path, {}, status=documented["status"])
        assert body == documented["response"]
    async with scene.http.get(scene.base + "/wallet/getblockbalance") as response:
        assert response.status == 404
        assert await response.json() == documented["response"]


# -- tronpy, a real client, against every endpoint it reads -------------------------------------


async def test_tronpy_reads_accounts_and_delegations(scene: Scene) -> None:
    pool, target = scene.pool, scene.target
    account = await scene.client(lambda tron: tron.get_account(pool))
    assert account["address"] == pool and account["balance"] == 50 * TRX
    balance = await scene.client(lambda tron: tron.get_account_balance(pool))
    assert balance == 50
    permission = await scene.client(lambda tron: tron.get_account_permission(pool))
    assert permission["owner"]["keys"] == [{"address": pool, "weight": 1}]
    # tronpy has a default of its own ("7fff1fc0033e01..."): this one came from the sandbox.
    assert permission["actives"][0]["operations"].startswith("7fff1fc0033efb0f")
    energy = await scene.client(lambda tron: tron.get_energy(target))
    limit = scene.sandbox.chain.energy_limit(target)
    assert energy == limit > 0
    resource = await scene.client(lambda tron: tron.get_account_resource(target))
    assert resource["EnergyLimit"] == limit
    bandwidth = await scene.client(lambda tron: tron.get_bandwidth(target))
    assert bandwidth == 600  # the free allowance only
    record = await scene.client(lambda tron: tron.get_delegated_resource_v2(pool, target))
    assert record["delegatedResource"][0]["frozen_balance_for_energy"] == 6_851 * TRX
    index = await scene.client(lambda tron: tron.get_delegated_resource_account_index_v2(pool))
    assert set(index["toAccounts"]) == {target, scene.locked_target}
    stranger = scene.sandbox.chain.new_address()
    with pytest.raises(AddressNotFound):
        await scene.client(lambda tron: tron.get_account(stranger))
    with pytest.raises(AddressNotFound):
        await scene.client(lambda tron: tron.get_account_resource(stranger))


async def test_tronpy_reads_transactions_only_once_they_are_in_a_block(scene: Scene) -> None:
    chain = scene.sandbox.chain
    tx = await scene.client(lambda tron: tron.get_transaction(scene.txid))
    assert tx["txID"] == scene.txid and tx["ret"] == [{"contractRet": "SUCCESS"}]
    signer = Signature(bytes.fromhex(tx["signature"][0])).recover_public_key_from_msg_hash(
        bytes.fromhex(scene.txid)
    )
    assert signer.to_base58check_address() == scene.pool
    info = await scene.client(lambda tron: tron.get_transaction_info(scene.txid))
    assert info["blockNumber"] == chain.head()
    with pytest.raises(TransactionNotFound):
        await scene.client(lambda tron: tron.get_solid_transaction_info(scene.txid))
    for lookup in (Tron.get_transaction, Tron.get_transaction_info):
        with pytest.raises(TransactionNotFound):  # pending: not in the transaction store
            await scene.client(lambda tron, lookup=lookup: lookup(tron, scene.pending_txid))
    chain.advance_blocks(SOLID_DEPTH)
    solid = await scene.client(lambda tron: tron.get_solid_transaction_info(scene.txid))
    assert solid == info
    pending = await scene.client(lambda tron: tron.get_transaction(scene.pending_txid))
    assert pending["txID"] == scene.pending_txid  # landed in the next block


async def test_tronpy_reads_blocks_and_the_node(scene: Scene) -> None:
    chain = scene.sandbox.chain
    head, solid = chain.head(), chain.solid_head()
    latest = await scene.client(lambda tron: tron.get_latest_block())
    assert latest["block_header"]["raw_data"]["number"] == head
    # tronpy posts {"visible": true}, but getnowblock reads the query only: hex, as on mainnet.
    assert latest["block_header"]["raw_data"]["witness_address"].startswith("41")
    assert await scene.client(lambda tron: tron.get_latest_block_number()) == head
    assert await scene.client(lambda tron: tron.get_latest_block_id()) == chain.block_id(head)
    assert await scene.client(lambda tron: tron.get_latest_solid_block_number()) == solid
    assert await scene.client(lambda tron: tron.get_latest_solid_block_id()) == chain.block_id(
        solid
    )
    solid_block = await scene.client(lambda tron: tron.get_latest_solid_block())
    assert solid_block["blockID"] == chain.block_id(solid)
    by_num = await scene.client(lambda tron: tron.get_block(head - 1))
    assert by_num["blockID"] == chain.block_id(head - 1) and "transactions" not in by_num
    by_id = await scene.client(lambda tron: tron.get_block(chain.block_id(head)))
    assert by_id["blockID"] == latest["blockID"] and len(by_id["transactions"]) == 2
    assert by_id["block_header"]["raw_data"]["witness_address"].startswith("T")  # body's visible
    with pytest.raises(BlockNotFound):
        await scene.client(lambda tron: tron.get_block(head + 1))
    with pytest.raises(BlockNotFound):
        await scene.client(lambda tron: tron.get_block("ab" * 32))
    node = await scene.client(lambda tron: tron.get_node_info())
    assert {"configNodeInfo", "machineInfo"} <= set(node)


# -- what the spec reads where ------------------------------------------------------------------


async def test_getnowblock_reads_visible_from_the_query_only(scene: Scene) -> None:
    """GetNowBlockServlet.doPost calls doGet: a body's ``visible`` is never read."""
    body_only = await scene.post("/wallet/getnowblock", {"visible": True})
    witness = body_only["block_header"]["raw_data"]["witness_address"]
    assert witness.startswith("41") and len(witness) == 42
    async with scene.http.post(
        scene.base + "/wallet/getnowblock?visible=true", data=b'{"visible": false}'
    ) as response:
        from_query = msgspec.json.decode(await response.read())
    assert from_query["block_header"]["raw_data"]["witness_address"].startswith("T")
    by_get = await scene.get("/wallet/getnowblock", visible="true")
    assert by_get["block_header"]["raw_data"]["witness_address"].startswith("T")


async def test_int64_as_string_on_get_only(scene: Scene) -> None:
    query = {"address": scene.target, "visible": "true"}
    plain = await scene.get("/wallet/getaccountresource", **query)
    strings = await scene.get("/wallet/getaccountresource", **query, int64_as_string="true")
    assert strings == {key: str(value) for key, value in plain.items()}
    block = await scene.get("/wallet/getnowblock", int64_as_string="true")
    raw = block["block_header"]["raw_data"]
    assert isinstance(raw["number"], str) and isinstance(raw["timestamp"], str)
    assert raw["version"] == 34  # int32 stays a number
    account = await scene.get(
        "/wallet/getaccount", address=scene.pool, visible="true", int64_as_string="true"
    )
    assert account["balance"] == str(50 * TRX)
    assert account["active_permission"][0]["id"] == 2
    # POST bodies are not affected, even with the flag in the body or the query.
    posted = await scene.post(
        "/wallet/getaccountresource?int64_as_string=true", {**query, "int64_as_string": True}
    )
    assert posted == plain
    # getnodeinfo is written by JSON.toJSONString, not JsonFormat.
    node = await scene.get("/wallet/getnodeinfo", int64_as_string="true")
    assert isinstance(node["beginSyncNum"], int)


async def test_bad_checksum_on_the_delegation_index_finds_nothing(scene: Scene) -> None:
    """Util.getHexAddress turns a base58 value into hex on GET and POST: a bad checksum is {}."""
    good = scene.pool
    bad = good[:-1] + ("2" if good[-1] != "2" else "3")
    body = {"value": bad, "visible": True}
    assert await scene.post("/wallet/getdelegatedresourceaccountindexv2", body) == {}
    assert (
        await scene.get("/wallet/getdelegatedresourceaccountindexv2", value=bad, visible="true")
        == {}
    )
    error = await scene.post(
        "/wallet/getdelegatedresourceaccountindexv2", {**body, "value": "0OIl"}
    )
    assert error["Error"].startswith("class java.lang.IllegalArgumentException")
    error = await scene.post("/wallet/getdelegatedresourceaccountindexv2", {"value": "zz"})
    assert error["Error"].startswith("class org.tron.core.services.http.JsonFormat$ParseException")


async def test_block_queries_and_their_errors(scene: Scene) -> None:
    chain = scene.sandbox.chain
    head = chain.head()
    assert await scene.post("/wallet/getblockbynum", {"num": head + 1}) == {}
    assert await scene.post("/walletsolidity/getblockbynum", {"num": head}) == {}
    solid = await scene.post("/walletsolidity/getblockbynum", {"num": chain.solid_head()})
    assert solid["blockID"] == chain.block_id(chain.solid_head())
    error = await scene.get("/wallet/getblockbynum", num="ten")
    assert error == {"Error": 'class java.lang.NumberFormatException : For input string: "ten"'}
    error = await scene.post("/wallet/getblockbynum", {"num": "ten"})
    assert error["Error"].startswith("class org.tron.core.services.http.JsonFormat$ParseException")
    for num in (0, 100, -1):
        assert await scene.post("/wallet/getblockbylatestnum", {"num": num}) == {}
    assert len((await scene.post("/wallet/getblockbylatestnum", {"num": 99}))["block"]) == 99
    assert await scene.post("/wallet/getblock", {"id_or_num": "-1"}) == {
        "Error": "num must be non-positive number."
    }
    assert await scene.post("/wallet/getblock", {"id_or_num": "xyz"}) == {
        "Error": "id must be legal block hash."
    }
    latest = await scene.post("/wallet/getblock", {})
    assert latest["blockID"] == chain.block_id(head) and "transactions" not in latest
    detailed = await scene.post(
        "/wallet/getblock", {"id_or_num": chain.block_id(head), "detail": True}
    )
    assert len(detailed["transactions"]) == 2
    fake_id = chain.block_id(head)[:16] + "00" * 24
    assert await scene.post("/wallet/getblockbyid", {"value": fake_id}) == {}

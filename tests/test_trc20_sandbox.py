"""The sandbox's TRC20 world and its TronGrid routes, checked against transfer.md and
java-tron's documented shapes with a plain HTTP client (no energy_async client code)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from energy_async.sandbox import Sandbox
from energy_async.sandbox.base58 import decode_address
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.trc20 import USDT, WINDOW_SLOTS, transaction_bytes

pytestmark = pytest.mark.anyio

TRX = 1_000_000


def _word(address: str) -> str:
    raw = decode_address(address)
    assert raw is not None
    return "0" * 24 + raw[1:].hex()


def transfer_call(owner: str, to: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {
        "owner_address": owner,
        "contract_address": USDT,
        "function_selector": "transfer(address,uint256)",
        "parameter": _word(to) + f"{amount:064x}",
        "visible": True,
        **extra,
    }


@pytest.fixture
async def served() -> AsyncIterator[tuple[Sandbox, str, aiohttp.ClientSession]]:
    sandbox = Sandbox(speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        yield sandbox, urls.trongrid, http


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as response:
        assert response.status == 200
        return await response.json()


async def test_simulated_transfer_has_the_documented_shape_and_figures(served: Any) -> None:
    sandbox, base, http = served
    chain = sandbox.chain
    sender = chain.new_account(balance_sun=10 * TRX)
    chain.trc20.mint(USDT, sender, 100 * TRX)
    holder, newcomer = chain.new_address(), chain.new_address()
    chain.trc20.mint(USDT, holder, 1)
    url = base + "/wallet/triggerconstantcontract"
    to_holder = await post(http, url, transfer_call(sender, holder, TRX))
    to_newcomer = await post(http, url, transfer_call(sender, newcomer, TRX))
    assert to_holder["result"] == {"result": True}
    assert (to_holder["energy_used"], to_holder["energy_penalty"]) == (64_285, 49_635)
    assert (to_newcomer["energy_used"], to_newcomer["energy_penalty"]) == (130_285, 100_635)
    assert to_holder["constant_result"] == ["0" * 64]  # USDT returns a zero word on success
    tx = to_holder["transaction"]
    assert tx["ret"] == [{}] and len(tx["txID"]) == 64
    assert len(bytes.fromhex(tx["raw_data_hex"])) == 205  # no fee_limit in a simulation
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    assert value["data"].startswith("a9059cbb") and value["owner_address"] == sender


async def test_a_reverting_transfer_says_so_in_band(served: Any) -> None:
    sandbox, base, http = served
    sender = sandbox.chain.new_account()
    to = sandbox.chain.new_address()
    url = base + "/wallet/triggerconstantcontract"
    visible = await post(http, url, transfer_call(sender, to, 1))
    hex_body = transfer_call(sender, to, 1, visible=False)
    for key in ("owner_address", "contract_address"):
        raw = decode_address(hex_body[key])
        assert raw is not None
        hex_body[key] = raw.hex()
    hidden = await post(http, url, hex_body)
    assert visible["result"] == {"result": True, "message": "REVERT opcode executed"}
    assert visible["transaction"]["ret"] == [{"ret": "FAILED"}]
    assert bytes.fromhex(hidden["result"]["message"]) == b"REVERT opcode executed"


async def test_an_address_word_that_keeps_the_41_prefix_reverts(served: Any) -> None:
    """vultisig-android#2091: leaving 41 in the word makes the simulation fail."""
    sandbox, base, http = served
    sender = sandbox.chain.new_account()
    sandbox.chain.trc20.mint(USDT, sender, TRX)
    body = transfer_call(sender, sandbox.chain.new_address(), 1)
    body["parameter"] = "0" * 22 + "41" + body["parameter"][24:]
    answer = await post(http, base + "/wallet/triggerconstantcontract", body)
    assert answer["result"]["message"] == "REVERT opcode executed"


async def test_no_contract_at_the_address(served: Any) -> None:
    sandbox, base, http = served
    body = transfer_call(sandbox.chain.new_account(), sandbox.chain.new_address(), 1)
    body["contract_address"] = sandbox.chain.new_address()
    answer = await post(http, base + "/wallet/triggerconstantcontract", body)
    assert answer == {
        "result": {"code": "CONTRACT_VALIDATE_ERROR", "message": "Smart contract is not exist."}
    }


async def test_estimateenergy_off_by_default_and_java_tron_figures_when_on(served: Any) -> None:
    sandbox, base, http = served
    chain = sandbox.chain
    sender = chain.new_account()
    chain.trc20.mint(USDT, sender, 100 * TRX)
    holder = chain.new_address()
    chain.trc20.mint(USDT, holder, 1)
    url = base + "/wallet/estimateenergy"
    off = await post(http, url, transfer_call(sender, holder, TRX))
    chain.trc20.estimate_energy_enabled = True
    on_holder = await post(http, url, transfer_call(sender, holder, TRX))
    on_new = await post(http, url, transfer_call(sender, chain.new_address(), TRX))
    reverts = await post(http, url, transfer_call(sender, holder, 10**12))
    assert off["result"]["message"] == "this node does not support estimate energy"
    assert on_holder == {"result": {"result": True}, "energy_required": 72_321}
    assert on_new["energy_required"] == 138_428
    assert reverts == {
        "result": {"code": "CONTRACT_EXE_ERROR", "message": "REVERT opcode executed"}
    }


async def test_chain_parameters_have_the_documented_keys(served: Any) -> None:
    _, base, http = served
    async with http.get(base + "/wallet/getchainparameters") as response:
        body = await response.json()
    entries = body["chainParameter"]
    values = {entry["key"]: entry.get("value", 0) for entry in entries}
    assert entries[0]["key"] == "getMaintenanceTimeInterval"
    assert {"key": "getAllowUpdateAccountName"} in entries  # zero: no value key
    assert values["getEnergyFee"] == 100 and values["getTransactionFee"] == 1_000
    assert values["getMaxFeeLimit"] == 15_000_000_000 and values["getFreeNetLimit"] == 600


async def test_getaccountresource_shows_usage_recovered_to_the_head(served: Any) -> None:
    sandbox, base, http = served
    chain = sandbox.chain
    address = chain.new_account(energy_stake_sun=10_000 * TRX)
    url = base + "/wallet/getaccountresource"
    fresh = await post(http, url, {"address": address, "visible": True})
    chain.trc20.consume_energy(address, 50_000)
    chain.trc20.consume_free_net(address, 345)
    used = await post(http, url, {"address": address, "visible": True})
    chain.advance_blocks(WINDOW_SLOTS // 4)
    later = await post(http, url, {"address": address, "visible": True})
    assert "EnergyUsed" not in fresh and "freeNetUsed" not in fresh
    assert used["EnergyUsed"] == 50_000 and used["freeNetUsed"] == 345
    assert later["EnergyUsed"] == 37_500 and later["freeNetUsed"] == 258  # fixed point floors


def test_usage_recovers_linearly_and_fully_after_24_hours() -> None:
    chain = Chain(speed=0)
    address = chain.new_account()
    chain.trc20.consume_energy(address, 64_285)
    seen = []
    for _ in range(4):
        seen.append(chain.trc20.energy_used(address))
        chain.advance_blocks(WINDOW_SLOTS // 4)
    # ResourceProcessor in x1e6 fixed point: ceil(64,285e6 / 28,800) = 2,232,119; x 0.75 rounds
    # to 1,674,089; x 28,800 / 1e6 floors to 48,213 (not the naive 48,214).
    assert seen == [64_285, 48_213, 32_142, 16_071]
    assert chain.trc20.energy_used(address) == 0


def test_a_transfer_pays_bandwidth_staked_then_free_then_burned_all_or_nothing() -> None:
    chain = Chain(speed=0)
    trc20 = chain.trc20
    sender = chain.new_account(balance_sun=20 * TRX)
    trc20.mint(USDT, sender, 100 * TRX)
    to = chain.new_address()
    first = trc20.transfer(USDT, sender, to, TRX, fee_limit=15 * TRX)
    trc20.consume_free_net(sender, 100)  # 600 - 345 - 100 = 155 left: not enough for 345
    second = trc20.transfer(USDT, sender, to, TRX, fee_limit=15 * TRX)
    assert (first.net_usage, first.net_fee) == (345, 0)
    assert (second.net_usage, second.net_fee) == (0, 345_000)
    assert first.energy_usage_total == 130_285 and second.energy_usage_total == 64_285
    burned = 345_000 + (130_285 + 64_285) * 100
    account = chain.account(sender)
    assert account is not None and account.balance == 20 * TRX - burned
    assert trc20.balance_of(USDT, to) == 2 * TRX


def test_bandwidth_that_trx_cannot_pay_is_rejected_before_the_chain() -> None:
    chain = Chain(speed=0)
    sender = chain.new_account(balance_sun=100_000)
    chain.trc20.mint(USDT, sender, TRX)
    chain.trc20.consume_free_net(sender, 600)
    with pytest.raises(ValueError, match="Account resource insufficient"):
        chain.trc20.transfer(USDT, sender, chain.new_address(), 1, fee_limit=TRX)
    assert chain.trc20.balance_of(USDT, sender) == TRX


def test_transaction_bytes_match_the_mainnet_receipts() -> None:
    chain = Chain(speed=0)
    sender = chain.new_account()
    data = bytes.fromhex("a9059cbb" + _word(chain.new_address()) + f"{TRX:064x}")
    raw = chain.trc20.raw_data(sender, USDT, data, fee_limit=7_714_200)
    assert len(raw) == 211 and transaction_bytes(raw) == 345


async def test_staked_bandwidth_pays_a_transfer_before_free_and_burns_nothing() -> None:
    """Staked first, each source all or nothing (transfer.md §5), set up and read over HTTP."""
    sandbox = Sandbox(speed=0)
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        admin, trongrid = urls.admin, urls.trongrid

        async def resource(address: str) -> Any:
            body = {"address": address, "visible": True}
            return await post(http, trongrid + "/wallet/getaccountresource", body)

        async def balance(address: str) -> int:
            body = {"address": address, "visible": True}
            account = await post(http, trongrid + "/wallet/getaccount", body)
            return int(account.get("balance", 0))

        funds = {"balance_sun": 10 * TRX, "energy_stake_sun": 100_000 * TRX}
        funds["usdt_base_units"] = 100 * TRX
        staked = await post(
            http, admin + "/accounts", {**funds, "bandwidth_stake_sun": 1_000 * TRX}
        )
        short = await post(http, admin + "/accounts", {**funds, "bandwidth_stake_sun": 100 * TRX})
        to = (await post(http, admin + "/targets", {}))["address"]
        await post(http, admin + "/trc20/mint", {"address": to, "amount": 1})
        before = await resource(staked["address"])
        short_before = await resource(short["address"])
        assert before["NetLimit"] == staked["net_limit"] == 1_629 and "NetUsed" not in before
        assert short_before["NetLimit"] == 162  # staked, but less than one transfer's 345 bytes
        # The sender signs and broadcasts; the sandbox chain executes it as java-tron would.
        receipts = [
            sandbox.chain.trc20.transfer(USDT, sender["address"], to, TRX, fee_limit=15 * TRX)
            for sender in (staked, short)
        ]
        after, short_after = await resource(staked["address"]), await resource(short["address"])
        assert [(r.result, r.net_usage, r.net_fee, r.energy_fee) for r in receipts] == [
            ("SUCCESS", 345, 0, 0),
            ("SUCCESS", 345, 0, 0),
        ]
        assert after["NetUsed"] == 345 and "freeNetUsed" not in after
        assert after["EnergyUsed"] == 64_285
        assert short_after["freeNetUsed"] == 345 and "NetUsed" not in short_after
        assert await balance(staked["address"]) == await balance(short["address"]) == 10 * TRX


async def test_free_bandwidth_follows_the_getfreenetlimit_parameter() -> None:
    """getaccountresource/getaccountnet's freeNetLimit and what a transfer may take agree."""
    sandbox = Sandbox(speed=0)
    chain = sandbox.chain
    async with sandbox.serve() as urls, aiohttp.ClientSession() as http:
        to = (await post(http, urls.admin + "/targets", {}))["address"]

        async def free_net_limits(address: str) -> tuple[Any, ...]:
            body = {"address": address, "visible": True}
            found = [
                (await post(http, f"{urls.trongrid}/wallet/{servlet}", body)).get("freeNetLimit")
                for servlet in ("getaccountresource", "getaccountnet")
            ]
            async with http.get(urls.trongrid + "/wallet/getchainparameters") as response:
                entries = (await response.json())["chainParameter"]
            found += [e.get("value") for e in entries if e["key"] == "getFreeNetLimit"]
            return tuple(found)

        seen = []
        for limit in (600, 300, 1_500, 0):
            chain.trc20.parameters["getFreeNetLimit"] = limit
            spec = {"balance_sun": 10 * TRX, "usdt_base_units": TRX}
            sender = (await post(http, urls.admin + "/accounts", spec))["address"]
            limits = await free_net_limits(sender)
            receipt = chain.trc20.transfer(USDT, sender, to, 1, fee_limit=15 * TRX)
            seen.append((limits, receipt.net_usage, receipt.net_fee))
    assert seen == [
        ((600, 600, 600), 345, 0),
        ((300, 300, 300), 0, 345_000),  # 300 free cannot pay 345 bytes: all are burned
        ((1_500, 1_500, 1_500), 345, 0),
        ((None, None, None), 0, 345_000),  # zero is left out, as java-tron prints it
    ]

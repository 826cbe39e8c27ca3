"""The verifier on real TronGrid bodies (tests/fixtures/tron) and on every bad answer shape."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web

from energy_async._http import CallMeter, RetryPolicy
from energy_async.energy import energy_for_sun
from energy_async.errors import (
    BadResponse,
    ConfigurationError,
    InputError,
    InvalidAddress,
    NetworkError,
    NodeError,
    RateLimited,
    ServiceUnavailable,
)
from energy_async.verifier import API_KEY_ENV, API_KEY_HEADER, Verifier
from tests.loopback import serving

pytestmark = pytest.mark.anyio

FIXTURES = Path(__file__).parent / "fixtures" / "tron"
TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
OWNER = "TJAVcszse667FmSNCwU2fm6DmfM5D4AyDh"
RECEIVER = "TQ4gjjpAjLNnE67UFbmK5wVt5fzLfyEVs3"
WALLET_CLI_TXID = "363ac0b82b6ad3e0d3cad90f7d72b3eceafe36585432a3e013389db36152b6ed"
INFO_TXID = "c4b56bb64f2e19e26412a38c1c0cf1374eaa346bc3f433898ccbd8d216c01d07"
FAST = RetryPolicy(max_attempts=3, initial_delay=0.001, max_delay=0.005)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@dataclass
class Reply:
    body: bytes = b"{}"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    payload: Any


class FakeTronGrid:
    """Serves queued replies per path (the last one repeats) and records every request."""

    def __init__(self) -> None:
        self.replies: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.url = ""
        self.gate: Callable[[], Awaitable[None]] | None = None  # awaited before each reply

    def on(self, path: str, *replies: Reply) -> None:
        self.replies[path] = list(replies)

    def count(self, path: str) -> int:
        return sum(1 for seen in self.seen if seen.path == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.seen.append(Seen(request.path, dict(request.headers), json.loads(raw or b"null")))
        if self.gate is not None:
            await self.gate()
        queue = self.replies.get(request.path) or [Reply(status=404, body=b"not found")]
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.delay:
            await anyio.sleep(reply.delay)
        return web.Response(
            status=reply.status,
            body=reply.body,
            headers=reply.headers,
            content_type=reply.content_type,
        )


@pytest.fixture
async def trongrid() -> AsyncIterator[FakeTronGrid]:
    fake = FakeTronGrid()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    async with serving(app) as fake.url:
        yield fake


@pytest.fixture(autouse=True)
def no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)


def verifier(fake: FakeTronGrid, **kw: Any) -> Verifier:
    kw.setdefault("rate_limit", 1000.0)
    kw.setdefault("retry", FAST)
    return Verifier(fake.url, **kw)


# --- snapshots on real bodies ----------------------------------------------------------------


async def test_nile_account_without_energy_keys_reads_zero(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getaccountresource", Reply(fixture("getaccountresource_nile_no_energy.json"))
    )
    before = time.time()
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
    assert snap.exists
    assert (snap.energy_limit, snap.energy_used, snap.energy_available) == (0, 0, 0)
    assert (snap.total_energy_limit, snap.total_energy_weight) == (180_000_000_000, 2_411_528_185)
    assert snap.address == TARGET and before <= snap.taken_at <= time.time()
    [seen] = trongrid.seen
    assert seen.payload == {"address": TARGET, "visible": True}
    assert API_KEY_HEADER not in seen.headers


@pytest.mark.parametrize(
    ("name", "energy"),
    [
        ("getaccountresource_mainnet_energy10.json", 10),
        ("getaccountresource_mainnet_energy9.json", 9),
    ],
)
async def test_mainnet_one_trx_delegation_at_two_weights(
    trongrid: FakeTronGrid, name: str, energy: int
) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(fixture(name)))
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
    assert snap.energy_limit == snap.energy_available == energy
    # The node's EnergyLimit is what our formula gives for the standing 1 TRX at its totals.
    assert energy_for_sun(1_000_000, snap.total_energy_limit, snap.total_energy_weight) == energy


async def test_empty_object_is_an_account_that_does_not_exist(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
    assert not snap.exists and snap.energy_limit == 0 and snap.total_energy_weight == 0


async def test_hex_address_is_sent_as_base58(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    async with verifier(trongrid) as client:
        snap = await client.snapshot("41fd49eda0f23ff7ec1d03b52c3a45991c24cd440e")
    assert snap.address == TARGET
    assert trongrid.seen[0].payload["address"] == TARGET


# --- delegation evidence on real bodies ------------------------------------------------------


async def test_wallet_cli_delegation_without_resource_is_bandwidth(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/gettransactionbyid", Reply(fixture("gettransactionbyid_bandwidth_delegation.json"))
    )
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        tx = await client.delegation(WALLET_CLI_TXID.upper())
    assert tx.found and tx.txid == WALLET_CLI_TXID
    assert tx.contract_type == "DelegateResourceContract"
    assert tx.resource == "BANDWIDTH"
    assert (tx.owner, tx.receiver) == (OWNER, RECEIVER)  # hex on the wire, base58 here
    assert (tx.balance_sun, tx.lock, tx.lock_period) == (10_000_000, True, 0)
    assert tx.contract_ret == "SUCCESS" and not tx.failed
    assert not tx.in_block and not tx.solid and tx.block_number is None
    # Not in a block yet: no solidity query spent.
    assert trongrid.count("/walletsolidity/gettransactioninfobyid") == 0
    assert [s.payload for s in trongrid.seen] == [{"value": WALLET_CLI_TXID, "visible": True}] * 2


@pytest.mark.parametrize(
    "solid_body", [b"{}", fixture("gettransactioninfobyid_no_receipt_result.json")]
)
async def test_info_without_receipt_result_is_in_block(
    trongrid: FakeTronGrid, solid_body: bytes
) -> None:
    info = fixture("gettransactioninfobyid_no_receipt_result.json")
    trongrid.on("/wallet/gettransactionbyid", Reply(b"{}"))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(info))
    trongrid.on("/walletsolidity/gettransactioninfobyid", Reply(solid_body))
    meter = CallMeter()
    async with verifier(trongrid) as client:
        tx = await client.delegation(INFO_TXID, meter=meter)
    assert tx.found and tx.in_block and tx.block_number == 67_927_794
    assert tx.block_time_ms is None and not tx.failed
    assert tx.solid is (solid_body != b"{}")
    assert meter.calls == 3


async def test_failed_tx_info_carries_its_message(trongrid: FakeTronGrid) -> None:
    # Constructed from tron.md §2.3: "result": "FAILED" plus resMessage on failure.
    body = {
        "id": INFO_TXID,
        "blockNumber": 5,
        "result": "FAILED",
        "resMessage": "Account not exists",
    }
    trongrid.on("/wallet/gettransactionbyid", Reply(b"{}"))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(json.dumps(body).encode()))
    async with verifier(trongrid) as client:
        tx = await client.delegation(INFO_TXID, check_solid=False)
    assert tx.failed and tx.fail_message == "Account not exists"
    assert trongrid.count("/walletsolidity/gettransactioninfobyid") == 0


async def test_unknown_tx_is_not_found(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/gettransactionbyid", Reply(b"{}"))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        tx = await client.delegation("ab" * 32)
    assert not tx.found and not tx.in_block and tx.owner is None


async def test_answer_for_another_tx_is_bad_response(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/gettransactionbyid", Reply(fixture("gettransactionbyid_bandwidth_delegation.json"))
    )
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        with pytest.raises(BadResponse, match="another tx"):
            await client.delegation("ab" * 32)


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b'{"EnergyLimit": 1e400}', b"<html>"],
    ids=["not-utf8", "deep", "out-of-range", "html"],
)
async def test_a_body_that_does_not_decode_is_bad_response_with_nothing_attached(
    trongrid: FakeTronGrid, body: bytes
) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(body))
    async with verifier(trongrid) as client:
        with pytest.raises(BadResponse) as caught:
            await client.snapshot(TARGET)
    # Neither cause nor hidden context: a decode error can hold the whole body.
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("txid", ["", "ab" * 31, "zz" * 32, "0x" + "ab" * 31, " " + "ab" * 32])
async def test_malformed_txid_is_refused_before_sending(trongrid: FakeTronGrid, txid: str) -> None:
    async with verifier(trongrid) as client:
        with pytest.raises(InputError, match="64 hex"):
            await client.delegation(txid)
    assert trongrid.seen == []


# --- delegated resource ----------------------------------------------------------------------


async def test_wallet_cli_delegated_resource(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getdelegatedresourcev2", Reply(fixture("getdelegatedresourcev2_bandwidth.json"))
    )
    async with verifier(trongrid) as client:
        record = await client.delegated_resource(OWNER, RECEIVER)
    assert (record.bandwidth_sun, record.energy_sun, record.records) == (10_000_000, 0, 1)
    assert trongrid.seen[0].payload == {
        "fromAddress": OWNER,
        "toAddress": RECEIVER,
        "visible": True,
    }


async def test_locked_and_unlocked_records_are_summed(trongrid: FakeTronGrid) -> None:
    # Constructed from tron.md §2.2: the unlocked record, then the locked one with its expiry.
    body = {
        "delegatedResource": [
            {"from": OWNER, "to": RECEIVER, "frozen_balance_for_energy": 2_000_000},
            {
                "from": OWNER,
                "to": RECEIVER,
                "frozen_balance_for_energy": 6_851_000_000,
                "expire_time_for_energy": 1_700_000_000_000,
            },
        ]
    }
    trongrid.on("/wallet/getdelegatedresourcev2", Reply(json.dumps(body).encode()))
    async with verifier(trongrid) as client:
        record = await client.delegated_resource(OWNER, RECEIVER)
    assert record.energy_sun == 6_853_000_000 and record.records == 2
    assert record.energy_expires_at_ms == 1_700_000_000_000


async def test_no_delegation_is_zero(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getdelegatedresourcev2", Reply(b"{}"))
    async with verifier(trongrid) as client:
        record = await client.delegated_resource(OWNER, RECEIVER)
    assert (record.energy_sun, record.bandwidth_sun, record.records) == (0, 0, 0)


async def test_record_for_another_pair_is_bad_response(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getdelegatedresourcev2", Reply(fixture("getdelegatedresourcev2_bandwidth.json"))
    )
    async with verifier(trongrid) as client:
        with pytest.raises(BadResponse, match="another pair"):
            await client.delegated_resource(OWNER, TARGET)


async def test_bad_address_is_refused_before_sending(trongrid: FakeTronGrid) -> None:
    async with verifier(trongrid) as client:
        with pytest.raises(InvalidAddress):
            await client.snapshot(TARGET[:-1] + "h")
        with pytest.raises(InvalidAddress):
            await client.delegated_resource(OWNER, "0x" + "00" * 20)
    assert trongrid.seen == []


# --- keys, limits, sessions ------------------------------------------------------------------


async def test_api_key_header_and_never_in_repr(
    trongrid: FakeTronGrid, monkeypatch: pytest.MonkeyPatch
) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    async with verifier(trongrid, api_key="sekrit-key") as client:
        await client.snapshot(TARGET)
        assert "sekrit" not in repr(client) and "<set>" in repr(client)
    monkeypatch.setenv(API_KEY_ENV, "env-key")
    async with verifier(trongrid) as client:
        await client.snapshot(TARGET)
    async with verifier(trongrid, api_key="") as client:
        await client.snapshot(TARGET)
        assert "<none>" in repr(client)
    keys = [seen.headers.get(API_KEY_HEADER) for seen in trongrid.seen]
    assert keys == ["sekrit-key", "env-key", None]


async def test_throttle_error_does_not_carry_the_key(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b'{"Error": "frequency limit"}', status=429))
    async with verifier(trongrid, api_key="sekrit-key") as client:
        with pytest.raises(RateLimited) as caught:
            await client.snapshot(TARGET)
    assert "sekrit" not in str(caught.value) and "sekrit" not in repr(caught.value)
    assert caught.value.provider_message == "frequency limit"


async def test_verifiers_on_one_url_and_key_share_one_rate_bucket(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    # Three verifiers on one URL and key share one bucket: 3/s, burst 3.
    clients = [Verifier(trongrid.url, api_key="", rate_limit=3.0) for _ in range(3)]
    started = time.monotonic()
    for client in clients:
        async with client:
            await client.snapshot(TARGET)
            await client.snapshot(TARGET)
    elapsed = time.monotonic() - started
    assert trongrid.count("/wallet/getaccountresource") == 6
    assert elapsed >= 0.9  # 3 burst tokens, then 3 more at 3/s


def test_default_rate_is_low_without_a_key_and_unthrottled_only_on_loopback() -> None:
    from energy_async.verifier import (
        RATE_LOOPBACK,
        RATE_WITH_KEY,
        RATE_WITHOUT_KEY,
        _default_rate,
    )

    assert _default_rate("https://api.trongrid.io", has_key=False) == RATE_WITHOUT_KEY == 3.0
    assert _default_rate("https://api.trongrid.io", has_key=True) == RATE_WITH_KEY
    assert _default_rate("https://nile.trongrid.io", has_key=False) == RATE_WITHOUT_KEY
    # A node of your own on this machine (or the sandbox) has no TronGrid quota.
    assert _default_rate("http://127.0.0.1:8090", has_key=False) == RATE_LOOPBACK
    assert _default_rate("http://localhost:8090", has_key=True) == RATE_LOOPBACK


async def test_user_session_is_used_and_left_open(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    async with aiohttp.ClientSession() as session:
        async with verifier(trongrid, session=session) as client:
            await client.snapshot(TARGET)
        assert not session.closed
        with pytest.raises(ConfigurationError, match="closed"):
            await client.snapshot(TARGET)
    with pytest.raises(ConfigurationError, match="session given to Verifier is closed"):
        async with verifier(trongrid, session=session) as client:
            await client.snapshot(TARGET)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "http://api.trongrid.io"},
        {"base_url": "ftp://127.0.0.1"},
        {"rate_limit": 0},
        {"total_timeout": 0},
        {"max_connections": 0},
    ],
)
def test_bad_configuration(kwargs: dict[str, Any]) -> None:
    base_url = kwargs.pop("base_url", "http://127.0.0.1:1")
    with pytest.raises(ConfigurationError):
        Verifier(base_url, **kwargs)


# --- every bad answer is a typed error -------------------------------------------------------


async def test_busy_node_is_retried(trongrid: FakeTronGrid) -> None:
    busy = Reply(
        b'{"Error":"class java.lang.IllegalAccessException : lack of computing resources"}'
    )
    trongrid.on(
        "/wallet/getaccountresource",
        busy,
        busy,
        Reply(fixture("getaccountresource_mainnet_energy9.json")),
    )
    meter = CallMeter()
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET, meter=meter)
        assert client.calls == 3
    assert snap.energy_limit == 9 and meter.calls == 3


async def test_busy_node_gives_up_after_the_attempts(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getaccountresource",
        Reply(b'{"Error":"class java.lang.IllegalAccessException : lack of computing resources"}'),
    )
    async with verifier(trongrid) as client:
        with pytest.raises(NodeError) as caught:
            await client.snapshot(TARGET)
    assert caught.value.retryable and caught.value.attempts == 3


async def test_node_error_is_not_retried(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getaccountresource",
        Reply(b'{"Error": "class java.lang.IllegalArgumentException : bad"}'),
    )
    async with verifier(trongrid) as client:
        with pytest.raises(NodeError) as caught:
            await client.snapshot(TARGET)
    assert not caught.value.retryable and caught.value.attempts == 1
    assert caught.value.path == "/wallet/getaccountresource"
    assert "IllegalArgumentException" in (caught.value.provider_message or "")


@pytest.mark.parametrize("status", [403, 429, 503])
async def test_throttling_is_retried_then_rate_limited(trongrid: FakeTronGrid, status: int) -> None:
    throttled = Reply(b'{"Error": "The key exceeds the frequency limit(15)"}', status=status)
    trongrid.on("/wallet/getaccountresource", throttled, Reply(b"{}"))
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
    assert not snap.exists and trongrid.count("/wallet/getaccountresource") == 2
    trongrid.on("/wallet/getaccountresource", throttled)
    async with verifier(trongrid) as client:
        with pytest.raises(RateLimited) as caught:
            await client.snapshot(TARGET)
    assert caught.value.http_status == status and caught.value.attempts == 3


async def test_retry_after_is_honoured(trongrid: FakeTronGrid) -> None:
    throttled = Reply(b"", status=429, headers={"Retry-After": "0.3"})
    trongrid.on("/wallet/getaccountresource", throttled, Reply(b"{}"))
    policy = RetryPolicy(max_attempts=2, initial_delay=0.001, max_delay=0.001, jitter=0)
    async with verifier(trongrid, retry=policy) as client:
        started = time.monotonic()
        await client.snapshot(TARGET)
    assert time.monotonic() - started >= 0.3


async def test_retry_after_too_long_gives_up_at_once(trongrid: FakeTronGrid) -> None:
    trongrid.on(
        "/wallet/getaccountresource", Reply(b"", status=503, headers={"Retry-After": "3600"})
    )
    async with verifier(trongrid) as client:
        with pytest.raises(RateLimited) as caught:
            await client.snapshot(TARGET)
    assert caught.value.retry_after == 3600 and caught.value.attempts == 1


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_server_errors_are_retried_then_service_unavailable(
    trongrid: FakeTronGrid, status: int
) -> None:
    trongrid.on(
        "/wallet/getaccountresource",
        Reply(b"<html>oops</html>", status=status, content_type="text/html"),
    )
    async with verifier(trongrid) as client:
        with pytest.raises(ServiceUnavailable) as caught:
            await client.snapshot(TARGET)
    assert caught.value.attempts == 3 and trongrid.count("/wallet/getaccountresource") == 3


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(b'{"Error": "this API is unavailable due to config"}', status=404), NodeError),
        (Reply(b"<html>413</html>", status=413, content_type="text/html"), BadResponse),
        (Reply(b"", status=302, headers={"Location": "http://example.com/"}), BadResponse),
        (
            Reply(
                b"this API is closed because this node is a lite fullnode",
                content_type="text/plain",
            ),
            BadResponse,
        ),
        (Reply(b"<html><body>Cloudflare</body></html>", content_type="text/html"), BadResponse),
        (Reply(b'{"TotalEnergyLimit": 180000000000, "TotalEner'), BadResponse),
        (
            Reply(b'{"EnergyLimit": "10", "TotalEnergyLimit": 1, "TotalEnergyWeight": 1}'),
            BadResponse,
        ),
        (Reply(b'{"EnergyLimit": -1, "TotalEnergyLimit": 1, "TotalEnergyWeight": 1}'), BadResponse),
        (Reply(b'{"EnergyLimit": 10}'), BadResponse),
        (Reply(b'{"message": "Forbidden"}'), BadResponse),
        (Reply(b"[]"), BadResponse),
        (Reply(b"null"), BadResponse),
        (Reply(b" " * (2 << 20)), BadResponse),
    ],
)
async def test_bad_answers_are_typed(
    trongrid: FakeTronGrid, reply: Reply, error: type[Exception]
) -> None:
    trongrid.on("/wallet/getaccountresource", reply)
    async with verifier(trongrid) as client:
        with pytest.raises(error) as caught:
            await client.snapshot(TARGET)
    assert type(caught.value) is error
    assert trongrid.count("/wallet/getaccountresource") == 1  # not retried
    assert caught.value.path == "/wallet/getaccountresource"  # type: ignore[attr-defined]


async def test_unreachable_is_network_error() -> None:
    # A port that was just free: connection refused.
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await runner.cleanup()
    async with Verifier(f"http://127.0.0.1:{port}", rate_limit=1000, retry=FAST) as client:
        with pytest.raises(NetworkError) as caught:
            await client.snapshot(TARGET)
        assert client.calls == 3
    assert caught.value.attempts == 3 and caught.value.retryable


async def test_timeout_is_network_error(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}", delay=0.3))
    async with verifier(trongrid, total_timeout=0.05, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(NetworkError, match="timed out"):
            await client.snapshot(TARGET)


async def test_throttle_text_in_a_200_is_throttling(trongrid: FakeTronGrid) -> None:
    # tron.md §3: full-node paths carry {"Error": "The key exceeds the frequency limit(...)"}.
    throttled = Reply(b'{"Error": "The key exceeds the frequency limit(15), suspended for 30s"}')
    trongrid.on("/wallet/getaccountresource", throttled, Reply(b"{}"))
    async with verifier(trongrid) as client:
        assert not (await client.snapshot(TARGET)).exists
    trongrid.on("/wallet/getaccountresource", throttled)
    async with verifier(trongrid) as client:
        with pytest.raises(RateLimited) as caught:
            await client.snapshot(TARGET)
    assert caught.value.attempts == 3 and caught.value.http_status == 200


async def test_non_success_contract_ret_is_a_failure(trongrid: FakeTronGrid) -> None:
    body = json.loads(fixture("gettransactionbyid_bandwidth_delegation.json"))
    body["ret"] = [{"contractRet": "OUT_OF_ENERGY"}]
    trongrid.on("/wallet/gettransactionbyid", Reply(json.dumps(body).encode()))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        tx = await client.delegation(WALLET_CLI_TXID)
    assert tx.failed and tx.fail_message == "contractRet OUT_OF_ENERGY"
    assert tx.contract_ret == "OUT_OF_ENERGY"


async def test_used_without_async_with_and_traced(trongrid: FakeTronGrid) -> None:
    trongrid.on("/wallet/getaccountresource", Reply(b"{}"))
    started: list[str] = []

    async def on_start(
        session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestStartParams
    ) -> None:
        started.append(params.url.path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    client = verifier(trongrid, trace_configs=[trace])
    await client.snapshot(TARGET)  # opens its session lazily
    await client.aclose()
    await client.aclose()  # idempotent
    assert started == ["/wallet/getaccountresource"]
    with pytest.raises(ConfigurationError, match="closed"):
        await client.snapshot(TARGET)


# --- the node's clock and the network totals a snapshot carries -------------------------------


async def test_a_snapshot_is_dated_by_the_nodes_clock_and_teaches_the_totals(
    trongrid: FakeTronGrid,
) -> None:
    date = "Tue, 15 Nov 1994 08:12:31 GMT"  # RFC 9110's example
    body = fixture("getaccountresource_mainnet_energy10.json")
    trongrid.on("/wallet/getaccountresource", Reply(body, headers={"Date": date}))
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
        assert snap.node_time_ms == 784_887_151_000
        totals = client.totals.since(784_887_151_000)
        assert totals is not None and totals.total_energy_weight == snap.total_energy_weight
        assert client.totals.since(784_887_151_001) is None  # read before that block


@pytest.mark.parametrize("date", ["yesterday", "Tue, 15 Nov 1994 08:12:31 -0000", ""])
async def test_an_unreadable_date_leaves_the_snapshot_undated(
    trongrid: FakeTronGrid, date: str
) -> None:
    body = fixture("getaccountresource_mainnet_energy10.json")
    trongrid.on("/wallet/getaccountresource", Reply(body, headers={"Date": date}))
    async with verifier(trongrid) as client:
        snap = await client.snapshot(TARGET)
        assert snap.exists and snap.node_time_ms is None
        assert client.totals.since(0) is None  # undated totals price nothing


async def test_info_and_body_of_a_delegation_are_read_side_by_side(
    trongrid: FakeTronGrid,
) -> None:
    # Each answer waits until both requests have arrived: read one after the other, the
    # first would wait forever (the gate fails after 2 s instead).
    arrived = anyio.Event()

    async def both() -> None:
        if len(trongrid.seen) == 2:
            arrived.set()
        with anyio.fail_after(2):
            await arrived.wait()

    trongrid.gate = both
    trongrid.on("/wallet/gettransactionbyid", Reply(b"{}"))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        tx = await client.delegation("ab" * 32, check_solid=False)
    assert not tx.found
    paths = sorted(seen.path for seen in trongrid.seen)
    assert paths == ["/wallet/gettransactionbyid", "/wallet/gettransactioninfobyid"]


async def test_a_failed_read_beside_another_raises_the_typed_error_itself(
    trongrid: FakeTronGrid,
) -> None:
    trongrid.on("/wallet/gettransactionbyid", Reply(b'{"Error": "java.lang.NullPointerException"}'))
    trongrid.on("/wallet/gettransactioninfobyid", Reply(b"{}"))
    async with verifier(trongrid) as client:
        with pytest.raises(NodeError) as raised:
            await client.delegation("ab" * 32, check_solid=False)
    assert raised.value.path == "/wallet/gettransactionbyid"

"""ProviderSession against the sandbox: a provider written from the docs, not from this client.

The sandbox verifies signatures over the raw path, the timestamp window and the key, de-dupes
``client_order_id`` and counts charges, so "never buy twice" is asserted on its books.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anyio
import pytest

from energy_async._http import RateLimiter
from energy_async.errors import (
    BadResponse,
    ConfigurationError,
    EnergyError,
    InputError,
    InsufficientBalance,
    InvalidAddress,
    InvalidOrder,
    NotSupported,
    OrderNotFound,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
)
from energy_async.models import ConfirmStatus, Order, OrderPhase, OrderStatus
from energy_async.providers import CatFee, Mefree, Provider
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Fault,
    Sandbox,
    SandboxURLs,
)
from energy_async.sandbox.provider_core import ProviderSim
from energy_async.session import ProviderSession, RetryPolicy

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.001)
PROVIDERS = ["catfee", "mefree"]
CREDENTIALS = {
    "catfee": (CatFee, CATFEE_API_KEY, CATFEE_API_SECRET),
    "mefree": (Mefree, MEFREE_API_KEY, MEFREE_API_SECRET),
}


@dataclass
class Env:
    sandbox: Sandbox
    urls: SandboxURLs

    def provider(self, name: str, **overrides: Any) -> Provider:
        cls, key, secret = CREDENTIALS[name]
        fields = {"api_key": key, "api_secret": secret, "base_url": getattr(self.urls, name)}
        return cls(**(fields | overrides))

    def session(self, name: str, **options: Any) -> ProviderSession:
        options.setdefault("retry", FAST)
        options.setdefault("limiter", RateLimiter(10_000))
        return ProviderSession(self.provider(name), **options)

    def sim(self, name: str) -> ProviderSim:
        return self.sandbox.providers[name]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sandbox = Sandbox(seed=0, speed=100.0)
    async with sandbox.serve() as urls:
        yield Env(sandbox, urls)


# --- every endpoint -------------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_create_get_account_through_delivery(env: Env, name: str) -> None:
    target = env.sandbox.new_target()
    sim = env.sim(name)
    before = sim.balance_sun
    async with env.session(name) as session:
        order = await session.create_order(target=target, energy=65_000, client_order_id="e2e-1")
        assert (order.provider, order.client_order_id, order.target, order.energy) == (
            name,
            "e2e-1",
            target,
            65_000,
        )
        assert order.duration == "1h" and order.cost_sun and order.cost_sun > 0
        assert order.phase is OrderPhase.PENDING and order.raw
        env.sandbox.advance_blocks(5)
        later = await session.get_order(order.id)
        account = await session.account()
    assert later.id == order.id and later.status is OrderStatus.DELEGATE_SUCCESS
    assert later.confirm_status is ConfirmStatus.DELEGATION_CONFIRMED and later.delegate_hash
    assert later.phase is OrderPhase.CONFIRMED
    assert account.balance_sun == sim.balance_sun == before - order.cost_sun
    assert order.balance_after_sun == account.balance_sun
    assert sim.charges("e2e-1") == 1


async def test_catfee_quote_matches_what_the_order_costs(env: Env) -> None:
    async with env.session("catfee") as session:
        quote = await session.quote(energy=100_000)
        order = await session.create_order(target=env.sandbox.new_target(), energy=100_000)
    assert quote.cost_sun == order.cost_sun and quote.duration == "1h"


async def test_mefree_sells_by_transfers_and_long_durations(env: Env) -> None:
    async with env.session("mefree") as session:
        by_count = await session.create_order(
            target=env.sandbox.new_target(), transfers=2, duration="fast"
        )
        by_days = await session.create_order(
            target=env.sandbox.new_target(), energy=80_000, duration="3d"
        )
        with pytest.raises(NotSupported, match="unit"):
            await session.quote(energy=65_000)
    assert (by_count.transfers, by_count.energy, by_count.duration) == (2, 130_000, "fast")
    assert (by_days.energy, by_days.duration) == (80_000, "3d")
    assert env.sim("mefree").control.count("account") == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_refusals_are_typed_and_not_retried(env: Env, name: str) -> None:
    sim = env.sim(name)
    async with env.session(name) as session:
        with pytest.raises(OrderNotFound) as missing:
            await session.get_order("no-such-order")
        sim.balance_sun = 0
        with pytest.raises(InsufficientBalance) as broke:
            await session.create_order(target=env.sandbox.new_target(), energy=65_000)
        with pytest.raises(RequestRejected) as too_much:  # the sandbox's cap is below ours
            await session.create_order(target=env.sandbox.new_target(), energy=6_000_000)
    assert missing.value.provider == name and missing.value.attempts == 1
    assert broke.value.code is not None and broke.value.provider_message
    assert too_much.value.attempts == 1
    assert sim.control.count("create") == 2 and sim.charge_counts() == {}


# --- the fault matrix -------------------------------------------------------------------------

# After one fault on a create, the replay (same client_order_id) returns the one order.
ONE_FAULT = [
    Fault.LATENCY,
    Fault.RATE_LIMIT,
    Fault.SERVER_ERROR,
    Fault.BAD_GATEWAY,
    Fault.LOST_RESPONSE,
    Fault.HTML_BODY,
    Fault.NON_JSON,
    Fault.TRUNCATED_JSON,
    Fault.HUGE_BODY,
    Fault.WRONG_TYPES,
]
PARAMS: dict[Fault, dict[str, Any]] = {
    Fault.LATENCY: {"delay": 0.02},
    Fault.RATE_LIMIT: {"retry_after": 0},
    Fault.HUGE_BODY: {"size": 2 * 1024 * 1024},
}
# Reads retry what is transient; a body that is not the documented JSON is a BadResponse.
READ_RECOVERS = {
    Fault.LATENCY,
    Fault.RATE_LIMIT,
    Fault.SERVER_ERROR,
    Fault.BAD_GATEWAY,
    Fault.LOST_RESPONSE,
}


@pytest.mark.parametrize("fault", ONE_FAULT)
@pytest.mark.parametrize("name", PROVIDERS)
async def test_one_fault_on_create_still_buys_exactly_once(
    env: Env, name: str, fault: Fault
) -> None:
    sim = env.sim(name)
    sim.control.faults.inject(fault, endpoint="create", **PARAMS.get(fault, {}))
    async with env.session(name) as session:
        request = session.prepare(target=env.sandbox.new_target(), energy=65_000)
        order = await session.place(request)
    assert order.client_order_id == request.client_order_id and order.energy == 65_000
    assert sim.charges(request.client_order_id) == 1
    assert len(sim.orders) == 1
    expected_requests = 1 if fault is Fault.LATENCY else 2
    assert sim.control.count("create") == expected_requests


@pytest.mark.parametrize("fault", ONE_FAULT)
@pytest.mark.parametrize("name", PROVIDERS)
async def test_one_fault_on_get_is_retried_or_typed(env: Env, name: str, fault: Fault) -> None:
    sim = env.sim(name)
    async with env.session(name) as session:
        placed = await session.create_order(target=env.sandbox.new_target(), energy=65_000)
        sim.control.faults.inject(fault, endpoint="get", **PARAMS.get(fault, {}))
        if fault in READ_RECOVERS:
            order = await session.get_order(placed.id)
            assert order.id == placed.id and order.client_order_id == placed.client_order_id
        else:
            with pytest.raises(BadResponse) as caught:
                await session.get_order(placed.id)
            assert caught.value.provider == name and caught.value.http_status == 200
            assert caught.value.path and placed.id in caught.value.path
    assert placed.client_order_id is not None and sim.charges(placed.client_order_id) == 1


@pytest.mark.parametrize(
    ("fault", "charged"),
    [(Fault.SERVER_ERROR, 0), (Fault.BAD_GATEWAY, 0), (Fault.LOST_RESPONSE, 1)],
)
@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_create_that_never_settles_is_outcome_unknown_then_reconciles(
    env: Env, name: str, fault: Fault, charged: int
) -> None:
    sim = env.sim(name)
    sim.control.faults.inject(fault, times=4, endpoint="create")
    async with env.session(name) as session:
        request = session.prepare(target=env.sandbox.new_target(), energy=65_000)
        with pytest.raises(OutcomeUnknown) as caught:
            await session.place(request)
        assert caught.value.client_order_id == request.client_order_id
        assert caught.value.attempts == 4 and sim.charges(request.client_order_id) == charged
        order = await session.place(request)  # the fault is gone: settle by the same id
    assert order.client_order_id == request.client_order_id
    assert sim.charges(request.client_order_id) == 1


@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_create_throttled_throughout_bought_nothing(env: Env, name: str) -> None:
    sim = env.sim(name)
    sim.control.faults.inject(Fault.RATE_LIMIT, times=4, endpoint="create", retry_after=0)
    async with env.session(name) as session:
        with pytest.raises(RateLimited) as caught:
            await session.create_order(target=env.sandbox.new_target(), energy=65_000)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 0 and caught.value.http_status == 429
    assert sim.control.count("create") == 4 and sim.charge_counts() == {}


async def test_an_unreachable_provider_is_outcome_unknown_for_creates_only(env: Env) -> None:
    sim = env.sim("catfee")
    sim.control.unreachable = True
    async with env.session("catfee") as session:
        with pytest.raises(OutcomeUnknown):
            await session.create_order(target=env.sandbox.new_target(), energy=65_000)
        with pytest.raises(EnergyError) as read:
            await session.get_order("x")
    assert not isinstance(read.value, OutcomeUnknown) and read.value.retryable
    assert sim.charge_counts() == {}


@pytest.mark.parametrize("name", PROVIDERS)
async def test_many_orders_under_random_faults_never_buy_twice(env: Env, name: str) -> None:
    sim = env.sim(name)
    for fault in (Fault.SERVER_ERROR, Fault.LOST_RESPONSE, Fault.TRUNCATED_JSON, Fault.RATE_LIMIT):
        sim.control.faults.set_rate(fault, 0.15, retry_after=0)
    outcomes: dict[str, Order | EnergyError] = {}
    async with env.session(name) as session:

        async def buy(index: int) -> None:
            request = session.prepare(
                target=env.sandbox.new_target(), energy=65_000, client_order_id=f"soak-{index}"
            )
            try:
                outcomes[request.client_order_id] = await session.place(request)
            except (OutcomeUnknown, RateLimited) as exc:
                outcomes[request.client_order_id] = exc

        async with anyio.create_task_group() as tasks:
            for index in range(40):
                tasks.start_soon(buy, index)
    assert len(outcomes) == 40
    assert max(sim.charge_counts().values()) == 1
    for cid, outcome in outcomes.items():
        if isinstance(outcome, Order):
            assert outcome.client_order_id == cid and sim.charges(cid) == 1
        elif isinstance(outcome, RateLimited):
            assert sim.charges(cid) == 0
    assert sum(isinstance(outcome, Order) for outcome in outcomes.values()) >= 30


# --- nothing is sent for bad input ---------------------------------------------------------------

BAD_INPUTS: list[tuple[str, dict[str, Any], type[InputError]]] = [
    ("catfee", {"target": "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2h"}, InvalidAddress),
    ("catfee", {"target": "0xfd49eda0f23ff7ec1d03b52c3a45991c24cd440e"}, InvalidAddress),
    ("mefree", {"target": "T" * 34}, InvalidAddress),
    ("mefree", {"target": ""}, InvalidAddress),
    ("catfee", {"energy": 64_999}, InvalidOrder),
    ("mefree", {"energy": 10**12}, InvalidOrder),
    ("catfee", {"duration": "1d"}, NotSupported),
    ("catfee", {"duration": "fast"}, NotSupported),
    ("mefree", {"duration": "2d"}, NotSupported),
    ("mefree", {"duration": "45d"}, NotSupported),
    ("catfee", {"energy": None, "transfers": 1}, NotSupported),
    ("mefree", {"transfers": 1}, InvalidOrder),  # both energy and transfers
    ("mefree", {"energy": None}, InvalidOrder),  # neither
    ("catfee", {"client_order_id": "x" * 65}, InvalidOrder),
    ("mefree", {"client_order_id": "a&quantity=1"}, InvalidOrder),
    ("mefree", {"client_order_id": ""}, InvalidOrder),
]


@pytest.mark.parametrize(("name", "change", "error"), BAD_INPUTS)
async def test_bad_input_raises_before_anything_is_sent(
    env: Env, name: str, change: dict[str, Any], error: type[InputError]
) -> None:
    order: dict[str, Any] = {"target": env.sandbox.new_target(), "energy": 65_000} | change
    async with env.session(name) as session:
        with pytest.raises(error):
            await session.create_order(**order)
        with pytest.raises(InvalidOrder):
            await session.get_order("../account")
        with pytest.raises(InvalidOrder):
            await session.quote(energy=1)
    assert env.sim(name).control.count() == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_missing_credentials_raise_before_anything_is_sent(env: Env, name: str) -> None:
    cls = CREDENTIALS[name][0]
    with pytest.raises(ConfigurationError, match=f"{name.upper()}_API_KEY"):
        cls.from_env(environ={}, base_url=getattr(env.urls, name))
    with pytest.raises(ConfigurationError):
        env.provider(name, api_secret="")
    assert env.sim(name).control.count() == 0


@pytest.mark.parametrize("name", PROVIDERS)
async def test_wrong_credentials_are_an_authentication_error(env: Env, name: str) -> None:
    from energy_async.errors import AuthenticationError

    provider = env.provider(name, api_secret="not-the-secret")
    async with ProviderSession(provider, retry=FAST, limiter=RateLimiter(10_000)) as session:
        with pytest.raises(AuthenticationError) as caught:
            await session.account()
    assert caught.value.http_status == 401 and env.sim(name).control.count() == 1
    assert "not-the-secret" not in str(caught.value)


# --- the clock ----------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [30.0, -30.0, 6.0])
@pytest.mark.parametrize("name", PROVIDERS)
async def test_a_provider_clock_far_off_ours_still_gets_valid_timestamps(
    env: Env, name: str, offset: float
) -> None:
    sim = env.sim(name)
    sim.clock_offset = offset
    async with env.session(name) as session:
        order = await session.create_order(target=env.sandbox.new_target(), energy=65_000)
        assert abs(session.clock_offset - offset) <= 1.0
        await session.get_order(order.id)
        await session.account()
    # One refused create (charged nothing) taught the offset; nothing else was refused.
    assert sim.control.count("create") == 2 and sim.control.count() == 4
    assert [record.status for record in sim.control.requests] == [401, 200, 200, 200]
    assert order.client_order_id is not None and sim.charges(order.client_order_id) == 1


# --- rate limit ---------------------------------------------------------------------------------


async def test_the_default_limiter_is_shared_by_sessions_of_one_key(env: Env) -> None:
    from energy_async._http import LOOPBACK_RATE
    from energy_async.providers import CatFee
    from energy_async.session import DEFAULT_RATE_LIMIT

    first = ProviderSession(env.provider("catfee"), retry=FAST)
    second = ProviderSession(env.provider("catfee"), retry=FAST)
    sandbox_url = env.provider("catfee").base_url
    other_key = ProviderSession(CatFee(api_key="other", api_secret="s", base_url=sandbox_url))
    mainnet = ProviderSession(CatFee(api_key="k", api_secret="s"))
    async with first, second, other_key, mainnet:
        assert first._limiter is second._limiter
        assert first._limiter is not other_key._limiter
        # The sandbox is on loopback: no provider quota to respect there.
        assert first._limiter.rate == LOOPBACK_RATE
        # A provider's own host gets the conservative default.
        assert mainnet._limiter.rate == DEFAULT_RATE_LIMIT == 10.0
        async with anyio.create_task_group() as tasks:
            for index in range(13):
                tasks.start_soon(_missing, first if index % 2 else second)
    assert env.sim("catfee").control.count("get") == 13


async def _missing(session: ProviderSession) -> None:
    with pytest.raises(OrderNotFound):
        await session.get_order("nope")


# --- secrets and resources ---------------------------------------------------------------------


@pytest.mark.parametrize("name", PROVIDERS)
async def test_no_secret_in_any_repr_str_log_or_error(
    env: Env, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[str] = []
    prefix = "CF" if name == "catfee" else "MF"

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        sent.append(params.headers[f"{prefix}-ACCESS-SIGN"])

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    sim = env.sim(name)
    sim.control.faults.inject(Fault.SERVER_ERROR, endpoint="create")
    sim.control.faults.inject(Fault.HTML_BODY, endpoint="get")
    shown: list[str] = []
    caplog.set_level(logging.DEBUG)
    async with env.session(name, trace_configs=[trace]) as session:
        order = await session.create_order(target=env.sandbox.new_target(), energy=65_000)
        account = await session.account()
        errors: list[EnergyError] = []
        async with ProviderSession(env.provider(name, api_secret="wrong"), retry=FAST) as wrong:
            for call in (
                session.get_order(order.id),
                session.get_order("missing"),
                wrong.account(),
            ):
                try:
                    await call
                except EnergyError as exc:
                    errors.append(exc)
        shown += [repr(session), str(session), repr(session.provider), str(session.provider)]
        shown += [repr(order), repr(account), str(account.raw)]
    shown += [text for exc in errors for text in (str(exc), repr(exc), exc.message)]
    shown += [record.getMessage() for record in caplog.records]
    assert len(errors) == 3 and len(sent) >= 5
    assert any(record.name == "energy_async.session" for record in caplog.records)
    _, key, secret = CREDENTIALS[name]
    for text in shown:
        assert key not in text and secret not in text
        assert not any(signature in text for signature in sent)


async def test_sessions_close_their_connection_pool(env: Env) -> None:
    session = env.session("catfee")
    async with session:
        await session.account()
        client = session._client
    assert client is not None and client.closed and session.closed

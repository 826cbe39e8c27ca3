"""ProviderSession against scripted loopback servers: redirects, retries, timeouts, lifecycle.

Each server answers from a script, one entry per request, so a test states exactly what the
provider did and asserts exactly what the client sent.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from energy_async._http import CallMeter, RateLimiter
from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    ConfigurationError,
    DuplicateOrder,
    NetworkError,
    OutcomeUnknown,
    RateLimited,
    RequestRejected,
    ServiceUnavailable,
)
from energy_async.providers import CatFee, Mefree
from energy_async.session import ProviderSession, RetryPolicy, _ServerClock
from tests.loopback import serving

pytestmark = pytest.mark.anyio

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
FAST = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.0)
ORDER = {"id": "o-1", "receiver": TARGET, "quantity": 65_000, "status": "PAYMENT_SUCCESS"}


def ok(data: Any = ORDER) -> web.Response:
    return web.json_response({"code": 0, "msg": "success", "data": data})


def status(code: int, headers: dict[str, str] | None = None, text: str = "") -> web.Response:
    return web.Response(status=code, text=text, headers=headers)


@dataclass
class Script:
    """Answers in order (the last one repeats); records what each request looked like."""

    answers: list[Callable[[], web.StreamResponse] | float]
    requests: list[web.Request] = field(default_factory=list)
    raw_paths: list[str] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request)
        self.raw_paths.append(request.raw_path)
        self.stamps.append(request.headers.get("CF-ACCESS-TIMESTAMP", ""))
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, float):  # hang: the client's timeout fires after sending
            await asyncio.sleep(answer)
            return ok()
        return answer()


@asynccontextmanager
async def serve(script: Script) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", script.handle)
    async with serving(app, shutdown_timeout=0.1) as url:
        yield url


def session_for(url: str, **options: Any) -> ProviderSession:
    options.setdefault("retry", FAST)
    options.setdefault("limiter", RateLimiter(10_000))
    return ProviderSession(CatFee(api_key="key", api_secret="secret", base_url=url), **options)


# --- redirects ------------------------------------------------------------------------------


async def test_redirects_are_refused_not_followed() -> None:
    elsewhere = Script([ok])
    async with serve(elsewhere) as evil:
        script = Script([lambda: status(302, {"Location": f"{evil}/steal"})])
        async with serve(script) as url, session_for(url) as session:
            with pytest.raises(BadResponse, match="redirect") as read:
                await session.get_order("o-1")
            with pytest.raises(BadResponse, match="redirect") as create:
                await session.create_order(target=TARGET, energy=65_000)
    assert elsewhere.requests == []
    assert len(script.requests) == 2  # neither call was retried
    assert read.value.http_status == create.value.http_status == 302


# --- retries --------------------------------------------------------------------------------


async def test_reads_retry_5xx_and_429_then_succeed() -> None:
    script = Script(
        [
            lambda: status(500),
            lambda: status(502, text="<html>502 Bad Gateway</html>"),
            lambda: status(429, {"Retry-After": "0"}),
            ok,
        ]
    )
    meter = CallMeter()
    async with serve(script) as url, session_for(url) as session:
        order = await session.get_order("o-1", meter=meter)
    assert order.id == "o-1"
    assert meter.calls == len(script.requests) == 4
    assert len(set(script.stamps)) >= 2  # each attempt re-signed (ms timestamps)


async def test_reads_give_up_with_the_last_error_and_the_attempt_count() -> None:
    script = Script([lambda: status(503)])
    async with serve(script) as url, session_for(url) as session:
        with pytest.raises(ServiceUnavailable) as caught:
            await session.account()
    assert caught.value.attempts == 4 and caught.value.http_status == 503
    assert caught.value.path == "/v1/account" and len(script.requests) == 4


async def test_refusals_are_never_retried() -> None:
    refusal = {"code": 1004, "msg": "invalid receiver address", "data": None}
    script = Script([lambda: web.json_response(refusal)])
    async with serve(script) as url, session_for(url) as session:
        with pytest.raises(RequestRejected) as caught:
            await session.create_order(target=TARGET, energy=65_000)
    assert len(script.requests) == 1
    assert caught.value.code == 1004 and caught.value.provider_message == "invalid receiver address"


async def test_retry_after_is_honoured() -> None:
    script = Script([lambda: status(429, {"Retry-After": "0.3"}), ok])
    async with serve(script) as url, session_for(url) as session:
        started = time.monotonic()
        await session.get_order("o-1")
        waited = time.monotonic() - started
    assert 0.3 <= waited < 2.0 and len(script.requests) == 2


async def test_retry_after_beyond_the_cap_gives_up_at_once() -> None:
    script = Script([lambda: status(429, {"Retry-After": "3600"}), ok])
    policy = RetryPolicy(initial_delay=0.0, max_delay=0.0, max_retry_after=5.0)
    async with serve(script) as url, session_for(url, retry=policy) as session:
        with pytest.raises(RateLimited) as caught:
            await session.create_order(target=TARGET, energy=65_000)
    assert caught.value.retry_after == 3600 and len(script.requests) == 1


# --- the money rule on the wire ---------------------------------------------------------------


async def test_create_replays_carry_the_same_client_order_id_and_fresh_signatures() -> None:
    script = Script([lambda: status(500), lambda: status(502), ok])
    async with serve(script) as url, session_for(url) as session:
        request = session.prepare(target=TARGET, energy=65_000)
        order = await session.place(request)
    assert order.id == "o-1"
    assert len(script.raw_paths) == 3 and len(set(script.raw_paths)) == 1
    assert f"client_order_id={request.client_order_id}" in script.raw_paths[0]


async def test_create_timing_out_after_sending_is_outcome_unknown() -> None:
    script = Script([5.0])
    policy = RetryPolicy(max_attempts=2, initial_delay=0.0, max_delay=0.0)
    async with serve(script) as url, session_for(url, retry=policy, total_timeout=0.2) as session:
        request = session.prepare(target=TARGET, energy=65_000, client_order_id="mine-1")
        with pytest.raises(OutcomeUnknown) as caught:
            await session.place(request)
    assert caught.value.client_order_id == "mine-1" and caught.value.attempts == 2
    assert all("client_order_id=mine-1" in path for path in script.raw_paths)
    assert len(script.raw_paths) == 2


async def test_create_that_never_connected_is_a_network_error_not_unknown() -> None:
    async with serve(Script([ok])) as url:
        pass  # the port is free again: nothing listens there
    async with session_for(url) as session:
        with pytest.raises(NetworkError) as caught:
            await session.create_order(target=TARGET, energy=65_000)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.attempts == 4 and "could not connect" in caught.value.message


async def test_a_replay_refused_before_the_id_is_looked_up_leaves_the_outcome_unknown() -> None:
    refusal = {"code": 2, "msg": "Invalid API Key", "data": None}
    script = Script([lambda: status(502), lambda: web.json_response(refusal, status=401)])
    async with serve(script) as url, session_for(url) as session:
        with pytest.raises(OutcomeUnknown) as caught:
            await session.create_order(target=TARGET, energy=65_000, client_order_id="c-7")
        with pytest.raises(AuthenticationError):  # nothing may have been bought: the refusal
            await session.create_order(target=TARGET, energy=65_000)
    assert caught.value.client_order_id == "c-7" and caught.value.attempts == 2
    assert type(caught.value.__cause__) is AuthenticationError
    assert len(script.requests) == 3


async def test_a_replay_for_another_order_is_a_duplicate_not_a_purchase() -> None:
    earlier = {**ORDER, "client_order_id": "reused", "quantity": 90_000}
    script = Script([lambda: ok(earlier)])
    async with serve(script) as url, session_for(url) as session:
        with pytest.raises(DuplicateOrder, match="o-1"):
            await session.create_order(target=TARGET, energy=65_000, client_order_id="reused")
    assert len(script.requests) == 1


async def test_a_clock_refusal_is_retried_once_on_the_servers_clock() -> None:
    refusal = {"code": 4, "msg": "Timestamp deviation exceeds 5 seconds", "data": None}
    ahead = time.time() + 40

    def skewed() -> web.Response:
        response = web.json_response(refusal, status=401)
        response.headers["Date"] = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(ahead))
        return response

    script = Script([skewed])
    async with serve(script) as url, session_for(url) as session:
        with pytest.raises(AuthenticationError) as caught:
            await session.get_order("o-1")
        assert 38 < session.clock_offset < 42
    assert type(caught.value) is AuthenticationError  # the public class, not a private one
    assert len(script.requests) == 2  # retried once, not forever
    assert script.stamps[0] != script.stamps[1]


# --- lifecycle ----------------------------------------------------------------------------------


async def test_closed_sessions_refuse_to_reopen() -> None:
    async with serve(Script([ok])) as url:
        session = session_for(url)
        async with session:
            await session.get_order("o-1")
        assert session.closed
        with pytest.raises(ConfigurationError, match="closed"):
            await session.get_order("o-1")
        with pytest.raises(ConfigurationError, match="closed"):
            await session.__aenter__()


async def test_a_users_client_session_is_used_and_left_open() -> None:
    started: list[str] = []

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        started.append(params.url.raw_path)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with serve(Script([ok])) as url, aiohttp.ClientSession(trace_configs=[trace]) as mine:
        async with session_for(url, session=mine) as session:
            await session.get_order("o-1")
        assert not mine.closed
        assert started == ["/v1/order/o-1"]


async def test_trace_configs_reach_the_session_we_create() -> None:
    ended: list[int] = []

    async def on_end(_: Any, __: Any, params: aiohttp.TraceRequestEndParams) -> None:
        ended.append(params.response.status)

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    async with serve(Script([ok])) as url, session_for(url, trace_configs=[trace]) as session:
        await session.get_order("o-1")
    assert ended == [200]


def test_options_are_checked_up_front() -> None:
    provider = CatFee(api_key="key", api_secret="secret")
    with pytest.raises(ConfigurationError):
        ProviderSession(provider, total_timeout=0)
    with pytest.raises(ConfigurationError):
        ProviderSession("catfee")  # type: ignore[arg-type]


def test_sessions_of_one_key_share_one_rate_limiter() -> None:
    a = ProviderSession(CatFee(api_key="key-a", api_secret="s"))
    b = ProviderSession(CatFee(api_key="key-a", api_secret="other"))
    c = ProviderSession(CatFee(api_key="key-c", api_secret="s"))
    d = ProviderSession(Mefree(api_key="key-a", api_secret="s"))
    assert a._limiter is b._limiter
    assert len({id(a._limiter), id(c._limiter), id(d._limiter)}) == 3
    own = RateLimiter(50)
    assert ProviderSession(CatFee(api_key="key-a", api_secret="s"), limiter=own)._limiter is own


def test_repr_shows_no_secret() -> None:
    session = ProviderSession(CatFee(api_key="k-123", api_secret="s-456"))
    assert "k-123" not in repr(session) and "s-456" not in repr(session)
    assert "api.catfee.io" in repr(session)


# --- the clock ------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.5, 0.75, 0.999])
@pytest.mark.parametrize(
    ("ahead", "expected"), [(30.0, 30.0), (-30.0, -30.0), (-7.0, -7.0), (0.0, 0.0), (0.4, 0.0)]
)
def test_clock_offset_from_date(fraction: float, ahead: float, expected: float) -> None:
    """``Date`` truncates to the second: the estimate is within 0.5 s, and 0 when close."""
    clock = _ServerClock()
    now = 1_700_000_000 + fraction
    clock.observe(email.utils.formatdate(now + ahead, usegmt=True), now)
    assert abs(clock.offset - expected) <= 0.5 + 1e-6
    assert (clock.offset == 0.0) == (expected == 0.0)


@pytest.mark.parametrize("date", [None, "", "yesterday", "Mon, 99 Foo 2024 99:99:99 GMT"])
def test_unreadable_dates_leave_the_clock_alone(date: str | None) -> None:
    clock = _ServerClock()
    clock.offset = 12.0
    clock.observe(date, time.time())
    assert clock.offset == 12.0

"""The shared HTTP plumbing: Retry-After, backoff, base-URL safety, rate limiting, body cap."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import NoReturn

import aiohttp
import anyio
import pytest
from aiohttp import web

from energy_async import BadResponse, ConfigurationError, _http
from energy_async._http import (
    LOOPBACK_RATE,
    RateLimiter,
    RetryPolicy,
    Step,
    check_base_url,
    default_rate,
    parse_retry_after,
    read_capped,
    retry_loop,
    shared_limiter,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("1", 1.0),
        ("  2 ", 2.0),
        ("1.5", 1.5),
        ("-3", 0.0),  # a negative wait is no wait
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # an HTTP date 10 s after NOW
        ("Tue, 14 Nov 2023 22:13:10 GMT", 0.0),  # already past
        ("Tue, 14 Nov 2023 22:13:30", None),  # no zone: ambiguous, ignored
        ("Tue, 32 Nov 2023 22:13:30 GMT", None),
    ],
)
def test_retry_after_parsing(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_backoff_grows_caps_and_jitters_downward_only() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=8.0, jitter=0.25)
    assert [policy.backoff(n, rng=lambda: 0.0) for n in (1, 2, 3, 4, 5, 6)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        8.0,
    ]
    assert policy.backoff(3, rng=lambda: 1.0) == 1.5  # at most 25 % shorter, never longer


def test_retry_after_wins_when_longer_and_gives_up_when_too_long() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_retry_after=60.0, jitter=0.0)
    assert policy.delay(1, None) == 0.5
    assert policy.delay(1, 3.0) == 3.0
    assert policy.delay(4, 1.0) == 4.0  # backoff already longer
    assert policy.delay(1, 61.0) is None


@pytest.mark.parametrize(
    "bad", [{"max_attempts": 0}, {"initial_delay": -1}, {"jitter": 1.5}, {"max_delay": -0.1}]
)
def test_retry_policy_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.catfee.io",
        "https://api.catfee.io/",
        "http://127.0.0.1:8765/catfee",
        "http://localhost:1",
        "http://[::1]:8080",
        "http://127.3.2.1",
    ],
)
def test_safe_base_urls_are_accepted(url: str) -> None:
    assert str(check_base_url(url, what="x")).rstrip("/") == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    [
        "http://api.catfee.io",  # clear text to a remote host would expose signed headers
        "http://10.0.0.1",
        "ftp://127.0.0.1",
        "api.catfee.io",
        "https://user:pass@api.catfee.io",
        "https://api.catfee.io/?x=1",
        "https://api.catfee.io/#frag",
        "",
    ],
)
def test_unsafe_base_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_base_url(url, what="base_url")


def test_default_rate_is_the_remote_quota_except_on_loopback() -> None:
    assert default_rate("https://api.trongrid.io", 3.0) == 3.0
    assert default_rate("http://127.0.0.1:9", 3.0) == LOOPBACK_RATE


@pytest.mark.anyio
async def test_rate_limiter_allows_a_burst_then_paces() -> None:
    limiter = RateLimiter(rate=20.0, burst=5)
    started = time.monotonic()
    for _ in range(5):
        await limiter.acquire()
    burst = time.monotonic() - started
    for _ in range(4):
        await limiter.acquire()
    paced = time.monotonic() - started
    assert burst < 0.05
    assert paced >= 4 / 20.0 * 0.9  # four more at 20/s


@pytest.mark.anyio
async def test_rate_limiter_shared_by_many_tasks_keeps_the_rate() -> None:
    limiter = RateLimiter(rate=50.0, burst=1)
    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(11):
            group.start_soon(limiter.acquire)
    assert time.monotonic() - started >= 10 / 50.0 * 0.9


def test_rate_limiter_refuses_a_non_positive_rate() -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(0)


@pytest.fixture
async def body_server() -> AsyncIterator[str]:
    async def big(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to trust
        await response.prepare(request)
        for _ in range(40):
            await response.write(b"x" * 1024)
        return response

    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b'{"ok": true}')

    app = web.Application()
    app.router.add_get("/big", big)
    app.router.add_get("/small", small)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.anyio
async def test_read_capped_reads_whole_bodies_and_stops_hostile_ones(body_server: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(body_server + "/small") as response:
            assert await read_capped(response, limit=100) == b'{"ok": true}'
        async with session.get(body_server + "/big") as response:
            assert len(await read_capped(response, limit=64 * 1024)) == 40 * 1024
        async with session.get(body_server + "/big") as response:
            with pytest.raises(BadResponse, match="cap"):
                await read_capped(response, limit=10 * 1024)


# --- the one retry loop and the limiter registry ---------------------------------------------

INSTANT = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)


class _Flaky(Exception):
    pass


def _retry_flaky(exc: Exception, attempt: int) -> Step | None:
    return Step(exc, again=True) if isinstance(exc, _Flaky) else None


def _reraise(error: BaseException) -> NoReturn:
    raise error


@pytest.mark.anyio
async def test_retry_loop_retries_what_classify_allows_until_it_succeeds() -> None:
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        if n < 3:
            raise _Flaky(n)
        return "ok"

    assert await retry_loop(INSTANT, attempt, _retry_flaky, _reraise) == "ok"
    assert seen == [1, 2, 3]


@pytest.mark.anyio
async def test_retry_loop_gives_up_after_the_policy_budget() -> None:
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        raise _Flaky(n)

    with pytest.raises(_Flaky) as raised:
        await retry_loop(INSTANT, attempt, _retry_flaky, _reraise)
    assert seen == [1, 2, 3] and raised.value.args == (3,)


@pytest.mark.anyio
async def test_retry_loop_raises_unclassified_errors_at_once() -> None:
    seen: list[int] = []

    async def attempt(n: int) -> str:
        seen.append(n)
        raise KeyError("not ours")

    with pytest.raises(KeyError):
        await retry_loop(INSTANT, attempt, _retry_flaky, _reraise)
    assert seen == [1]


@pytest.mark.anyio
async def test_retry_loop_gives_up_with_the_steps_error_and_retries_now_beyond_budget() -> None:
    seen: list[int] = []
    replacement = ValueError("what to raise instead")

    async def attempt(n: int) -> str:
        seen.append(n)
        raise _Flaky(n)

    def classify(exc: Exception, n: int) -> Step:
        # Four immediate retries (more than the budget of 3), then a final answer.
        return Step(exc, now=True) if n <= 4 else Step(replacement)

    with pytest.raises(ValueError) as raised:
        await retry_loop(INSTANT, attempt, classify, _reraise)
    assert raised.value is replacement and seen == [1, 2, 3, 4, 5]


def test_shared_limiter_is_one_per_service_url_key_and_rate() -> None:
    first = shared_limiter("svc-test", "https://a.example", "key-1", 5.0)
    assert shared_limiter("svc-test", "https://a.example", "key-1", 5.0) is first
    others = [
        shared_limiter("svc-other", "https://a.example", "key-1", 5.0),
        shared_limiter("svc-test", "https://b.example", "key-1", 5.0),
        shared_limiter("svc-test", "https://a.example", "key-2", 5.0),
        shared_limiter("svc-test", "https://a.example", None, 5.0),
        shared_limiter("svc-test", "https://a.example", "key-1", 6.0),
    ]
    assert all(other is not first for other in others)
    assert len({id(other) for other in others}) == len(others)
    # The registry keeps a hash of the key, never the key itself.
    assert not any("key-1" in repr(slot) for slot in _http._LIMITERS)

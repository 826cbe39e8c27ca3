"""The adaptive rate limiter: the AIMD decision as a table, the limiter's state around it, and
the retry loop that tells it what each answer said."""

from __future__ import annotations

import math
from typing import NoReturn

import anyio
import anyio.lowlevel
import pytest

from energy_async import _http
from energy_async._http import Aimd, Outcome, RateLimiter, RetryPolicy, Step, adapt, retry_loop
from energy_async.errors import (
    BadResponse,
    ConfigurationError,
    NetworkError,
    NodeError,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)

POLICY = Aimd(ceiling=16.0, floor=4.0, increase=1.0)
SERVED, THROTTLED = Outcome.SERVED, Outcome.THROTTLED


class VirtualClock:
    """Time that passes only when the limiter waits: pacing without sleeping. For one task at
    a time (concurrent sleepers would each move it on)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize(
    ("rate", "outcome", "since_cut", "expected"),
    [
        (16.0, THROTTLED, math.inf, 8.0),  # halved
        (8.0, THROTTLED, 1.0, 4.0),  # a cooldown after the last cut: halved again
        (8.0, THROTTLED, 0.99, 8.0),  # within the cooldown: the same burst, already answered
        (6.0, THROTTLED, 5.0, 4.0),  # never below the floor
        (4.0, THROTTLED, 5.0, 4.0),  # at the floor it stays
        (4.0, SERVED, 0.0, 4.25),  # +increase/rate: +1 req/s per second of traffic
        (8.0, SERVED, 0.0, 8.125),
        (15.95, SERVED, 9.0, 16.0),  # capped at the ceiling
        (16.0, SERVED, 9.0, 16.0),
    ],
)
def test_aimd_decision(rate: float, outcome: Outcome, since_cut: float, expected: float) -> None:
    assert adapt(rate, outcome, since_cut, POLICY) == pytest.approx(expected)


def test_default_policy_floor_and_growth_scale_with_the_ceiling() -> None:
    assert Aimd.for_ceiling(10.0) == Aimd(ceiling=10.0, floor=2.5, increase=0.625)
    assert Aimd.for_ceiling(15.0, floor=15.0).floor == 15.0  # a fixed limiter
    for floor in (0.0, -1.0, 16.0):
        with pytest.raises(ConfigurationError):
            Aimd.for_ceiling(15.0, floor=floor)


@pytest.mark.parametrize("rate", [0.0, -1.0, math.nan, math.inf])
def test_rate_limiter_refuses_a_rate_that_is_not_a_positive_number(rate: float) -> None:
    with pytest.raises(ConfigurationError):
        RateLimiter(rate)


@pytest.mark.parametrize(
    ("error", "throttle"),
    [
        (RateLimited("429", http_status=429), True),
        (RateLimited("TronGrid 403", http_status=403), True),
        (ServiceUnavailable("busy", http_status=503), True),
        (ServiceUnavailable("broken", http_status=500), False),
        (ServiceUnavailable("bad gateway", http_status=502), False),
        (NodeError("TronGrid node is busy", retryable=True), True),  # lack of computing resources
        (NodeError("TronGrid node answered an error"), False),
        (NetworkError("reset"), False),  # says nothing about the pace
        (BadResponse("html"), False),
        (ProviderError("refused"), False),
    ],
)
def test_what_counts_as_throttling(error: Exception, throttle: bool) -> None:
    assert _http.is_throttle(error) is throttle


def test_limiter_halves_once_per_cooldown_down_to_the_floor_and_grows_back() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(16.0, clock=clock, sleep=clock.sleep)
    assert (limiter.rate, limiter.ceiling, limiter.policy.floor) == (16.0, 16.0, 4.0)
    for _ in range(5):  # one burst of 429s: one cut
        limiter.observe(THROTTLED)
    assert limiter.rate == 8.0
    clock.now += 1.0
    limiter.observe(THROTTLED)
    clock.now += 1.0
    limiter.observe(THROTTLED)
    assert limiter.rate == 4.0  # the floor
    for _ in range(200):
        limiter.observe(SERVED)
    assert limiter.rate == 16.0  # back at the ceiling, not beyond


def test_fixed_limiter_never_moves() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(30.0, floor=30.0, clock=clock)
    for _ in range(3):
        limiter.observe(THROTTLED)
        clock.now += 2.0
    assert limiter.rate == 30.0


@pytest.mark.anyio
async def test_a_cut_spends_the_saved_burst_and_paces_at_the_new_rate() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(10.0, clock=clock, sleep=clock.sleep)
    limiter.observe(THROTTLED)  # a full bucket of 10 tokens, and the key says "too fast"
    assert limiter.rate == 5.0
    for _ in range(5):
        await limiter.acquire()
    assert clock.now == pytest.approx(1.0)  # five at 5/s: one second, no burst


@pytest.mark.anyio
async def test_limiter_paces_on_its_clock_at_any_rate() -> None:
    clock = VirtualClock()
    limiter = RateLimiter(20.0, burst=5, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await limiter.acquire()
    assert clock.now == 0.0  # the burst
    for _ in range(20):
        await limiter.acquire()
    assert clock.now == pytest.approx(1.0)  # twenty more at 20/s


class Recorder(RateLimiter):
    def __init__(self) -> None:
        super().__init__(100.0)
        self.seen: list[Outcome] = []

    def observe(self, outcome: Outcome) -> None:
        self.seen.append(outcome)


@pytest.mark.anyio
async def test_retry_loop_tells_the_limiter_each_answer() -> None:
    answers: list[Exception | None] = [
        RateLimited("429", http_status=429),
        NetworkError("reset"),
        NodeError("TronGrid node is busy", retryable=True),
        None,
    ]

    async def attempt(n: int) -> int:
        answer = answers[n - 1]
        if answer is not None:
            raise answer
        return n

    def classify(error: Exception, attempt: int) -> Step:
        return Step(error, again=True)

    def give_up(error: BaseException) -> NoReturn:
        raise error

    limiter = Recorder()
    policy = RetryPolicy(max_attempts=4, initial_delay=0.0, max_delay=0.0)
    assert await retry_loop(policy, attempt, classify, give_up, limiter=limiter) == 4
    assert limiter.seen == [THROTTLED, THROTTLED, SERVED]  # the reset says nothing


def test_shared_limiter_takes_a_registry_of_its_own() -> None:
    registry: dict[tuple[str, str, str | None, float], RateLimiter] = {}
    mine = _http.shared_limiter("svc-reg", "https://a.example", "k", 5.0, registry)
    assert _http.shared_limiter("svc-reg", "https://a.example", "k", 5.0, registry) is mine
    assert _http.shared_limiter("svc-reg", "https://a.example", "k", 5.0) is not mine
    assert len(registry) == 1

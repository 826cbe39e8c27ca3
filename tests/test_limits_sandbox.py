"""The adaptive limiter against a sandbox that throttles above a quota, as a real key does.

The limiter and the sandbox's quota read one virtual clock that moves only when the limiter
waits, so "requests per second" is exact and the test does not sleep. One task sends, so that
the clock moves exactly as the limiter asks (sharing between tasks is `test_http_limits`').
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from energy_async import _http
from energy_async._http import RateLimiter, RetryPolicy
from energy_async.providers import CatFee
from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox, SandboxURLs
from energy_async.sandbox.faults import Fault, FaultPlan
from energy_async.session import ProviderSession
from energy_async.verifier import Verifier
from tests.test_http_limits import VirtualClock

pytestmark = pytest.mark.anyio

QUOTA = 20  # requests per second the key really allows
CEILING = 60.0  # what the client was configured with: three times too many
ORDERS = 150
READS = 300
CONCURRENCY = 1
WARM_UP = 2.0  # virtual seconds: the first full bucket meets the quota, then one cut
# Throttled answers carry Retry-After: 0, so a retry waits only for the limiter.
PATIENT = RetryPolicy(max_attempts=200, initial_delay=0.0, max_delay=0.0, max_retry_after=1)


class WarmUpClock(VirtualClock):
    """Notes how many requests the quota had refused when the warm-up ended."""

    def __init__(self, plan: FaultPlan) -> None:
        super().__init__()
        self.plan = plan
        self.refused_at_warm_up: int | None = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.now >= WARM_UP and self.refused_at_warm_up is None:
            self.refused_at_warm_up = self.plan.quota_refused


@pytest.fixture
async def urls() -> AsyncIterator[tuple[Sandbox, SandboxURLs]]:
    sandbox = Sandbox(seed=3, speed=0.0)
    async with sandbox.serve() as served:
        yield sandbox, served


async def place_all(sandbox: Sandbox, url: str, limiter: RateLimiter) -> list[str]:
    catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=url)
    placed: list[str] = []
    async with ProviderSession(catfee, retry=PATIENT, limiter=limiter) as session:
        requests = [
            session.prepare(target=sandbox.new_target(), energy=65_000) for _ in range(ORDERS)
        ]
        pending = iter(requests)

        async def worker() -> None:
            for request in pending:
                order = await session.place(request)
                placed.append(order.client_order_id)

        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENCY):
                group.start_soon(worker)
    return placed


async def test_provider_quota_the_adaptive_limiter_settles_under_it(
    urls: tuple[Sandbox, SandboxURLs],
) -> None:
    sandbox, served = urls
    plan = sandbox.catfee.control.faults
    refused: dict[str, int] = {}
    after_warm_up: dict[str, int] = {}
    for name, floor in (("fixed", CEILING), ("adaptive", None)):
        clock = WarmUpClock(plan)
        plan.set_quota(QUOTA, clock=clock, retry_after=0)
        limiter = RateLimiter(CEILING, floor=floor, clock=clock, sleep=clock.sleep)
        before = sandbox.catfee.control.count()
        placed = await place_all(sandbox, served.catfee, limiter)
        sent = sandbox.catfee.control.count() - before
        refused[name] = plan.quota_refused
        assert clock.refused_at_warm_up is not None
        after_warm_up[name] = refused[name] - clock.refused_at_warm_up
        # Every order settled, each bought exactly once whatever the throttling.
        assert len(placed) == len(set(placed)) == ORDERS
        assert all(sandbox.catfee.charges(cid) == 1 for cid in placed)
        assert sent == ORDERS + refused[name]  # one served create per order, the rest 429s
        if name == "adaptive":
            assert limiter.rate < CEILING  # it learned the key's limit is lower
            # Converged: the pace that was served is close to the quota, not far below it.
            assert ORDERS / clock.now > 0.6 * QUOTA
    # The fixed limiter sends two of every three requests into a 429 all along; the adaptive
    # one meets the quota with its first full bucket, then hardly again.
    assert refused["fixed"] > 2 * ORDERS and after_warm_up["fixed"] > ORDERS
    assert refused["adaptive"] < refused["fixed"] / 5
    assert after_warm_up["adaptive"] <= 0.05 * ORDERS


async def test_trongrid_quota_every_read_is_answered_and_few_are_throttled(
    urls: tuple[Sandbox, SandboxURLs], monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox, served = urls
    clock = VirtualClock()
    sandbox.trongrid.faults.set_quota(QUOTA, clock=clock, retry_after=0)
    limiter = RateLimiter(CEILING, clock=clock, sleep=clock.sleep)
    # The Verifier takes its limiter from the process registry: give it one of ours.
    monkeypatch.setattr(_http, "_LIMITERS", {("trongrid", served.trongrid, None, CEILING): limiter})
    targets = [sandbox.new_target() for _ in range(READS)]
    answered: list[bool] = []
    async with Verifier(
        base_url=served.trongrid, api_key="", rate_limit=CEILING, retry=PATIENT
    ) as v:
        assert v._limiter is limiter
        pending = iter(targets)

        async def worker() -> None:
            for target in pending:
                answered.append((await v.snapshot(target)).exists)

        async with anyio.create_task_group() as group:
            for _ in range(CONCURRENCY):
                group.start_soon(worker)
    assert len(answered) == READS
    assert sandbox.trongrid.faults.quota_refused < 0.15 * READS
    assert limiter.rate < CEILING


def test_quota_is_a_sliding_one_second_window_answered_as_each_service_throttles() -> None:
    clock = VirtualClock()
    plan = FaultPlan()
    plan.set_quota(3, clock=clock, retry_after=0)
    provider = frozenset({Fault.RATE_LIMIT})
    trongrid = frozenset({Fault.THROTTLE_429})
    assert [plan.draw("create", provider) for _ in range(3)] == [None, None, None]
    refused = plan.draw("create", provider)
    assert refused is not None and refused.fault is Fault.RATE_LIMIT
    assert refused.param("retry_after", 1) == 0
    clock.now = 0.5
    busy = plan.draw("getaccountresource", trongrid)
    assert busy is not None and busy.fault is Fault.THROTTLE_429
    clock.now = 1.0  # the first three left the window
    assert [plan.draw("create", provider) for _ in range(3)] == [None, None, None]
    assert plan.draw("create", provider) is not None
    assert plan.quota_refused == 3
    plan.set_quota(None)
    assert plan.draw("create", provider) is None and plan.quota_refused == 0

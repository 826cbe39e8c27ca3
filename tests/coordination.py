"""Shared staging for coordinator scenarios: a sandbox on a chain clock the test drives.

The chain clock is frozen (speed 0) and a ticker advances it one block at a time once the
first create has reached the provider, after an optional hook has run. That makes "between the
provider's broadcast and the next block" an exact moment a test can act in, with no sleeping
on a real clock and no race.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio

from energy_async import CatFee, Coordinator, Mefree, PollPolicy, ProviderSession, Verifier
from energy_async._http import RateLimiter, RetryPolicy
from energy_async.ledger import OrderLedger
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Sandbox,
    SandboxURLs,
)
from energy_async.sandbox.provider_core import ProviderSim

FAST_RETRY = RetryPolicy(max_attempts=3, initial_delay=0.005, max_delay=0.02, max_retry_after=1)
FAST_POLL = PollPolicy(initial_interval=0.01, max_interval=0.05, confirm_grace=0.3)
TICK = 0.01  # real seconds per block once the ticker runs


@dataclass
class Stage:
    sandbox: Sandbox
    urls: SandboxURLs
    catfee: Coordinator
    mefree: Coordinator

    def sim(self, provider: str) -> ProviderSim:
        return self.sandbox.catfee if provider == "catfee" else self.sandbox.mefree

    def coordinator(self, provider: str) -> Coordinator:
        return self.catfee if provider == "catfee" else self.mefree


@asynccontextmanager
async def stage(poll: PollPolicy = FAST_POLL, **sandbox_options: Any) -> AsyncIterator[Stage]:
    sandbox = Sandbox(seed=11, speed=0.0, **sandbox_options)
    async with sandbox.serve() as urls:
        limiter = RateLimiter(10_000)
        ledger = OrderLedger()  # this stage's orders only, shared by both providers
        catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee)
        mefree = Mefree(api_key=MEFREE_API_KEY, api_secret=MEFREE_API_SECRET, base_url=urls.mefree)
        async with (
            ProviderSession(catfee, retry=FAST_RETRY, limiter=limiter) as catfee_session,
            ProviderSession(mefree, retry=FAST_RETRY, limiter=limiter) as mefree_session,
            Verifier(base_url=urls.trongrid, retry=FAST_RETRY) as verifier,
        ):
            yield Stage(
                sandbox,
                urls,
                Coordinator(catfee_session, verifier, poll=poll, ledger=ledger),
                Coordinator(mefree_session, verifier, poll=poll, ledger=ledger),
            )


async def tick_after_create(
    sandbox: Sandbox, sim: ProviderSim, hook: Callable[[], None] | None = None
) -> None:
    """Wait for the first create to reach ``sim``, run ``hook``, then produce blocks forever."""
    # The sandbox offers no event for "a request arrived"; its counter is polled instead.
    while sim.control.count("create") == 0:  # noqa: ASYNC110
        await anyio.sleep(0.002)
    if hook is not None:
        hook()
    while True:
        await anyio.sleep(TICK)
        sandbox.chain.advance_blocks(1)

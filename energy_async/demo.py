"""``energy-async demo``: the whole job against an in-process sandbox, in a few seconds.

It buys from both providers and verifies each order on the (simulated) chain, then shows why
verification matters: a provider that reports ``DELEGATION_CONFIRMED`` without delegating
anything is caught as ``PROVIDER_MISMATCH``.
"""

from __future__ import annotations

import time
from typing import TextIO

import anyio

from energy_async.coordinator import Coordinator, PollPolicy
from energy_async.models import DeliveryResult, Verdict
from energy_async.providers import CatFee, Mefree, Provider
from energy_async.report import render_result
from energy_async.sandbox import (
    CATFEE_API_KEY,
    CATFEE_API_SECRET,
    MEFREE_API_KEY,
    MEFREE_API_SECRET,
    Delivery,
    Sandbox,
)
from energy_async.session import ProviderSession
from energy_async.verifier import Verifier

__all__ = ["DEMO_EXPECTED", "run_demo"]

# The verdicts the demo's three orders must reach; anything else is a bug worth reporting.
DEMO_EXPECTED = (Verdict.DELIVERED, Verdict.DELIVERED, Verdict.PROVIDER_MISMATCH)

_SPEED = 15.0  # chain clock: a block every 0.2 s
_POLL = PollPolicy(initial_interval=0.2, max_interval=0.6, confirm_grace=2.0)


async def run_demo(out: TextIO) -> list[DeliveryResult]:
    started = time.monotonic()
    sandbox = Sandbox(seed=2026, speed=_SPEED)
    async with sandbox.serve() as urls:
        print(
            "energy-async demo: a local sandbox of CatFee, Mefree and TronGrid on "
            f"{urls.trongrid.rsplit('/', 1)[0]} (chain clock {_SPEED:g}x)\n",
            file=out,
        )
        cheat = sandbox.mefree
        honest_target, cheated_target, catfee_target = (
            sandbox.new_target(),
            sandbox.new_target(),
            sandbox.new_target(),
        )
        cheat.delivery.for_target(cheated_target, Delivery.CLAIM_WITHOUT_DELEGATING)
        plan: list[tuple[str, Provider, str]] = [
            (
                "CatFee, 65,000 energy for 1h",
                CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=urls.catfee),
                catfee_target,
            ),
            (
                "Mefree, 65,000 energy for 1h",
                Mefree(api_key=MEFREE_API_KEY, api_secret=MEFREE_API_SECRET, base_url=urls.mefree),
                honest_target,
            ),
            (
                "Mefree again, set to claim delivery without delegating",
                Mefree(api_key=MEFREE_API_KEY, api_secret=MEFREE_API_SECRET, base_url=urls.mefree),
                cheated_target,
            ),
        ]
        results: list[DeliveryResult | None] = [None] * len(plan)
        async with Verifier(base_url=urls.trongrid) as verifier:

            async def buy(index: int, provider: Provider, target: str) -> None:
                async with ProviderSession(provider) as session:
                    coordinator = Coordinator(session, verifier, poll=_POLL)
                    results[index] = await coordinator.buy(
                        target=target, energy=65_000, duration="1h", deadline=15.0
                    )

            async with anyio.create_task_group() as group:
                for index, (_, provider, target) in enumerate(plan):
                    group.start_soon(buy, index, provider, target)
    done = [result for result in results if result is not None]
    for (title, _, _), result in zip(plan, done, strict=True):
        print(f"== {title}\n{render_result(result)}\n", file=out)
    verdicts = tuple(result.verdict for result in done)
    verdict_text = ", ".join(str(v) for v in verdicts)
    if verdicts == DEMO_EXPECTED:
        print(f"demo finished in {time.monotonic() - started:.1f} s: {verdict_text}", file=out)
    else:
        print(f"demo: unexpected verdicts {verdict_text}", file=out)
    return done

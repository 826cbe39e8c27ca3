"""The adaptive rate limiter against a key that allows fewer requests than it was told.

A sandbox provider throttles above ``--quota`` requests per second (a sliding one-second
window, HTTP 429 with ``Retry-After: 0`` so that the limiter alone sets the pace). Side by side
in one run, the same workers read the account through a ProviderSession whose limiter is set
``--over`` times above the quota: once fixed there, once adaptive (AIMD, `energy_async._http`).
Printed per limiter: requests sent, 429s received, requests served per second, the rate the
limiter ended at.

    python benchmarks/bench_limits.py [--quota N] [--over X] [--seconds S] [--workers W]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import anyio
from _sandbox_process import source_version, write_results

from energy_async import CatFee, ProviderSession
from energy_async._http import RateLimiter, RetryPolicy
from energy_async.errors import RateLimited
from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox

RESULTS = Path(__file__).parent / "results" / "bench_limits.json"
# Throttled reads are retried at once (Retry-After: 0): the limiter's pace is all there is.
RETRY = RetryPolicy(max_attempts=1_000, initial_delay=0.0, max_delay=0.0, max_retry_after=1)


async def run(
    sandbox: Sandbox, url: str, limiter: RateLimiter, args: argparse.Namespace
) -> dict[str, Any]:
    """``args.workers`` tasks read the account for ``args.seconds``; what the provider saw."""
    seconds, workers = args.seconds, args.workers
    control = sandbox.catfee.control
    control.faults.set_quota(args.quota, retry_after=0)
    sent_before = control.count()
    catfee = CatFee(api_key=CATFEE_API_KEY, api_secret=CATFEE_API_SECRET, base_url=url)
    served = 0
    gave_up = 0
    async with ProviderSession(catfee, retry=RETRY, limiter=limiter) as session:
        stop = time.monotonic() + seconds

        async def worker() -> None:
            nonlocal served, gave_up
            while time.monotonic() < stop:
                try:
                    await session.account()
                except RateLimited:
                    gave_up += 1
                else:
                    served += 1

        started = time.monotonic()
        async with anyio.create_task_group() as group:
            for _ in range(workers):
                group.start_soon(worker)
        elapsed = time.monotonic() - started
    sent = control.count() - sent_before
    throttled = control.faults.quota_refused
    control.faults.set_quota(None)
    return {
        "requests_sent": sent,
        "throttled_429": throttled,
        "throttled_share": round(throttled / sent, 3) if sent else 0.0,
        "served_per_s": round(served / elapsed, 2),
        "sent_per_s": round(sent / elapsed, 2),
        "limiter_rate_at_end": round(limiter.rate, 2),
        "reads_given_up": gave_up,
        "seconds": round(elapsed, 2),
    }


async def main(args: argparse.Namespace) -> None:
    ceiling = args.quota * args.over
    source = source_version()
    sandbox = Sandbox(seed=0, speed=0.0)
    sandbox.catfee.control.keep_log = False
    rows: dict[str, Any] = {}
    async with sandbox.serve() as urls:
        for name, floor in (("fixed", ceiling), ("adaptive", None)):
            limiter = RateLimiter(ceiling, floor=floor)
            rows[name] = await run(sandbox, urls.catfee, limiter, args)
    print(
        f"quota {args.quota}/s, limiter ceiling {ceiling:g}/s, {args.workers} workers, "
        f"{args.seconds:g} s each"
    )
    print(f"{'limiter':<9} {'sent':>6} {'429s':>6} {'share':>6} {'served/s':>9} {'end rate':>9}")
    for name, row in rows.items():
        print(
            f"{name:<9} {row['requests_sent']:>6} {row['throttled_429']:>6} "
            f"{row['throttled_share']:>6.1%} {row['served_per_s']:>9.2f} "
            f"{row['limiter_rate_at_end']:>9.2f}"
        )
    result: dict[str, Any] = {
        "benchmark": "adaptive vs fixed rate limiter against a provider quota",
        "quota_per_s": args.quota,
        "limiter_ceiling_per_s": ceiling,
        "workers": args.workers,
        "seconds_each": args.seconds,
        "limiters": rows,
    }
    write_results(RESULTS, result, source)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quota", type=int, default=20)
    parser.add_argument("--over", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=8)
    anyio.run(main, parser.parse_args())

"""Readiness checks per second against the sandbox TronGrid, and TronGrid calls per check.

The sandbox runs in its own process (the server does not share the client's GIL) with one
sender holding USDT and energy, and receivers with and without USDT. The first check reads the
chain parameters and the token's decimals; every later one reads the account, its resources and
the simulated transfer (three calls; the sandbox, like java-tron by default, offers no
estimateenergy and is asked once).

    python benchmarks/bench_readiness.py [--n N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
from _sandbox_process import source_version, write_results

RESULTS = Path(__file__).parent / "results" / "bench_readiness.json"


def serve(conn: Connection) -> None:
    """Child process: a sandbox with a ready sender, until the parent says stop."""
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    from energy_async.sandbox import Sandbox
    from energy_async.sandbox.trc20 import USDT

    sandbox = Sandbox(seed=0, speed=0.0)
    sandbox.trongrid.keep_log = False
    chain = sandbox.chain
    sender = chain.new_account(balance_sun=100_000_000, energy_stake_sun=20_000_000_000)
    chain.trc20.mint(USDT, sender, 10**12)
    holder, newcomer = chain.new_address(), chain.new_address()
    chain.trc20.mint(USDT, holder, 1)
    async with sandbox.serve() as urls:
        conn.send((urls.trongrid, sender, holder, newcomer))
        await anyio.to_thread.run_sync(conn.recv)


async def measure(url: str, sender: str, receivers: list[str], n: int, c: int) -> dict[str, Any]:
    from energy_async import Verifier
    from energy_async.readiness import ReadinessChecker

    async with Verifier(base_url=url) as verifier:
        checker = ReadinessChecker(verifier)
        first = await checker.check(sender, receivers[0], "12.5")
        calls_before = verifier.calls
        remaining = n

        async def worker(index: int) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await checker.check(sender, receivers[index % len(receivers)], "12.5")

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for index in range(c):
                group.start_soon(worker, index)
        elapsed = time.perf_counter() - started
        return {
            "checks_per_s": round(n / elapsed, 1),
            "calls_first_check": first.calls,
            "calls_per_check_after": round((verifier.calls - calls_before) / n, 2),
            "state_first_check": first.state,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    source = source_version()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=serve, args=(child,), daemon=True)
    server.start()
    try:
        url, sender, holder, newcomer = parent.recv()
        figures = anyio.run(measure, url, sender, [holder, newcomer], args.n, args.concurrency)
    finally:
        parent.send("stop")
        server.join(10)
    result: dict[str, object] = {
        "benchmark": "readiness checks per second against the sandbox TronGrid",
        "n": args.n,
        "concurrency": args.concurrency,
        **figures,
    }
    write_results(RESULTS, result, source)
    print(result)


if __name__ == "__main__":
    main()

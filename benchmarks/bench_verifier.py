"""Snapshots per second against the sandbox TronGrid: energy_async's Verifier next to tronpy.

The sandbox runs in its own process so that the server does not share the clients' GIL. Both
clients read the same account from the same server, with the same concurrency and the same API
key header, in alternating rounds; the figures are the median rounds.

    python benchmarks/bench_verifier.py [--n N] [--concurrency C] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import anyio

RESULTS = Path(__file__).parent / "results" / "bench_verifier.json"
BENCH_KEY = "bench-key"  # a header both clients send; the sandbox ignores it
WARMUP = 50


def serve_sandbox(ready: Any, stop: Event) -> None:
    """Child process: a sandbox with one account holding delegated energy, until ``stop``."""
    asyncio.run(_serve(ready, stop))


async def _serve(ready: Any, stop: Event) -> None:
    from energy_async.sandbox import Sandbox

    sandbox = Sandbox(seed=0, speed=0.0)
    sandbox.trongrid.keep_log = False  # flat memory over long runs
    async with sandbox.serve() as urls:
        target = sandbox.new_target()
        pool = sandbox.chain.new_account(energy_stake_sun=10**15)
        sandbox.chain.delegate(pool, target, 6_851_000_000)
        sandbox.chain.advance_blocks(2)
        ready.put((urls.trongrid, target))
        await asyncio.to_thread(stop.wait)


async def drive(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    """Run ``call`` ``n`` times from ``concurrency`` workers; calls per second."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(concurrency):
            group.start_soon(worker)
    return n / (time.perf_counter() - started)


async def bench_verifier(url: str, target: str, n: int, concurrency: int) -> tuple[float, int]:
    from energy_async.verifier import Verifier

    # The rate limiter stays in the path (it is part of every call); its rate is set out of reach.
    async with Verifier(
        url, api_key=BENCH_KEY, rate_limit=1e9, max_connections=concurrency
    ) as verifier:
        energy = (await verifier.snapshot(target)).energy_limit
        await drive(lambda: verifier.snapshot(target), WARMUP, concurrency)
        return await drive(lambda: verifier.snapshot(target), n, concurrency), energy


async def bench_tronpy(url: str, target: str, n: int, concurrency: int) -> tuple[float, int]:
    from tronpy import AsyncTron
    from tronpy.providers import AsyncHTTPProvider

    # tronpy joins method paths onto the URL, so the base needs its trailing slash.
    client = AsyncTron(provider=AsyncHTTPProvider(url + "/", api_key=BENCH_KEY))
    try:
        energy = int((await client.get_account_resource(target)).get("EnergyLimit", 0))
        await drive(lambda: client.get_account_resource(target), WARMUP, concurrency)
        return await drive(lambda: client.get_account_resource(target), n, concurrency), energy
    finally:
        await client.close()


async def run(url: str, target: str, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"energy_async": [], "tronpy": []}
    benches = {"energy_async": bench_verifier, "tronpy": bench_tronpy}
    energies: set[int] = set()
    for number in range(rounds):
        order = list(benches) if number % 2 == 0 else list(reversed(benches))
        for name in order:
            rate, energy = await benches[name](url, target, n, concurrency)
            rates[name].append(rate)
            energies.add(energy)
    if len(energies) != 1:
        raise SystemExit(f"the clients disagree on EnergyLimit: {sorted(energies)}")
    ours, theirs = (statistics.median(rates[name]) for name in ("energy_async", "tronpy"))
    return {
        "benchmark": "snapshots per second against the sandbox TronGrid (getaccountresource)",
        "n_per_round": n,
        "rounds": rounds,
        "concurrency": concurrency,
        "energy_limit_read": energies.pop(),
        "energy_async_per_s": round(ours, 1),
        "tronpy_per_s": round(theirs, 1),
        "ratio": round(ours / theirs, 2),
        "rounds_per_s": {
            name: [round(rate, 1) for rate in values] for name, values in rates.items()
        },
        "versions": {
            "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("aiohttp", "msgspec", "httpx", "tronpy")},
        },
        "machine": f"{platform.system()} {platform.machine()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="snapshots per client per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    stop = context.Event()
    server = context.Process(target=serve_sandbox, args=(ready, stop), daemon=True)
    server.start()
    try:
        url, target = ready.get(timeout=30)
        result = anyio.run(run, url, target, args.n, args.concurrency, args.rounds)
    finally:
        stop.set()
        server.join(timeout=10)
    print(
        f"energy_async Verifier.snapshot   {result['energy_async_per_s']:>9.1f} /s\n"
        f"tronpy get_account_resource      {result['tronpy_per_s']:>9.1f} /s\n"
        f"ratio (energy_async / tronpy)    {result['ratio']:>9.2f}x\n"
        f"n={args.n} x {args.rounds} rounds, concurrency={args.concurrency}, "
        f"per-round: {result['rounds_per_s']}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

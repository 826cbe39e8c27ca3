"""Snapshots per second against the sandbox TronGrid: energy_async's Verifier next to baselines.

The baselines are what a user would otherwise write: a plain aiohttp loop and a plain httpx loop
(one POST and a JSON decode per snapshot, nothing else), and tronpy's ``AsyncTron``. They say
where the time goes: a gap between energy_async and plain aiohttp is ours; a gap between aiohttp
and httpx or tronpy is the HTTP stack's, not ours.

The sandbox runs in its own process so that the server does not share the clients' GIL. Every
client reads the same account from the same server, with the same concurrency and the same API
key header, in rotating rounds; the figures are the median rounds, at each concurrency asked for.

    python benchmarks/bench_verifier.py [--n N] [--concurrency C [C ...]] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import anyio
from _sandbox_process import source_version, write_results

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


_BODY_TEMPLATE = '{{"address": "{target}", "visible": true}}'


async def bench_aiohttp(url: str, target: str, n: int, concurrency: int) -> tuple[float, int]:
    import aiohttp

    body = _BODY_TEMPLATE.format(target=target).encode()
    headers = {"TRON-PRO-API-KEY": BENCH_KEY, "Content-Type": "application/json"}
    endpoint = url + "/wallet/getaccountresource"
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def snapshot() -> dict[str, Any]:
            async with http.post(endpoint, data=body, headers=headers) as response:
                result: dict[str, Any] = await response.json()
                return result

        energy = int((await snapshot()).get("EnergyLimit", 0))
        await drive(snapshot, WARMUP, concurrency)
        return await drive(snapshot, n, concurrency), energy


async def bench_httpx(url: str, target: str, n: int, concurrency: int) -> tuple[float, int]:
    import httpx

    body = _BODY_TEMPLATE.format(target=target).encode()
    headers = {"TRON-PRO-API-KEY": BENCH_KEY, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits) as http:

        async def snapshot() -> dict[str, Any]:
            response = await http.post("/wallet/getaccountresource", content=body, headers=headers)
            result: dict[str, Any] = response.json()
            return result

        energy = int((await snapshot()).get("EnergyLimit", 0))
        await drive(snapshot, WARMUP, concurrency)
        return await drive(snapshot, n, concurrency), energy


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


BENCHES = {
    "energy_async": bench_verifier,
    "aiohttp_plain": bench_aiohttp,
    "httpx_plain": bench_httpx,
    "tronpy": bench_tronpy,
}


async def run(url: str, target: str, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    rates: dict[str, list[float]] = {name: [] for name in BENCHES}
    energies: set[int] = set()
    for number in range(rounds):
        names = list(BENCHES)
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            rate, energy = await BENCHES[name](url, target, n, concurrency)
            rates[name].append(rate)
            energies.add(energy)
    if len(energies) != 1:
        raise SystemExit(f"the clients disagree on EnergyLimit: {sorted(energies)}")
    median = {name: statistics.median(values) for name, values in rates.items()}
    ours = median["energy_async"]
    return {
        "concurrency": concurrency,
        "energy_limit_read": energies.pop(),
        "per_s": {name: round(rate, 1) for name, rate in median.items()},
        "energy_async_over": {
            name: round(ours / rate, 2) for name, rate in median.items() if name != "energy_async"
        },
        "rounds_per_s": {
            name: [round(rate, 1) for rate in values] for name, values in rates.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="snapshots per client per round")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    source = source_version()
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    stop = context.Event()
    server = context.Process(target=serve_sandbox, args=(ready, stop), daemon=True)
    server.start()
    try:
        url, target = ready.get(timeout=30)
        levels = [
            anyio.run(run, url, target, args.n, level, args.rounds) for level in args.concurrency
        ]
    finally:
        stop.set()
        server.join(timeout=10)
    for level in levels:
        print(f"concurrency {level['concurrency']}:")
        for name, rate in level["per_s"].items():
            ratio = level["energy_async_over"].get(name)
            shown = f"  (energy_async is {ratio:.2f}x this)" if ratio else ""
            print(f"  {name:<14} {rate:>9.1f} snapshots/s{shown}")
    result: dict[str, object] = {
        "benchmark": "snapshots per second against the sandbox TronGrid (getaccountresource)",
        "n_per_round": args.n,
        "rounds": args.rounds,
        "levels": levels,
        "baseline_versions": {pkg: version(pkg) for pkg in ("httpx", "tronpy")},
    }
    write_results(RESULTS, result, source)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

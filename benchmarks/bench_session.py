"""What the session costs: create+get orders per second and client CPU per order.

The library's loop runs next to a minimal raw aiohttp loop that sends the same signed requests
(same URLs, same headers, ``json.loads`` and a dict lookup for the reply), against the same
sandbox in the same run. The sandbox runs in a child process, so ``time.process_time`` here
counts the client alone. Also: decoding one order response with msgspec (what the session does)
next to ``json.loads`` plus dict access.

    python benchmarks/bench_session.py [--orders N] [--concurrency C] [--repeats R]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import platform
import statistics
import sys
import time
import timeit
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import msgspec
from yarl import URL

from energy_async import CatFee, ProviderSession
from energy_async._http import RateLimiter
from energy_async.providers._base import decode_envelope

RESULTS = Path(__file__).parent / "results" / "bench_session.json"
ENERGY = 65_000


# --- the sandbox, in its own process ------------------------------------------------------------


def _serve_sandbox(conn: Connection) -> None:
    from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Sandbox

    async def main() -> None:
        sandbox = Sandbox(seed=0, speed=100.0)
        sandbox.catfee.control.keep_log = False  # keep the child's memory flat
        async with sandbox.serve() as urls:
            targets = [sandbox.new_target() for _ in range(64)]
            conn.send((str(urls.catfee), CATFEE_API_KEY, CATFEE_API_SECRET, targets))
            await anyio.to_thread.run_sync(conn.recv)  # until the parent says stop

    anyio.run(main)


# --- the two clients ---------------------------------------------------------------------------


class RawClient:
    """The least a correct client must do: sign, send the exact bytes, read one field."""

    def __init__(self, http: aiohttp.ClientSession, url: str, key: str, secret: str) -> None:
        base = URL(url)
        self.http = http
        self.origin = str(base.origin())
        self.prefix = base.raw_path.rstrip("/")
        self.key = key
        self.secret = secret.encode()

    async def call(self, method: str, path: str) -> Any:
        signed = self.prefix + path
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        digest = hmac.new(self.secret, f"{stamp}{method}{signed}".encode(), hashlib.sha256)
        headers = {
            "Content-Type": "application/json",
            "CF-ACCESS-KEY": self.key,
            "CF-ACCESS-SIGN": base64.b64encode(digest.digest()).decode(),
            "CF-ACCESS-TIMESTAMP": stamp,
        }
        url = URL(self.origin + signed, encoded=True)
        async with self.http.request(method, url, headers=headers) as response:
            body = await response.read()
        payload = json.loads(body)
        if payload["code"] != 0:
            raise RuntimeError(payload)
        return payload["data"]

    async def order(self, target: str) -> None:
        cid = f"raw-{uuid.uuid4().hex}"
        path = f"/v1/order?quantity={ENERGY}&receiver={target}&duration=1h&client_order_id={cid}"
        created = await self.call("POST", path)
        await self.call("GET", f"/v1/order/{created['id']}")


async def _measure(
    orders: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> dict[str, float]:
    """Wall time and this process's CPU for ``orders`` create+get pairs."""
    for index in range(min(20, orders)):  # warm the pool and the caches
        await one(index)
    limiter = anyio.CapacityLimiter(concurrency)

    async def bounded(index: int) -> None:
        async with limiter:
            await one(index)

    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for index in range(orders):
            tasks.start_soon(bounded, index)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"orders_per_s": orders / wall, "cpu_us_per_order": cpu / orders * 1e6}


async def _run_library(
    url: str, key: str, secret: str, targets: list[str], orders: int, concurrency: int
) -> dict[str, float]:
    provider = CatFee(api_key=key, api_secret=secret, base_url=url)
    # The default limiter (10 req/s) would measure the limiter; lift it, keep its code path.
    async with ProviderSession(provider, limiter=RateLimiter(1e9)) as session:

        async def library(index: int) -> None:
            order = await session.create_order(target=targets[index % len(targets)], energy=ENERGY)
            await session.get_order(order.id)

        return await _measure(orders, concurrency, library)


async def _run_raw(
    url: str, key: str, secret: str, targets: list[str], orders: int, concurrency: int
) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        raw_client = RawClient(http, url, key, secret)

        async def raw(index: int) -> None:
            await raw_client.order(targets[index % len(targets)])

        return await _measure(orders, concurrency, raw)


# --- decoding ------------------------------------------------------------------------------


def _decode_figures(body: bytes) -> dict[str, float]:
    provider = CatFee(api_key="k", api_secret="s")

    def with_msgspec() -> Any:
        return provider.parse_order(decode_envelope(body).data)

    def with_json() -> Any:
        data = json.loads(body)["data"]
        return (
            data["id"],
            data.get("client_order_id"),
            data["receiver"],
            data["quantity"],
            data["status"],
            data["confirm_status"],
            data.get("delegate_hash"),
            data["pay_amount_sun"],
            data["balance"],
        )

    figures = {}
    for name, function in (("msgspec_order", with_msgspec), ("json_loads_dict", with_json)):
        runs = timeit.repeat(function, number=20_000, repeat=5)
        figures[f"{name}_us"] = min(runs) / 20_000 * 1e6
    return figures


def _sample_body(targets: list[str]) -> bytes:
    data = {
        "id": str(uuid.uuid4()),
        "client_order_id": f"ea-{uuid.uuid4().hex}",
        "resource_type": "ENERGY",
        "billing_type": "API",
        "source_type": "API",
        "pay_timestamp": 1724675696789,
        "receiver": targets[0],
        "pay_amount_sun": 1105000,
        "activate_amount_sun": 0,
        "quantity": ENERGY,
        "staked_sun": 15_000_000,
        "duration": 60,
        "expired_timestamp": 1724679296789,
        "status": "PAYMENT_SUCCESS",
        "activate_status": "ALREADY_ACTIVATED",
        "confirm_status": "UNCONFIRMED",
        "balance": 98895000,
    }
    return msgspec.json.encode({"code": 0, "msg": "success", "sub_code": "", "data": data})


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="create+get pairs per run")
    parser.add_argument("--concurrency", type=int, default=8, help="orders in flight")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client (best is kept)")
    args = parser.parse_args()

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve_sandbox, args=(child,))
    server.start()
    try:
        url, key, secret, targets = parent.recv()
        runs: list[dict[str, dict[str, float]]] = []
        clients = {"library": _run_library, "raw": _run_raw}
        for repeat in range(args.repeats):
            # Pairs alternate which client goes first, so load drift hits both alike.
            order = ["library", "raw"] if repeat % 2 == 0 else ["raw", "library"]
            run = {
                name: asyncio.run(
                    clients[name](url, key, secret, targets, args.orders, args.concurrency)
                )
                for name in order
            }
            runs.append(run)
    finally:
        parent.send("stop")
        server.join(timeout=10)

    def best(client: str) -> dict[str, float]:
        return {
            "orders_per_s": max(run[client]["orders_per_s"] for run in runs),
            "cpu_us_per_order": min(run[client]["cpu_us_per_order"] for run in runs),
            "cpu_us_per_order_median": statistics.median(
                run[client]["cpu_us_per_order"] for run in runs
            ),
        }

    library, raw = best("library"), best("raw")
    decode = _decode_figures(_sample_body(targets))
    result = {
        "orders": args.orders,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "aiohttp": aiohttp.__version__,
        "msgspec": msgspec.__version__,
        "library": library,
        "raw_aiohttp": raw,
        "cpu_ratio_library_vs_raw": library["cpu_us_per_order"] / raw["cpu_us_per_order"],
        "cpu_ratio_median_of_pairs": statistics.median(
            run["library"]["cpu_us_per_order"] / run["raw"]["cpu_us_per_order"] for run in runs
        ),
        "throughput_ratio_library_vs_raw": library["orders_per_s"] / raw["orders_per_s"],
        "decode": decode,
        "decode_ratio_msgspec_vs_json": decode["msgspec_order_us"] / decode["json_loads_dict_us"],
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"create+get, {args.orders} orders x {args.repeats} runs, {args.concurrency} in flight:")
    for name, figures in (("library", library), ("raw aiohttp", raw)):
        print(
            f"  {name:<12} {figures['orders_per_s']:8.0f} orders/s   "
            f"{figures['cpu_us_per_order']:8.0f} us CPU/order (median "
            f"{figures['cpu_us_per_order_median']:.0f})"
        )
    print(
        f"  library/raw: CPU {result['cpu_ratio_library_vs_raw']:.2f}x best to best, "
        f"{result['cpu_ratio_median_of_pairs']:.2f}x median of pairs, "
        f"throughput {result['throughput_ratio_library_vs_raw']:.2f}x (aim: CPU <= 1.2x)"
    )
    print(
        f"decode one order response: msgspec {decode['msgspec_order_us']:.2f} us, "
        f"json.loads+dict {decode['json_loads_dict_us']:.2f} us "
        f"({result['decode_ratio_msgspec_vs_json']:.2f}x)"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

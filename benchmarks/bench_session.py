"""What the session costs, per provider: create+get orders per second and client CPU per order.

For each of the five providers the library's loop runs next to a minimal raw aiohttp loop
written out by hand for that provider's scheme (its signature, its body, ``json.loads`` and a
field or two of the reply), against the same sandbox in the same run. The sandbox runs in a
child process, so ``time.process_time`` here counts the client alone (``user_cpu_*``: without
the kernel's share, which is the same work for both loops but swings with the machine's load).
Also: decoding one CatFee order response with msgspec (what the session does) next to
``json.loads`` plus dict access.

    python benchmarks/bench_session.py [--orders N] [--concurrency C] [--repeats R]
        [--providers catfee,mefree,tenergy,itrx,tronsave]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import multiprocessing
import os
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
from energy_async.providers import PROVIDERS
from energy_async.providers._base import decode_envelope

RESULTS = Path(__file__).parent / "results" / "bench_session.json"
ENERGY = 65_000
NAMES = ("catfee", "mefree", "tenergy", "itrx", "tronsave")


# --- the sandbox, in its own process ------------------------------------------------------------


def _serve_sandbox(conn: Connection) -> None:
    from energy_async.sandbox import Sandbox

    async def main() -> None:
        sandbox = Sandbox(seed=0, speed=100.0)
        for sim in sandbox.providers.values():
            sim.control.keep_log = False  # keep the child's memory flat
            sim.balance_sun = 10**15  # never the bottleneck of a long run
        async with sandbox.serve() as urls:
            targets = [sandbox.new_target() for _ in range(64)]
            services = {
                name: (urls.provider(name), sim.api_key, sim.api_secret)
                for name, sim in sandbox.providers.items()
            }
            conn.send((services, targets))
            await anyio.to_thread.run_sync(conn.recv)  # until the parent says stop

    anyio.run(main)


# --- the raw clients: one provider's scheme each, by hand --------------------------------------


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64_hmac(secret: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(secret, text.encode(), hashlib.sha256).digest()).decode()


class RawClient:
    """The least a correct client must do: sign, send the exact bytes, read one field."""

    def __init__(self, http: aiohttp.ClientSession, url: str, key: str, secret: str) -> None:
        base = URL(url)
        self.http = http
        self.origin = str(base.origin())
        self.prefix = base.raw_path.rstrip("/")
        self.key = key
        self.secret = secret.encode()

    async def send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> Any:
        url = URL(self.origin + self.prefix + path, encoded=True)
        async with self.http.request(method, url, headers=headers, data=body) as response:
            return json.loads(await response.read())

    async def order(self, target: str) -> None:
        raise NotImplementedError


class RawEnvelope(RawClient):
    """CatFee and Mefree: ``{PREFIX}-ACCESS-*`` headers, the order in the query, an envelope."""

    def __init__(
        self, http: aiohttp.ClientSession, url: str, key: str, secret: str, *, mefree: bool
    ) -> None:
        super().__init__(http, url, key, secret)
        self.mark = "MF" if mefree else "CF"
        if mefree:
            self.create, self.get, self.id_field = "/api/order", "/api/order/", "pay_hash"
            self.fields = "quantity={q}&target_address={t}&period=1&client_order_id={c}"
        else:
            self.create, self.get, self.id_field = "/v1/order", "/v1/order/", "id"
            self.fields = "quantity={q}&receiver={t}&duration=1h&client_order_id={c}"

    async def call(self, method: str, path: str) -> Any:
        stamp = _iso_now()
        headers = {
            "Content-Type": "application/json",
            f"{self.mark}-ACCESS-KEY": self.key,
            f"{self.mark}-ACCESS-SIGN": _b64_hmac(
                self.secret, f"{stamp}{method}{self.prefix}{path}"
            ),
            f"{self.mark}-ACCESS-TIMESTAMP": stamp,
        }
        payload = await self.send(method, path, headers)
        if payload["code"] != 0:
            raise RuntimeError(payload)
        return payload["data"]

    async def order(self, target: str) -> None:
        query = self.fields.format(q=ENERGY, t=target, c=f"raw-{uuid.uuid4().hex}")
        created = await self.call("POST", f"{self.create}?{query}")
        await self.call("GET", self.get + created[self.id_field])


class RawTEnergy(RawClient):
    """``x-api-*`` headers over timestamp + METHOD + path + JSON body; no envelope."""

    async def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        stamp = _iso_now()
        text = body.decode() if body else ""
        headers = {
            "Content-Type": "application/json",
            "x-api-key": self.key,
            "x-api-sign": _b64_hmac(self.secret, f"{stamp}{method}{self.prefix}{path}{text}"),
            "x-api-timestamp": stamp,
        }
        payload = await self.send(method, path, headers, body)
        if "error" in payload:
            raise RuntimeError(payload)
        return payload

    async def order(self, target: str) -> None:
        body = {
            "resource": "energy",
            "amount": ENERGY,
            "tier": "1h",
            "receiver": target,
            "client_order_id": f"raw-{uuid.uuid4().hex}",
        }
        created = await self.call(
            "POST", "/orders", json.dumps(body, separators=(",", ":")).encode()
        )
        await self.call("GET", f"/orders/{created['id']}")


class RawItrx(RawClient):
    """POST: hex HMAC of ``ts&sorted-compact-json``; GET: the key alone; ``errno`` envelope."""

    async def call(self, method: str, path: str, fields: dict[str, Any] | None = None) -> Any:
        headers = {"API-KEY": self.key}
        body = None
        if fields is not None:
            body = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
            stamp = str(int(time.time()))
            sign = hmac.new(self.secret, stamp.encode() + b"&" + body, hashlib.sha256)
            headers |= {
                "Content-Type": "application/json",
                "TIMESTAMP": stamp,
                "SIGNATURE": sign.hexdigest(),
            }
        payload = await self.send(method, path, headers, body)
        if payload.get("errno") != 0:
            raise RuntimeError(payload)
        return payload

    async def order(self, target: str) -> None:
        cid = f"raw-{uuid.uuid4().hex}"
        # The library looks the key up before its one create (never a blind create): so here.
        await self.send(
            "GET", f"/api/v1/frontend/order/query?out_trade_no={cid}", {"API-KEY": self.key}
        )
        fields = {
            "energy_amount": ENERGY,
            "out_trade_no": cid,
            "period": "1H",
            "receive_address": target,
        }
        created = await self.call("POST", "/api/v1/frontend/order", fields)
        await self.call("GET", f"/api/v1/frontend/order/query?serial={created['serial']}")


class RawTronSave(RawClient):
    """An ``apikey`` header, nothing signed; ``{"error": false, "data"}``."""

    async def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        headers = {"Content-Type": "application/json", "apikey": self.key}
        payload = await self.send(method, path, headers, body)
        if payload.get("error") is not False:
            raise RuntimeError(payload)
        return payload["data"]

    async def order(self, target: str) -> None:
        body = {
            "resourceType": "ENERGY",
            "resourceAmount": ENERGY,
            "receiver": target,
            "durationSec": 3600,
        }
        created = await self.call("POST", "/v2/buy-resource", json.dumps(body).encode())
        await self.call("GET", f"/v2/order/{created['orderId']}")


def _raw_client(
    name: str, http: aiohttp.ClientSession, url: str, key: str, secret: str
) -> RawClient:
    if name in ("catfee", "mefree"):
        return RawEnvelope(http, url, key, secret, mefree=name == "mefree")
    kinds: dict[str, type[RawClient]] = {
        "tenergy": RawTEnergy,
        "itrx": RawItrx,
        "tronsave": RawTronSave,
    }
    return kinds[name](http, url, key, secret)


# --- the runs ----------------------------------------------------------------------------------


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

    cpu, user, wall = time.process_time(), os.times().user, time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for index in range(orders):
            tasks.start_soon(bounded, index)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    user = os.times().user - user
    # ``user``: CPU in Python and C code alone; the kernel's share of a send (``cpu`` - user)
    # is the same work for both loops but swings with the machine's load.
    return {
        "orders_per_s": orders / wall,
        "cpu_us_per_order": cpu / orders * 1e6,
        "user_cpu_us_per_order": user / orders * 1e6,
    }


async def _run_library(
    name: str, service: tuple[str, str, str], targets: list[str], orders: int, concurrency: int
) -> dict[str, float]:
    url, key, secret = service
    provider = PROVIDERS[name](api_key=key, api_secret=secret, base_url=url)
    # The default limiter (10 req/s) would measure the limiter; lift it, keep its code path.
    async with ProviderSession(provider, limiter=RateLimiter(1e9)) as session:

        async def library(index: int) -> None:
            order = await session.create_order(target=targets[index % len(targets)], energy=ENERGY)
            await session.get_order(order.id)

        return await _measure(orders, concurrency, library)


async def _run_raw(
    name: str, service: tuple[str, str, str], targets: list[str], orders: int, concurrency: int
) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        raw_client = _raw_client(name, http, *service)

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


def _compare(
    name: str,
    service: tuple[str, str, str],
    targets: list[str],
    args: argparse.Namespace,
) -> dict[str, Any]:
    runs: list[dict[str, dict[str, float]]] = []
    clients = {"library": _run_library, "raw": _run_raw}
    for repeat in range(args.repeats):
        # Pairs alternate which client goes first, so load drift hits both alike.
        order = ["library", "raw"] if repeat % 2 == 0 else ["raw", "library"]
        runs.append(
            {
                client: asyncio.run(
                    clients[client](name, service, targets, args.orders, args.concurrency)
                )
                for client in order
            }
        )

    def best(client: str) -> dict[str, float]:
        return {
            "orders_per_s": max(run[client]["orders_per_s"] for run in runs),
            "cpu_us_per_order": min(run[client]["cpu_us_per_order"] for run in runs),
            "cpu_us_per_order_median": statistics.median(
                run[client]["cpu_us_per_order"] for run in runs
            ),
            "user_cpu_us_per_order": min(run[client]["user_cpu_us_per_order"] for run in runs),
        }

    library, raw = best("library"), best("raw")
    return {
        "library": library,
        "raw_aiohttp": raw,
        "cpu_ratio_library_vs_raw": library["cpu_us_per_order"] / raw["cpu_us_per_order"],
        "cpu_ratio_median_of_pairs": statistics.median(
            run["library"]["cpu_us_per_order"] / run["raw"]["cpu_us_per_order"] for run in runs
        ),
        "user_cpu_ratio_library_vs_raw": library["user_cpu_us_per_order"]
        / raw["user_cpu_us_per_order"],
        "user_cpu_ratio_median_of_pairs": statistics.median(
            run["library"]["user_cpu_us_per_order"] / run["raw"]["user_cpu_us_per_order"]
            for run in runs
        ),
        "throughput_ratio_library_vs_raw": library["orders_per_s"] / raw["orders_per_s"],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300, help="create+get pairs per run")
    parser.add_argument("--concurrency", type=int, default=8, help="orders in flight")
    parser.add_argument("--repeats", type=int, default=3, help="runs per client (best is kept)")
    parser.add_argument("--providers", default=",".join(NAMES), help="comma-separated names")
    args = parser.parse_args()
    names = [name for name in args.providers.split(",") if name]
    unknown = [name for name in names if name not in NAMES]
    if unknown:
        parser.error(f"unknown provider(s) {unknown}; known: {', '.join(NAMES)}")

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(target=_serve_sandbox, args=(child,))
    server.start()
    try:
        services, targets = parent.recv()
        providers = {name: _compare(name, services[name], targets, args) for name in names}
    finally:
        parent.send("stop")
        server.join(timeout=10)

    decode = _decode_figures(_sample_body(targets))
    result = {
        "orders": args.orders,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "aiohttp": aiohttp.__version__,
        "msgspec": msgspec.__version__,
        "providers": providers,
        "decode": decode,
        "decode_ratio_msgspec_vs_json": decode["msgspec_order_us"] / decode["json_loads_dict_us"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"create+get, {args.orders} orders x {args.repeats} runs, {args.concurrency} in flight:")
    print("  provider   library orders/s  CPU us/order   raw orders/s  CPU us/order   CPU ratio")
    for name, figures in providers.items():
        library, raw = figures["library"], figures["raw_aiohttp"]
        print(
            f"  {name:<9} {library['orders_per_s']:10.0f} {library['cpu_us_per_order']:14.0f}"
            f" {raw['orders_per_s']:14.0f} {raw['cpu_us_per_order']:13.0f}"
            f"   {figures['cpu_ratio_library_vs_raw']:.2f}x best, "
            f"{figures['cpu_ratio_median_of_pairs']:.2f}x median; user CPU "
            f"{figures['user_cpu_ratio_library_vs_raw']:.2f}x best, "
            f"{figures['user_cpu_ratio_median_of_pairs']:.2f}x median (aim: <= 1.2x)"
        )
    print(
        f"decode one order response: msgspec {decode['msgspec_order_us']:.2f} us, "
        f"json.loads+dict {decode['json_loads_dict_us']:.2f} us "
        f"({result['decode_ratio_msgspec_vs_json']:.2f}x)"
    )
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()

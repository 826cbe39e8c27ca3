"""A batch end to end: ``Coordinator.buy_many`` with full verification, against the sandbox.

Every run gets a fresh sandbox in its own process and a fresh client process, so runs do not
inherit each other's state and each client's peak RSS (``ru_maxrss``) is its own. Requests are
generated lazily and results are counted as they stream out, never kept, so the client's
memory is the library's. Runs: the small and the large size, each without and with a journal
(SQLite, the default settings, in a temporary directory); the pairs alternate which goes first.
Reported: orders/s, client and sandbox CPU, peak RSS at each size and their ratio, and the
journal's cost at the same size in the same run.

The chain runs ``--speed`` times faster than mainnet (default 100: a block every 30 ms) and
the poll policy is the default one scaled by the same factor. The clients' rate limiters stay
in the path with their rate out of reach (``--default-limits`` keeps the loopback default of
1,000 requests/s per service, which caps a batch at about 140 orders/s).

    python benchmarks/bench_batch.py [--orders N] [--quick] [--concurrency C] [--speed X]
                                     [--default-limits]
    python benchmarks/bench_batch.py --postgres DSN [--workers 1,2,4] [--orders N] [--quick]
    python benchmarks/bench_batch.py --journal-size [--postgres DSN] [--orders N]

With ``--postgres`` (a server where the DSN's role may CREATE DATABASE), the batch runs instead
through one PostgreSQL journal shared by 1, 2 and 4 worker processes (each with
``--concurrency`` in flight, a fresh database per run, the rows loaded before the clock
starts), and the journal's own CPU and round trips per order are measured next to SQLite's.
Written to ``results/bench_batch_postgres.json``.

With ``--journal-size``, only the journal's bytes per settled order are measured (SQLite, and
PostgreSQL with ``--postgres``): a small batch against the sandbox gives a typical DELIVERED
result, N orders' entries are written with it, and the store is measured after VACUUM (file size
for SQLite, ``pg_total_relation_size`` of the entries table for PostgreSQL) with the entries as
this version encodes them, then once more with the same entries rewritten as plain JSON (the
encoding every journal used before entry encoding 1), next to each encoded row's length.
Written to ``results/bench_batch_journal_size.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import multiprocessing
import os
import resource
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import msgspec
from _sandbox_process import (
    RunningSandbox,
    SandboxInfo,
    clients,
    rate_limits,
    sandbox_process,
    scaled_poll,
    source_version,
    write_results,
)

from energy_async import Coordinator, ProviderSession
from energy_async.journal import Journal
from energy_async.models import DeliveryResult, Order, OrderRequest

RESULTS = Path(__file__).parent / "results" / "bench_batch.json"
PG_RESULTS = Path(__file__).parent / "results" / "bench_batch_postgres.json"
SIZE_RESULTS = Path(__file__).parent / "results" / "bench_batch_journal_size.json"
ENERGY = 65_000
DEADLINE = 60.0  # real seconds per order; far beyond any healthy order
TARGETS = 1024  # orders cycle through this many addresses at every size
_CHUNK = 256  # intents per journal transaction, as batch.py writes them


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def requests(
    session: ProviderSession, targets: tuple[str, ...], count: int
) -> Iterator[OrderRequest]:
    for index in range(count):
        yield session.prepare(target=targets[index % len(targets)], energy=ENERGY)


@dataclass(frozen=True, slots=True)
class Spec:
    """One run's settings."""

    orders: int
    concurrency: int
    journal: bool
    lift_limits: bool


async def run_batch(
    info: SandboxInfo, spec: Spec, journal_path: str | None
) -> tuple[dict[str, Any], DeliveryResult | None]:
    """One batch; only counters survive each result (and one result, as a sample)."""
    verdicts: Counter[str] = Counter()
    trongrid_calls = provider_calls = by_delta_only = 0
    sample: DeliveryResult | None = None
    async with clients(info, lift_limits=spec.lift_limits) as (session, verifier):
        coordinator = Coordinator(session, verifier, poll=scaled_poll(info.speed))
        journal = await Journal.open(journal_path) if journal_path else None
        rss_imported = _peak_rss_mib()
        # The first address check imports tronpy (and its eth_* dependencies): about 20 MiB
        # that every client pays once, whatever the batch size; kept out of the batch's share.
        session.prepare(target=info.targets[0], energy=ENERGY)
        rss_before = _peak_rss_mib()
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            batch = coordinator.buy_many(
                requests(session, info.targets, spec.orders),
                concurrency=spec.concurrency,
                deadline=DEADLINE,
                journal=journal,
            )
            async with batch as results:
                async for result in results:
                    verdicts[result.verdict] += 1
                    if result.delivered and result.evidence.delegation is None:
                        by_delta_only += 1  # proven by the EnergyLimit delta, no tx named yet
                    elif sample is None and result.delivered:
                        sample = result  # full evidence: the most a journal row holds
                    trongrid_calls += result.evidence.trongrid_calls
                    provider_calls += result.evidence.provider_calls
        finally:
            if journal is not None:
                await journal.aclose()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    settled = sum(verdicts.values())
    figures = {
        "orders": spec.orders,
        "journal": journal_path is not None,
        "settled": settled,
        "verdicts": dict(verdicts),
        "delivered_by_energy_limit_delta_only": by_delta_only,
        "wall_s": round(wall, 2),
        "orders_per_s": round(settled / wall, 1),
        "client_cpu_ms_per_order": round(cpu / settled * 1000, 2),
        "client_cpu_share": round(cpu / wall, 2),
        "trongrid_calls_per_order": round(trongrid_calls / settled, 2),
        "provider_calls_per_order": round(provider_calls / settled, 2),
        "peak_rss_after_imports_mib": round(rss_imported, 1),
        "peak_rss_before_batch_mib": round(rss_before, 1),
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }
    return figures, sample


def _client(conn: Connection, info: SandboxInfo, spec: Spec) -> None:
    """A fresh process per run, so its peak RSS is this run's alone."""
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as directory:
        path = os.path.join(directory, "journal.sqlite") if spec.journal else None
        result, sample = anyio.run(run_batch, info, spec, path)
        if path is not None:
            result["journal_bytes_per_order"] = round(os.path.getsize(path) / result["settled"])
        conn.send((result, sample))


def measure(spec: Spec, speed: float) -> tuple[dict[str, Any], DeliveryResult | None]:
    """One run: a fresh sandbox process and a fresh client process."""
    with sandbox_process(speed=speed, targets=TARGETS) as sandbox:
        return _in_child(sandbox, spec)


def _in_child(sandbox: RunningSandbox, spec: Spec) -> tuple[dict[str, Any], DeliveryResult | None]:
    parent, child = multiprocessing.Pipe()
    client = multiprocessing.get_context("spawn").Process(
        target=_client, args=(child, sandbox.info, spec)
    )
    server_cpu = sandbox.cpu_seconds()
    client.start()
    try:
        result, sample = parent.recv()
    finally:
        client.join(timeout=30)
        if client.is_alive():
            client.terminate()
            client.join()
    server_cpu = sandbox.cpu_seconds() - server_cpu
    result["sandbox_cpu_share"] = round(server_cpu / result["wall_s"], 2)
    result["sandbox_cpu_ms_per_order"] = round(server_cpu / result["settled"] * 1000, 2)
    if client.exitcode != 0:
        raise RuntimeError(f"the client process exited with {client.exitcode}")
    return result, sample


def rekeyed_result(sample: DeliveryResult, request: OrderRequest) -> DeliveryResult:
    """``sample`` as another order's result: its id, and delegation txs of its own (one tx
    credited to every order would measure the journal refusing a clash, not recording)."""
    cid = request.client_order_id
    order = sample.order and msgspec.structs.replace(sample.order, client_order_id=cid)
    own = {
        finding.txid: hashlib.sha256(f"{cid}/{finding.txid}".encode()).hexdigest()
        for finding in sample.evidence.delegations
    }
    evidence = msgspec.structs.replace(
        sample.evidence,
        delegations=[
            msgspec.structs.replace(finding, txid=own[finding.txid])
            for finding in sample.evidence.delegations
        ],
    )
    return msgspec.structs.replace(
        sample, client_order_id=cid, request=request, order=order, evidence=evidence
    )


def journal_alone(sample: DeliveryResult, orders: int, concurrency: int) -> dict[str, Any]:
    """The journal's own cost: a batch's writes with no network, at the batch's concurrency."""
    with tempfile.TemporaryDirectory(prefix="bench_journal_") as directory:
        path = os.path.join(directory, "journal.sqlite")
        figures = anyio.run(_journal_writes, path, sample, orders, concurrency)
        figures["bytes_per_order"] = round(os.path.getsize(path) / orders)
    return figures


async def _journal_writes(
    path: str, sample: DeliveryResult, orders: int, concurrency: int
) -> dict[str, Any]:
    """Write ``orders`` orders' entries into a new journal at ``path``.

    Per order, as a batch writes them: its intent (in chunks of 256), sent, the order as
    created and once more at a status change, and the result (``sample``'s, re-keyed).
    """
    assert sample.order is not None, "the sample is a delivered order"
    slots = anyio.Semaphore(concurrency)

    async def one(result: DeliveryResult, order: Order) -> None:
        try:
            cid = result.client_order_id
            await journal.mark_sent(cid)
            await journal.record_order(cid, order)
            await journal.record_order(cid, order)
            await journal.record_result(cid, result)
        finally:
            slots.release()

    cpu, wall = time.process_time(), time.perf_counter()
    async with await Journal.open(path) as journal, anyio.create_task_group() as group:
        for start in range(0, orders, _CHUNK):
            cids = [f"bench-{index:08d}" for index in range(start, min(start + _CHUNK, orders))]
            requests = [msgspec.structs.replace(sample.request, client_order_id=c) for c in cids]
            await journal.record_intents(sample.provider, requests)
            for request in requests:
                result = rekeyed_result(sample, request)
                rekeyed = result.order
                assert rekeyed is not None
                await slots.acquire()
                group.start_soon(one, result, rekeyed)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {
        "orders": orders,
        "concurrency": concurrency,
        "orders_per_s": round(orders / wall, 1),
        "cpu_ms_per_order": round(cpu / orders * 1000, 3),
    }


# --- the journal's bytes per settled order --------------------------------------------------------

_ENCODED_ROW = (
    "avg(length(request) + coalesce(length(order_json), 0) + coalesce(length(result), 0))"
)


def _plain_columns(sample: DeliveryResult, cid: str) -> tuple[str, str]:
    """An entry's order and result columns as plain JSON (before entry encoding 1)."""
    result = rekeyed_result(sample, msgspec.structs.replace(sample.request, client_order_id=cid))
    return msgspec.json.encode(result.order).decode(), msgspec.json.encode(result).decode()


def journal_size(sample: DeliveryResult, orders: int, server: str | None) -> dict[str, Any]:
    """Bytes per settled order, SQLite (and PostgreSQL on ``server``), now and as plain JSON."""
    import sqlite3

    figures: dict[str, Any] = {"orders": orders}
    with tempfile.TemporaryDirectory(prefix="bench_journal_size_") as directory:
        path = os.path.join(directory, "journal.sqlite")
        anyio.run(_journal_writes, path, sample, orders, 64)

        def measured(db: sqlite3.Connection) -> dict[str, int]:
            db.execute("VACUUM")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file holds every page now
            (row,) = db.execute(f"SELECT {_ENCODED_ROW} FROM entries").fetchone()
            per_order = os.path.getsize(path) / orders
            return {"bytes_per_order": round(per_order), "encoded_row_bytes": round(row)}

        with contextlib.closing(sqlite3.connect(path)) as db:
            now = measured(db)
            cids = [str(row[0]) for row in db.execute("SELECT client_order_id FROM entries")]
            with db:
                db.executemany(
                    "UPDATE entries SET order_json = ?, result = ? WHERE client_order_id = ?",
                    [(*_plain_columns(sample, cid), cid) for cid in cids],
                )
            figures["sqlite"] = {"entry_encoding_1": now, "plain_json": measured(db)}
    if server is not None:
        figures["postgresql"] = _pg_journal_size(server, sample, orders)
    return figures


def _pg_journal_size(server: str, sample: DeliveryResult, orders: int) -> dict[str, Any]:
    import psycopg

    dsn = _pg_database(server)
    try:
        anyio.run(_pg_journal_writes, dsn, sample, orders, 64)
        with psycopg.connect(dsn, autocommit=True) as db:

            def measured() -> dict[str, int]:
                db.execute("VACUUM FULL energy_async.entries")
                size = db.execute(
                    "SELECT pg_total_relation_size('energy_async.entries')"
                ).fetchone()
                row = db.execute(f"SELECT {_ENCODED_ROW} FROM energy_async.entries").fetchone()
                assert size is not None and row is not None
                return {
                    "bytes_per_order": round(int(size[0]) / orders),
                    "encoded_row_bytes": round(float(row[0])),
                }

            now = measured()
            cids = [
                str(row[0])
                for row in db.execute("SELECT client_order_id FROM energy_async.entries")
            ]
            with db.cursor() as cursor:
                cursor.executemany(
                    "UPDATE energy_async.entries SET order_json = %s, result = %s"
                    " WHERE client_order_id = %s",
                    [(*_plain_columns(sample, cid), cid) for cid in cids],
                )
            return {"entry_encoding_1": now, "plain_json": measured()}
    finally:
        _pg_drop(server, dsn)


def main_journal_size(args: argparse.Namespace) -> None:
    from energy_async import Verdict

    source = source_version()
    spec = Spec(100, args.concurrency, False, lift_limits=not args.default_limits)
    _, sample = measure(spec, args.speed)
    assert sample is not None and sample.verdict is Verdict.DELIVERED
    orders = 2_000 if args.quick else args.orders
    figures = journal_size(sample, orders, args.postgres)
    result = {
        "benchmark": "journal bytes per settled order (a typical DELIVERED order), after VACUUM",
        "sample": "the first DELIVERED result of a 100-order batch against the sandbox",
        "sample_plain_json_bytes": len(msgspec.json.encode(sample)),
        **figures,
    }
    write_results(SIZE_RESULTS, result, source)
    for backend in ("sqlite", "postgresql"):
        if backend in figures:
            now, plain = figures[backend]["entry_encoding_1"], figures[backend]["plain_json"]
            print(
                f"{backend}: {now['bytes_per_order']:,} bytes per settled order on disk"
                f" (plain JSON: {plain['bytes_per_order']:,}); encoded row"
                f" {now['encoded_row_bytes']:,} bytes (plain JSON: {plain['encoded_row_bytes']:,})"
            )
    print(f"written to {SIZE_RESULTS}")


# --- PostgreSQL: one journal, many worker processes ---------------------------------------------


def _pg_database(server: str) -> str:
    """A new database on ``server``; its DSN (dropped by the caller)."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"ea_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def _pg_drop(server: str, dsn: str) -> None:
    import psycopg

    name = dsn.rsplit("/", 1)[1]
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


async def _pg_load(info: SandboxInfo, dsn: str, orders: int) -> None:
    from energy_async.journal_pg import PgJournal

    async with clients(info, lift_limits=True) as (session, _), await PgJournal.open(dsn) as pg:
        batch = list(requests(session, info.targets, orders))
        for start in range(0, orders, 1_000):
            await pg.record_intents(session.provider.name, batch[start : start + 1_000])


async def _pg_worker(info: SandboxInfo, spec: Spec, dsn: str, start_at: float) -> dict[str, Any]:
    from energy_async.batch_workers import run_worker
    from energy_async.journal_pg import PgJournal

    verdicts: Counter[str] = Counter()
    async with clients(info, lift_limits=spec.lift_limits) as (session, verifier):
        coordinator = Coordinator(session, verifier, poll=scaled_poll(info.speed))
        session.prepare(target=info.targets[0], energy=ENERGY)  # tronpy's import, paid once
        async with await PgJournal.open(dsn, create=False) as journal:
            await anyio.sleep(max(0.0, start_at - time.time()))
            cpu, wall = time.process_time(), time.perf_counter()
            worker = run_worker(
                coordinator, journal, concurrency=spec.concurrency, deadline=DEADLINE
            )
            async with worker as results:
                async for result in results:
                    verdicts[result.verdict] += 1
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            round_trips = journal.round_trips
    return {
        "settled": sum(verdicts.values()),
        "verdicts": dict(verdicts),
        "wall_s": round(wall, 2),
        "cpu_s": cpu,
        "round_trips": round_trips,
        "peak_rss_mib": round(_peak_rss_mib(), 1),
    }


def _pg_client(conn: Connection, info: SandboxInfo, spec: Spec, dsn: str, start: float) -> None:
    conn.send(anyio.run(_pg_worker, info, spec, dsn, start))


def measure_pg(server: str, spec: Spec, speed: float, workers: int) -> dict[str, Any]:
    """One run: a fresh sandbox, a fresh database, ``workers`` client processes."""
    dsn = _pg_database(server)
    try:
        with sandbox_process(speed=speed, targets=TARGETS) as sandbox:
            anyio.run(_pg_load, sandbox.info, dsn, spec.orders)
            spawn = multiprocessing.get_context("spawn")
            start = time.time() + 3.0  # every worker imported and connected by then
            pipes, processes = [], []
            for _ in range(workers):
                parent, child = multiprocessing.Pipe()
                process = spawn.Process(
                    target=_pg_client, args=(child, sandbox.info, spec, dsn, start)
                )
                process.start()
                pipes.append(parent)
                processes.append(process)
            server_cpu = sandbox.cpu_seconds()
            each = [pipe.recv() for pipe in pipes]
            wall = time.time() - start
            server_cpu = sandbox.cpu_seconds() - server_cpu
            for process in processes:
                process.join(timeout=30)
    finally:
        _pg_drop(server, dsn)
    settled = sum(run["settled"] for run in each)
    verdicts: Counter[str] = Counter()
    for run in each:
        verdicts.update(run["verdicts"])
    return {
        "orders": spec.orders,
        "workers": workers,
        "concurrency_per_worker": spec.concurrency,
        "settled": settled,
        "verdicts": dict(verdicts),
        "settled_per_worker": [run["settled"] for run in each],
        "wall_s": round(wall, 2),
        "orders_per_s": round(settled / wall, 1),
        "client_cpu_ms_per_order": round(sum(r["cpu_s"] for r in each) / settled * 1000, 2),
        "journal_round_trips_per_order": round(sum(r["round_trips"] for r in each) / settled, 2),
        "peak_rss_mib_per_worker": [run["peak_rss_mib"] for run in each],
        "sandbox_cpu_ms_per_order": round(server_cpu / settled * 1000, 2),
    }


def pg_journal_alone(
    server: str, sample: DeliveryResult, orders: int, concurrency: int
) -> dict[str, Any]:
    """The PostgreSQL journal's own cost: the same writes as `journal_alone`, plus claims."""
    dsn = _pg_database(server)
    try:
        return anyio.run(_pg_journal_writes, dsn, sample, orders, concurrency)
    finally:
        _pg_drop(server, dsn)


async def _pg_journal_writes(
    dsn: str, sample: DeliveryResult, orders: int, concurrency: int
) -> dict[str, Any]:
    from energy_async.journal_pg import PgJournal

    assert sample.order is not None, "the sample is a delivered order"
    slots = anyio.Semaphore(concurrency)

    async def one(result: DeliveryResult, order: Order) -> None:
        try:
            cid = result.client_order_id
            await journal.mark_sent(cid)
            await journal.record_order(cid, order)
            await journal.record_order(cid, order)
            await journal.record_result(cid, result)
        finally:
            slots.release()

    async with await PgJournal.open(dsn) as journal:
        cids = [f"bench-{index:08d}" for index in range(orders)]
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, orders, _CHUNK):
            chunk = cids[start : start + _CHUNK]
            intents = [msgspec.structs.replace(sample.request, client_order_id=c) for c in chunk]
            await journal.record_intents(sample.provider, intents)
        async with anyio.create_task_group() as group:
            while claim := (await journal.claim(sample.provider, _CHUNK, lease=60)).entries:
                for entry in claim:
                    result = rekeyed_result(sample, entry.request)
                    rekeyed = result.order
                    assert rekeyed is not None
                    await slots.acquire()
                    group.start_soon(one, result, rekeyed)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        round_trips = journal.round_trips
    return {
        "orders": orders,
        "concurrency": concurrency,
        "orders_per_s": round(orders / wall, 1),
        "cpu_ms_per_order": round(cpu / orders * 1000, 3),
        "round_trips_per_order": round(round_trips / orders, 2),
    }


def main_postgres(args: argparse.Namespace) -> None:
    from energy_async import Verdict

    large = 1_000 if args.quick else args.orders
    small = max(1, large // 10)
    worker_counts = [int(n) for n in args.workers.split(",")]
    source = source_version()
    runs: list[dict[str, Any]] = []
    for size in (small, large):
        for workers in worker_counts:
            spec = Spec(size, args.concurrency, True, lift_limits=not args.default_limits)
            run = measure_pg(args.postgres, spec, args.speed, workers)
            runs.append(run)
            print(_pg_row(run), flush=True)
    # The journals alone, on the same sample, with no network: SQLite next to PostgreSQL.
    spec = Spec(small, args.concurrency, False, lift_limits=not args.default_limits)
    _, sample = measure(spec, args.speed)
    assert sample is not None and sample.verdict is Verdict.DELIVERED
    sqlite_alone = journal_alone(sample, large, args.concurrency)
    pg_alone = pg_journal_alone(args.postgres, sample, large, args.concurrency)

    def pick(size: int, workers: int) -> dict[str, Any]:
        return next(r for r in runs if r["orders"] == size and r["workers"] == workers)

    result = {
        "benchmark": "a batch shared by N worker processes through one PostgreSQL journal",
        "sizes": [small, large],
        "workers": worker_counts,
        "concurrency_per_worker": args.concurrency,
        "speed": args.speed,
        "block_ms": 3000 / args.speed,
        "deadline_s": DEADLINE,
        "rate_limits": rate_limits(not args.default_limits),
        "runs": runs,
        "peak_rss_ratio_large_vs_small_per_worker": {
            str(workers): round(
                max(pick(large, workers)["peak_rss_mib_per_worker"])
                / max(pick(small, workers)["peak_rss_mib_per_worker"]),
                3,
            )
            for workers in worker_counts
        },
        "journal_alone": {"sqlite": sqlite_alone, "postgresql": pg_alone},
    }
    write_results(PG_RESULTS, result, source)
    print(
        f"journal alone, {large:,} orders at {args.concurrency} in flight: SQLite"
        f" {sqlite_alone['cpu_ms_per_order']:.3f} ms CPU/order; PostgreSQL"
        f" {pg_alone['cpu_ms_per_order']:.3f} ms CPU/order,"
        f" {pg_alone['round_trips_per_order']:.2f} round trips/order"
    )
    ratios = result["peak_rss_ratio_large_vs_small_per_worker"]
    print(f"peak RSS per worker, {large:,} vs {small:,} orders, by worker count: {ratios}")
    print(f"written to {PG_RESULTS}")


def _pg_row(run: dict[str, Any]) -> str:
    return (
        f"{run['orders']:>7,} orders {run['workers']} worker(s) {run['orders_per_s']:>7.1f}"
        f" orders/s  settled {run['settled_per_worker']}  client CPU"
        f" {run['client_cpu_ms_per_order']:.2f} ms/order  journal round trips/order"
        f" {run['journal_round_trips_per_order']:.2f}  peak RSS per worker"
        f" {run['peak_rss_mib_per_worker']} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000, help="the large size")
    parser.add_argument("--quick", action="store_true", help="1,000 orders (and 100)")
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--speed", type=float, default=100.0, help="chain clock multiplier")
    parser.add_argument(
        "--default-limits",
        action="store_true",
        help="keep the clients' default rate limits (loopback: 1,000 requests/s per service)",
    )
    parser.add_argument("--postgres", metavar="DSN", help="run the PostgreSQL worker rows")
    parser.add_argument("--workers", default="1,2,4", help="worker processes per PostgreSQL run")
    parser.add_argument(
        "--journal-size", action="store_true", help="only the bytes per settled order"
    )
    args = parser.parse_args()
    if args.journal_size:
        main_journal_size(args)
        return
    if args.postgres:
        main_postgres(args)
        return
    large = 1_000 if args.quick else args.orders
    small = max(1, large // 10)

    source = source_version()
    runs: list[dict[str, Any]] = []
    sample: DeliveryResult | None = None
    for index, size in enumerate((small, large)):
        first_with_journal = index % 2 == 1  # alternate, so load drift hits both alike
        for journal in (first_with_journal, not first_with_journal):
            spec = Spec(size, args.concurrency, journal, lift_limits=not args.default_limits)
            run, found = measure(spec, args.speed)
            sample = sample or found
            runs.append(run)
            print(_row(run), flush=True)

    # The same writes with no network in between: what the journal itself costs.
    alone = None if sample is None else journal_alone(sample, large, args.concurrency)

    def pick(size: int, journal: bool) -> dict[str, Any]:
        return next(r for r in runs if r["orders"] == size and r["journal"] is journal)

    result = {
        "benchmark": "Coordinator.buy_many end to end against the sandbox (CatFee + TronGrid)",
        "sizes": [small, large],
        "concurrency": args.concurrency,
        "energy_per_order": ENERGY,
        "speed": args.speed,
        "block_ms": 3000 / args.speed,
        "poll_policy": "the default PollPolicy with every interval divided by the speed",
        "deadline_s": DEADLINE,
        "rate_limits": rate_limits(not args.default_limits),
        "runs": runs,
        "peak_rss_ratio_large_vs_small": {
            name: round(
                pick(large, journal)["peak_rss_mib"] / pick(small, journal)["peak_rss_mib"], 3
            )
            for name, journal in (("without_journal", False), ("with_journal", True))
        },
        "journal_cost": {
            "orders": large,
            "orders_per_s_without": pick(large, False)["orders_per_s"],
            "orders_per_s_with": pick(large, True)["orders_per_s"],
            "throughput_ratio_with_vs_without": round(
                pick(large, True)["orders_per_s"] / pick(large, False)["orders_per_s"], 3
            ),
            "client_cpu_ms_per_order_without": pick(large, False)["client_cpu_ms_per_order"],
            "client_cpu_ms_per_order_with": pick(large, True)["client_cpu_ms_per_order"],
            # The journal's awaits shift when the coordinator looks at what; an order the chain
            # shows before the provider names its tx is proven by the EnergyLimit delta alone,
            # which costs fewer calls. Compare these before reading the ratio above as a cost.
            "delivered_by_energy_limit_delta_only_without": pick(large, False)[
                "delivered_by_energy_limit_delta_only"
            ],
            "delivered_by_energy_limit_delta_only_with": pick(large, True)[
                "delivered_by_energy_limit_delta_only"
            ],
            "journal_alone": alone,
        },
    }
    write_results(RESULTS, result, source)
    ratio = result["peak_rss_ratio_large_vs_small"]
    cost = result["journal_cost"]
    print(
        f"peak RSS {large:,} vs {small:,} orders: {ratio['without_journal']:.2f}x without journal, "
        f"{ratio['with_journal']:.2f}x with"
    )
    print(
        f"journal at {large:,} orders: {cost['orders_per_s_with']:.0f} vs "
        f"{cost['orders_per_s_without']:.0f} orders/s without "
        f"({cost['throughput_ratio_with_vs_without']:.2f}x), CPU "
        f"{cost['client_cpu_ms_per_order_with']:.2f} vs "
        f"{cost['client_cpu_ms_per_order_without']:.2f} ms/order"
    )
    if alone is not None:
        print(
            f"journal alone, {large:,} orders' writes at {args.concurrency} in flight: "
            f"{alone['orders_per_s']:,.0f} orders/s, {alone['cpu_ms_per_order']:.3f} ms CPU/order, "
            f"{alone['bytes_per_order']:,} bytes/order"
        )
    print(f"written to {RESULTS}")


def _row(run: dict[str, Any]) -> str:
    journal = "journal" if run["journal"] else "no journal"
    delivered = run["verdicts"].get("DELIVERED", 0)
    return (
        f"{run['orders']:>7,} orders {journal:<10} {run['orders_per_s']:>7.1f} orders/s  "
        f"delivered {delivered:,}/{run['settled']:,}  "
        f"peak RSS {run['peak_rss_mib']:.1f} MiB "
        f"(before the batch {run['peak_rss_before_batch_mib']:.1f})  "
        f"CPU ms/order client {run['client_cpu_ms_per_order']:.2f} "
        f"sandbox {run['sandbox_cpu_ms_per_order']:.2f}  "
        f"TG calls/order {run['trongrid_calls_per_order']:.2f}"
    )


if __name__ == "__main__":
    main()

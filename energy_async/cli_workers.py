"""The CLI's PostgreSQL side: ``batch --journal postgresql://...`` workers, ``journal`` commands.

Kept apart from `energy_async.cli` so that the SQLite path never imports the driver: this
module is imported only once a DSN is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from energy_async.cli_output import say, write_json
from energy_async.errors import InputError
from energy_async.journal_contract import is_dsn

if TYPE_CHECKING:
    from energy_async.batch import BatchRun
    from energy_async.coordinator import Coordinator
    from energy_async.journal_pg import PgJournal, SpendLimits
    from energy_async.models import OrderRequest

__all__ = ["add_journal_command", "add_worker_options", "run_pg_batch", "show_status"]

_LOAD_CHUNK = 1_000
Drain = Callable[[argparse.Namespace, AbstractAsyncContextManager["BatchRun"], int], Awaitable[int]]


def add_worker_options(batch: argparse.ArgumentParser) -> None:
    """``batch`` options that only mean something with a PostgreSQL journal."""
    from energy_async.batch_workers import DEFAULT_LEASE

    batch.add_argument(
        "--lease",
        type=float,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help="with a postgresql:// journal: how long a claimed order stays this worker's"
        " without a heartbeat; a dead worker's orders are taken over after it"
        f" (default {DEFAULT_LEASE:g})",
    )
    batch.add_argument(
        "--status",
        action="store_true",
        help="print the whole batch's summary from the --journal and exit (buys nothing)",
    )


def add_journal_command(
    commands: argparse._SubParsersAction[Any],
    handler: Callable[[argparse.Namespace], Awaitable[int]],
) -> None:
    journal = commands.add_parser(
        "journal", help="operate a PostgreSQL journal: migrate (create/check) or status"
    )
    journal.add_argument("action", choices=("migrate", "status"))
    journal.add_argument("dsn", metavar="DSN", help="postgresql://USER@HOST[:PORT]/DATABASE")
    journal.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    journal.set_defaults(handler=handler)


def require_dsn(location: str) -> str:
    if not is_dsn(location):
        raise InputError(f"expected a postgresql:// DSN, got {location[:40]!r}")
    return location


async def open_journal(dsn: str, *, create: bool) -> PgJournal:
    from energy_async.journal_pg import PgJournal

    try:
        return await PgJournal.open(dsn, create=create)
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise InputError(
            "a postgresql:// journal needs the driver: pip install 'energy_async[postgres]'"
        ) from error


async def journal_command(args: argparse.Namespace) -> int:
    """``energy-async journal migrate|status DSN``."""

    dsn = require_dsn(args.dsn)
    async with await open_journal(dsn, create=args.action == "migrate") as journal:
        status = await journal.status()
    if args.json:
        write_json(status)
    say(_render_status(journal.path, status, args.action))
    return 0


async def show_status(dsn: str, json_out: bool) -> int:
    """``batch --journal DSN --status``: the whole batch, whoever worked on it."""

    async with await open_journal(dsn, create=False) as journal:
        status = await journal.status()
    if json_out:
        write_json(status)
    say(_render_status(journal.path, status, "status"))
    counts = status["counts"]
    left = counts["INTENDED"] + counts["SENT"] + counts["ORDERED"]
    return 3 if counts.get("UNKNOWN") else (1 if left else 0)


def _render_status(shown: str, status: dict[str, object], action: str) -> str:
    counts = status["counts"]
    assert isinstance(counts, dict)
    total = sum(n for key, n in counts.items() if ":" not in key and key != "UNKNOWN")
    verdicts = ", ".join(
        f"{key.split(':', 1)[1]} {n}" for key, n in counts.items() if ":" in key and n
    )
    head = "journal ready" if action == "migrate" else "journal"
    return (
        f"{head}: {shown} (schema version {status['schema_version']})\n"
        f"orders: {total}; settled {counts['SETTLED']} ({verdicts or 'none'}); "
        f"not sent {counts['INTENDED']}; in flight {counts['SENT'] + counts['ORDERED']}"
        f" (UNKNOWN {counts.get('UNKNOWN', 0)})\n"
        f"live workers {status['workers']} holding {status['leased']} orders; reserved"
        f" {status['reserved_energy']:,} energy and {status['reserved_sun']:,} sun"
    )


async def run_pg_batch(
    args: argparse.Namespace,
    coordinator: Coordinator,
    requests_for: Callable[[str], Iterable[OrderRequest]],
    proposed_run_id: str,
    drain: Drain,
) -> int:
    """One worker of a batch shared through PostgreSQL.

    ``requests_for(run_id)`` reads the file's rows with ids built from the batch's run id:
    the first worker's id is recorded in the journal and every other worker (and resume)
    uses it, so all of them load the same rows under the same ids.
    """
    from energy_async.batch_workers import run_worker

    dsn = require_dsn(args.journal)
    if not (args.lease > 0):
        raise InputError("--lease must be a positive number of seconds")
    async with await open_journal(dsn, create=True) as journal:
        run_id = await journal.run_id(proposed_run_id) or proposed_run_id
        loaded = 0
        for chunk in _chunks(requests_for(run_id)):
            loaded += await journal.record_intents(coordinator.provider, chunk)
        counts = await journal.counts()
        total = sum(n for key, n in counts.items() if ":" not in key and key != "UNKNOWN")
        left = total - counts["SETTLED"]
        say(
            f"journal {journal.path}: worker {journal.worker}; {loaded} new rows loaded,"
            f" {counts['SETTLED']} of {total} orders already settled"
        )
        worker = run_worker(
            coordinator,
            journal,
            concurrency=args.concurrency,
            deadline=args.deadline,
            limits=spend_limits(args),
            lease=args.lease,
            resume=args.resume,
        )
        try:
            return await drain(args, worker, left)
        finally:
            if journal.reconnects:
                say(
                    f"journal: the database connection was lost and re-established"
                    f" {journal.reconnects} time(s); what was learned meanwhile was journalled"
                )


def spend_limits(args: argparse.Namespace) -> SpendLimits | None:
    from energy_async.journal_pg import SpendLimits

    max_sun = args.max_sun
    if getattr(args, "max_trx", None) is not None:  # --max-trx, already in sun
        max_sun = args.max_trx if max_sun is None else min(max_sun, args.max_trx)
    limits = SpendLimits(
        max_energy=args.max_energy,
        max_sun=max_sun,
        max_energy_per_hour=args.max_energy_per_hour,
        max_sun_per_hour=args.max_sun_per_hour,
    )
    return limits if limits.any else None


def _chunks(requests: Iterable[OrderRequest]) -> Iterator[list[OrderRequest]]:
    chunk: list[OrderRequest] = []
    for request in requests:
        chunk.append(request)
        if len(chunk) >= _LOAD_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk

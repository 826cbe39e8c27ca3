"""One batch, many workers: each worker claims orders from a shared PostgreSQL journal.

The same batch started N times (on one machine or several) cooperates through the journal
alone: every worker loads the rows (idempotently), then claims what no live worker holds, a
few at a time, and runs them through the ordinary batch machinery (`energy_async.batch`).
A claim is a lease: a heartbeat renews it while the worker lives; when a worker dies, its
leases run out and another worker claims those orders again, re-attaching every one that may
have been sent by replaying its ``client_order_id`` (never a second purchase). Spend limits
are reserved in the database with each claim, so the workers together never cross them.

A worker ends when nothing is left for it: every order settled, or held by a live worker that
will settle it, or blocked by a spend limit (``stop_reason``). While another worker's orders
are still leased it waits, so that the last one standing takes over a dead worker's orders.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import anyio

from energy_async.batch import BatchRun, _batch, _Item
from energy_async.errors import ConfigurationError, JournalError, JournalUnavailable
from energy_async.journal import EntryState

if TYPE_CHECKING:
    from energy_async.coordinator import Coordinator
    from energy_async.journal import Journal, JournalEntry
    from energy_async.journal_pg import PgJournal, SpendLimits
    from energy_async.ledger import OrderLedger

__all__ = ["DEFAULT_LEASE", "run_worker"]

log = logging.getLogger("energy_async.batch")

DEFAULT_LEASE = 30.0  # seconds a claim lasts without a heartbeat
_PRICE_POLL = 0.2  # seconds between claims while a sun limit waits for a first price
_IDLE_POLL = 0.5  # seconds between claims while only other workers' leases are left


@dataclass(slots=True)
class _Claims:
    run: BatchRun | None = None
    limit: str | None = None  # a spend limit stopped new orders; taken-over ones still run

    @property
    def stopped(self) -> bool:
        """The batch stopped (money, a signal, the journal): claim nothing more."""
        return self.run is not None and self.run.stop_reason is not None

    def limit_reached(self, reason: str) -> None:
        if self.limit is None:
            log.warning("worker stopped claiming new orders: %s", reason)
        self.limit = reason


@asynccontextmanager
async def run_worker(
    coordinator: Coordinator,
    journal: PgJournal,
    *,
    concurrency: int,
    deadline: float,
    limits: SpendLimits | None = None,
    lease: float = DEFAULT_LEASE,
    resume: bool = False,
) -> AsyncIterator[BatchRun]:
    """Work on the journal's batch with the others; results stream out as they settle.

    The rows must be recorded already (``journal.record_intents``: every worker may load the
    same file, the second load adds nothing). With ``resume``, orders whose last look ended
    UNKNOWN before this worker started are taken too (replayed and judged again).
    """
    if lease <= 0 or lease != lease:
        raise ConfigurationError("the lease must be a positive number of seconds")
    claims = _Claims()
    items = _claimed(
        coordinator,
        journal,
        claims,
        batch=max(1, concurrency),
        lease=lease,
        limits=limits,
        unknown_before=time.time() if resume else None,
    )
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_heartbeat, journal, lease)
            # The PostgreSQL journal keeps the contract the batch relies on (JournalBackend).
            shared = cast("Journal", journal)
            try:
                async with _batch(coordinator, items, concurrency, deadline, shared, None) as run:
                    claims.run = run
                    yield run
            finally:
                # What this worker still holds and never sent goes back, its money with it;
                # what it sent and could not settle is left for another worker to replay.
                with anyio.CancelScope(shield=True), contextlib.suppress(JournalError):
                    await journal.release_held()
            group.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # Losing the database decides everything else: say that, with the orders held.
        lost = group.subgroup(JournalUnavailable)
        if lost is None:
            raise
        raise _first(lost) from None
    if isinstance(run.journal_error, JournalUnavailable):
        raise run.journal_error


def _first(group: BaseExceptionGroup[JournalUnavailable]) -> JournalUnavailable:
    leaf = group.exceptions[0]
    return _first(leaf) if isinstance(leaf, BaseExceptionGroup) else leaf


async def _heartbeat(journal: PgJournal, lease: float) -> None:
    while True:
        await anyio.sleep(lease / 3)
        lost = await journal.renew(lease)
        if lost:
            # Taken over after our lease ran out: the other worker replays them by id too.
            log.warning("leases lost to another worker: %s", ", ".join(lost))


async def _claimed(
    coordinator: Coordinator,
    journal: PgJournal,
    claims: _Claims,
    *,
    batch: int,
    lease: float,
    limits: SpendLimits | None,
    unknown_before: float | None,
) -> AsyncGenerator[_Item, None]:
    provider = coordinator.provider
    try:
        source = _claims_of(
            journal, provider, coordinator.ledger, claims, batch, lease, limits, unknown_before
        )
        async for item in source:
            yield item
    finally:
        # Said once no more orders can come: a limit stops new orders, not takeovers.
        if claims.limit is not None and claims.run is not None and not claims.stopped:
            claims.run.stop_reason = claims.limit


async def _learn_windows(
    journal: PgJournal, ledger: OrderLedger, entries: Sequence[JournalEntry]
) -> None:
    """Before the claimed orders run: the windows of the journal's other orders to their
    targets, so that the EnergyLimit delta never speaks for an order while another worker's
    order to the same address may explain it (one query per claim)."""
    targets = sorted({entry.request.target for entry in entries})
    learnt = await journal.windows_touching(targets)
    for target in targets:
        ledger.learn(target, learnt.get(target, []), own=journal.held)


async def _claims_of(
    journal: PgJournal,
    provider: str,
    ledger: OrderLedger,
    claims: _Claims,
    batch: int,
    lease: float,
    limits: SpendLimits | None,
    unknown_before: float | None,
) -> AsyncGenerator[_Item, None]:
    while not claims.stopped:
        claim = await journal.claim(
            provider,
            batch,
            lease=lease,
            limits=limits,
            unknown_before=unknown_before,
            fresh=claims.limit is None,
        )
        if claim.stop_reason is not None:
            claims.limit_reached(claim.stop_reason)
        if claim.entries:
            await _learn_windows(journal, ledger, claim.entries)
        for entry in claim.entries:
            if entry.state is EntryState.INTENDED:
                yield _Item(entry.request)  # never sent: its money is reserved, send it
            else:
                # Sent by a worker that died (or an UNKNOWN on resume): replay by id.
                yield _Item(entry.request, order=entry.order, resumed=True)
        if claim.entries:
            continue
        if claim.must_wait:
            await anyio.sleep(_PRICE_POLL)
            continue
        wait = await journal.others_working(provider)
        if wait is None:
            return
        await anyio.sleep(min(wait + 0.05, _IDLE_POLL))

"""Many orders at once: bounded concurrency, streamed results, a journal, a spend guard.

A batch is one anyio task group. Requests are read lazily and at most ``concurrency`` orders
are in flight; a result leaves the batch as soon as it settles, and nothing is kept per order
beyond the journal, so memory stays flat however long the batch is. With a journal, every
order's intent is committed before its create is sent, which is what makes ``resume`` safe
after a crash: it re-attaches unsettled orders by ``client_order_id`` and buys nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from energy_async.errors import (
    AuthenticationError,
    ConfigurationError,
    EnergyError,
    JournalError,
)
from energy_async.models import DeliveryResult, Evidence, Order, OrderRequest, Verdict

if TYPE_CHECKING:
    from energy_async.coordinator import Coordinator
    from energy_async.journal import Journal

__all__ = ["BatchRun", "SpendGuard", "run_batch", "run_resume"]

log = logging.getLogger("energy_async.batch")

_INTENT_CHUNK = 256  # intents committed together, always before any of them is sent
_HOUR = 3600.0


@dataclass(slots=True)
class SpendGuard:
    """Limits on what a batch may spend, in total and per rolling hour.

    Energy is known before an order is sent, so energy limits are exact. The price in sun is
    known only once the provider answers, so sun limits reserve an estimate per order (the
    highest price per energy unit seen so far) and, until a first price is known, let one
    order through at a time: the limit can never be overshot by a whole wave of orders.
    """

    max_energy: int | None = None
    max_sun: int | None = None
    max_energy_per_hour: int | None = None
    max_sun_per_hour: int | None = None
    _energy: int = 0
    _sun: int = 0
    _reserved_sun: int = 0
    _unpriced: int = 0  # orders in flight whose price is not known yet
    _sun_per_energy: float | None = None
    _window: deque[tuple[float, int, int]] = field(default_factory=deque)
    _hour_energy: int = 0
    _hour_sun: int = 0
    _priced: anyio.Event | None = None

    def __post_init__(self) -> None:
        limits = (self.max_energy, self.max_sun, self.max_energy_per_hour, self.max_sun_per_hour)
        if any(limit is not None and limit <= 0 for limit in limits):
            raise ConfigurationError("spend limits must be positive")

    @property
    def limits_sun(self) -> bool:
        return self.max_sun is not None or self.max_sun_per_hour is not None

    @property
    def _hourly(self) -> bool:
        return self.max_energy_per_hour is not None or self.max_sun_per_hour is not None

    def _spend_in_window(self, at: float, energy: int, sun: int) -> None:
        if self._hourly:
            self._window.append((at, energy, sun))
            self._hour_energy += energy
            self._hour_sun += sun

    def _expire(self, now: float) -> None:
        while self._window and self._window[0][0] < now - _HOUR:
            _, energy, sun = self._window.popleft()
            self._hour_energy -= energy
            self._hour_sun -= sun

    def seed(self, energy: int, sun: int, at: float) -> None:
        """Count spending from before this run (a resumed batch, the last hour)."""
        self._spend_in_window(at, energy, sun)

    def must_wait(self) -> bool:
        """With a sun limit and no price known yet, one order at a time until one is priced."""
        return self.limits_sun and self._sun_per_energy is None and self._unpriced > 0

    async def wait_for_price(self) -> None:
        while self.must_wait():
            self._priced = anyio.Event()
            await self._priced.wait()

    def admit(self, energy: int, now: float | None = None) -> str | None:
        """Reserve room for one order, or say which limit stops it."""
        now = time.time() if now is None else now
        self._expire(now)
        hour_energy, hour_sun = self._hour_energy, self._hour_sun
        estimate = round(energy * self._sun_per_energy) if self._sun_per_energy else 0
        if self.max_energy is not None and self._energy + energy > self.max_energy:
            return f"energy limit reached: {self._energy:,} of {self.max_energy:,} spent"
        if self.max_energy_per_hour is not None and hour_energy + energy > self.max_energy_per_hour:
            return f"hourly energy limit reached: {hour_energy:,} of {self.max_energy_per_hour:,}"
        spent_sun = self._sun + self._reserved_sun
        if self.max_sun is not None and spent_sun + estimate > self.max_sun:
            return f"sun limit reached: {spent_sun:,} of {self.max_sun:,} spent or reserved"
        if self.max_sun_per_hour is not None and hour_sun + estimate > self.max_sun_per_hour:
            return f"hourly sun limit reached: {hour_sun:,} of {self.max_sun_per_hour:,}"
        self._energy += energy
        self._reserved_sun += estimate
        if self._sun_per_energy is None:
            self._unpriced += 1
        self._spend_in_window(now, energy, estimate)
        return None

    def settle(self, energy: int, order: Order | None, now: float | None = None) -> None:
        """Replace one order's reservation by what it really cost (nothing if not bought)."""
        now = time.time() if now is None else now
        if self._priced is not None:
            self._priced.set()
        estimate = round(energy * self._sun_per_energy) if self._sun_per_energy else 0
        self._reserved_sun = max(0, self._reserved_sun - estimate)
        if self._unpriced:
            self._unpriced -= 1
        cost = order.cost_sun if order is not None and order.cost_sun else 0
        if order is None:
            self._energy -= energy  # refused or never sent: it spent nothing
            self._spend_in_window(now, -energy, -estimate)
            return
        self._sun += cost
        self._spend_in_window(now, 0, cost - estimate)
        if cost and energy:
            price = cost / energy
            self._sun_per_energy = max(price, self._sun_per_energy or 0.0)


@dataclass(frozen=True, slots=True)
class _Item:
    request: OrderRequest
    order: Order | None = None  # known order to re-attach (resume)
    resumed: bool = False


class BatchRun:
    """The results of a running batch, in the order they settle.

    ``stop_reason`` says why no more orders are being sent (a spend limit), if any.
    """

    def __init__(self, receive: ObjectReceiveStream[DeliveryResult]) -> None:
        self._receive = receive
        self.stop_reason: str | None = None

    def __aiter__(self) -> AsyncIterator[DeliveryResult]:
        return self._receive.__aiter__()


def run_batch(
    coordinator: Coordinator,
    requests: Iterable[OrderRequest],
    *,
    concurrency: int,
    deadline: float,
    journal: Journal | None,
    spend_guard: SpendGuard | None,
) -> AbstractAsyncContextManager[BatchRun]:
    items = (_Item(request) for request in requests)
    return _batch(
        coordinator,
        _recorded(items, coordinator, journal),
        concurrency,
        deadline,
        journal,
        spend_guard,
    )


def run_resume(
    coordinator: Coordinator,
    journal: Journal,
    *,
    concurrency: int,
    deadline: float,
    spend_guard: SpendGuard | None = None,
) -> AbstractAsyncContextManager[BatchRun]:
    """Finish what a journal left unsettled: send the never-sent, re-attach the rest."""
    return _batch(
        coordinator, _unsettled(coordinator, journal), concurrency, deadline, journal, spend_guard
    )


async def _recorded(
    items: Iterator[_Item], coordinator: Coordinator, journal: Journal | None
) -> AsyncGenerator[_Item, None]:
    """Yield items, committing each chunk's intents to the journal before any is sent."""
    while chunk := list(islice(items, _INTENT_CHUNK)):
        if journal is not None:
            await journal.record_intents(coordinator.provider, [item.request for item in chunk])
        for item in chunk:
            yield item


async def _unsettled(coordinator: Coordinator, journal: Journal) -> AsyncGenerator[_Item, None]:
    from energy_async.journal import EntryState

    async for entry in journal.iter_entries(provider=coordinator.provider):
        if entry.state is EntryState.SETTLED:
            continue
        if entry.state is EntryState.INTENDED:
            yield _Item(entry.request)  # never sent: a normal order
        else:
            yield _Item(entry.request, order=entry.order, resumed=True)


@asynccontextmanager
async def _batch(
    coordinator: Coordinator,
    items: AsyncGenerator[_Item, None],
    concurrency: int,
    deadline: float,
    journal: Journal | None,
    guard: SpendGuard | None,
) -> AsyncIterator[BatchRun]:
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    if (
        journal is not None
        and guard is not None
        and (guard.max_energy_per_hour or guard.max_sun_per_hour)
    ):
        energy, sun = await journal.spent(since=time.time() - _HOUR)
        guard.seed(energy, sun, time.time())
    send, receive = anyio.create_memory_object_stream[DeliveryResult](concurrency)
    run = BatchRun(receive)
    async with anyio.create_task_group() as group:
        group.start_soon(
            _produce, coordinator, items, send, run, concurrency, deadline, journal, guard
        )
        try:
            async with receive:
                yield run
        finally:
            # The caller left early (or failed): stop sending; orders in flight stay
            # unsettled in the journal, to be re-attached by resume.
            group.cancel_scope.cancel()


async def _produce(
    coordinator: Coordinator,
    items: AsyncGenerator[_Item, None],
    send: ObjectSendStream[DeliveryResult],
    run: BatchRun,
    concurrency: int,
    deadline: float,
    journal: Journal | None,
    guard: SpendGuard | None,
) -> None:
    # A semaphore, not a CapacityLimiter: the slot is taken here and handed to the worker,
    # which gives it back when its result is out (limiter tokens belong to one task).
    slots = anyio.Semaphore(concurrency)
    async with send, aclosing(items), anyio.create_task_group() as workers:
        async for item in items:
            await slots.acquire()
            energy = item.request.expected_energy
            if guard is not None and not item.resumed:
                await guard.wait_for_price()
                reason = guard.admit(energy)
                if reason is not None:
                    slots.release()
                    run.stop_reason = reason
                    log.warning("batch stopped sending new orders: %s", reason)
                    break
            workers.start_soon(
                _one, coordinator, item, send, slots, deadline, journal, guard, energy
            )


async def _one(
    coordinator: Coordinator,
    item: _Item,
    send: ObjectSendStream[DeliveryResult],
    slots: anyio.Semaphore,
    deadline: float,
    journal: Journal | None,
    guard: SpendGuard | None,
    energy: int,
) -> None:
    try:
        try:
            result = await coordinator.settle(
                item.request,
                deadline=deadline,
                journal=journal,
                resume_order=item.order,
                resumed=item.resumed,
            )
        except (AuthenticationError, JournalError):
            raise  # wrong credentials or a failing journal: stop the batch, say so once
        except EnergyError as exc:
            # Raised only before anything was sent (the pre-order snapshot failed).
            result = _not_sent(coordinator, item.request, exc)
        if guard is not None and not item.resumed:
            guard.settle(energy, result.order)
        if journal is not None:
            await journal.record_result(item.request.client_order_id, result)
        await send.send(result)
    finally:
        slots.release()


def _not_sent(coordinator: Coordinator, request: OrderRequest, exc: EnergyError) -> DeliveryResult:
    now = time.time()
    return DeliveryResult(
        verdict=Verdict.REJECTED,
        provider=coordinator.provider,
        client_order_id=request.client_order_id,
        request=request,
        order=None,
        evidence=Evidence(
            started_at=now,
            settled_at=now,
            notes=[f"not sent: the target could not be read before ordering ({exc.message})"],
        ),
        error=str(exc),
    )

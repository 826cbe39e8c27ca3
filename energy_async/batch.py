"""Many orders at once: bounded concurrency, streamed results, a journal, a spend guard.

A batch is one anyio task group. Requests are read lazily and at most ``concurrency`` orders
are in flight; a result leaves the batch as soon as it settles, and nothing is kept per order
beyond the journal, so memory stays flat however long the batch is. With a journal, every
order's intent is committed before its create is sent, which is what makes ``resume`` safe
after a crash: it re-attaches unsettled orders by ``client_order_id`` and buys nothing twice.

Every request comes out as exactly one outcome (`BatchRun.outcomes`): a `DeliveryResult`, or a
`Skipped` row the batch did not settle and why (a service was down, the batch was stopped by a
spend limit, a refusal of money or credentials, or a signal). One order's failure, whatever it
is, never cancels another: an unexpected error becomes that order's UNKNOWN result.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Iterator, Sequence
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
    InsufficientBalance,
    JournalError,
    NothingBought,
    error_leaves,
    most_telling,
)
from energy_async.models import DeliveryResult, Evidence, Order, OrderRequest, Verdict

if TYPE_CHECKING:
    from energy_async.coordinator import Coordinator
    from energy_async.journal import Journal
    from energy_async.ledger import Window

__all__ = ["BatchRun", "Outcome", "Skipped", "SpendGuard", "run_batch", "run_resume"]

log = logging.getLogger("energy_async.batch")

# Refusals that would refuse every order after this one: the batch stops sending.
_MONEY_STOPS = {
    "InsufficientBalance": "the provider account cannot pay",
    "AuthenticationError": "credentials refused",
}
_INTENT_CHUNK = 256  # intents committed together, always before any of them is sent
_HOUR = 3600.0


@dataclass(slots=True)
class SpendGuard:
    """Limits on what a batch may spend, in total and per rolling hour.

    Energy is known before an order is sent, so energy limits are exact. The price in sun is
    known only once the provider answers, so sun limits reserve an estimate per order (the
    highest price per energy unit seen so far, or the provider's quote given as
    ``quoted_sun_per_energy``) and, until a first price is known, let one order through at a
    time: the limit can never be overshot by a whole wave of orders. An order whose provider
    reported no price is counted at that estimate, never as free; with no estimate at all the
    guard stops the batch (`blind`) rather than spend without counting. With a journal, what
    its earlier runs spent counts too (`seed_total`, and `seed` for the rolling hour): a
    resumed batch shares one budget with the runs before it.
    """

    max_energy: int | None = None
    max_sun: int | None = None
    max_energy_per_hour: int | None = None
    max_sun_per_hour: int | None = None
    quoted_sun_per_energy: float | None = None
    blind: str | None = None  # why sun can no longer be counted (a price was missing)
    _energy: int = 0
    _sun: int = 0
    _reserved_sun: int = 0
    _unpriced: int = 0  # orders in flight whose price is not known yet
    _sun_per_energy: float | None = None
    _window: deque[tuple[float, int, int]] = field(default_factory=deque)
    _hour_energy: int = 0
    _hour_sun: int = 0
    _priced: anyio.Event | None = None
    _earlier: tuple[int, int] = (0, 0)  # energy and sun spent by earlier runs (`seed_total`)

    def __post_init__(self) -> None:
        limits = (self.max_energy, self.max_sun, self.max_energy_per_hour, self.max_sun_per_hour)
        if any(limit is not None and limit <= 0 for limit in limits):
            raise ConfigurationError("spend limits must be positive")
        if self.quoted_sun_per_energy is not None:
            if not 0 < self.quoted_sun_per_energy < float("inf"):
                raise ConfigurationError("a quoted price must be a positive number")
            self._sun_per_energy = self.quoted_sun_per_energy

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

    def seed(self, energy: int, sun: int, at: float, unpriced_energy: int = 0) -> None:
        """Count spending from before this run (a resumed batch, the last hour)."""
        self._spend_in_window(at, energy, self._earlier_sun(energy, sun, unpriced_energy))

    def seed_total(self, energy: int, sun: int, unpriced_energy: int = 0) -> None:
        """Count what earlier runs of this batch spent (its journal) against the total limits,
        so a resumed batch never spends its budget a second time."""
        sun = self._earlier_sun(energy, sun, unpriced_energy)
        self._energy += energy
        self._sun += sun
        self._earlier = (self._earlier[0] + energy, self._earlier[1] + sun)

    def _earlier_sun(self, energy: int, sun: int, unpriced_energy: int) -> int:
        """Sun spent by earlier runs, their orders whose provider reported no price (of
        ``energy``, ``unpriced_energy`` is theirs) counted at the highest price per energy
        unit known (the earlier runs' average, this guard's quote), never as free."""
        priced_energy = energy - unpriced_energy
        if priced_energy > 0 and sun > 0:
            self._sun_per_energy = max(sun / priced_energy, self._sun_per_energy or 0.0)
        if unpriced_energy <= 0:
            return sun
        if self._sun_per_energy:
            return sun + round(unpriced_energy * self._sun_per_energy)
        if self.limits_sun:
            self.blind = (
                f"earlier runs of this batch bought {unpriced_energy:,} energy at a price no"
                " provider reported, and none is known: the sun limit can no longer be kept"
            )
        return sun

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
        if self.blind is not None:
            return self.blind
        self._expire(now)
        hour_energy, hour_sun = self._hour_energy, self._hour_sun
        estimate = round(energy * self._sun_per_energy) if self._sun_per_energy else 0
        if self.max_energy is not None and self._energy + energy > self.max_energy:
            return (
                f"energy limit reached: {self._energy:,} of {self.max_energy:,} spent"
                + self._before(self._earlier[0])
            )
        if self.max_energy_per_hour is not None and hour_energy + energy > self.max_energy_per_hour:
            return f"hourly energy limit reached: {hour_energy:,} of {self.max_energy_per_hour:,}"
        spent_sun = self._sun + self._reserved_sun
        if self.max_sun is not None and spent_sun + estimate > self.max_sun:
            return (
                f"sun limit reached: {spent_sun:,} of {self.max_sun:,} spent or reserved"
                + self._before(self._earlier[1])
            )
        if self.max_sun_per_hour is not None and hour_sun + estimate > self.max_sun_per_hour:
            return f"hourly sun limit reached: {hour_sun:,} of {self.max_sun_per_hour:,}"
        self._energy += energy
        self._reserved_sun += estimate
        if self._sun_per_energy is None:
            self._unpriced += 1
        self._spend_in_window(now, energy, estimate)
        return None

    @staticmethod
    def _before(amount: int) -> str:
        return f" ({amount:,} by earlier runs of this batch)" if amount else ""

    def settle(self, energy: int, order: Order | None, now: float | None = None) -> None:
        """Replace one order's reservation by what it really cost (nothing if not bought)."""
        now = time.time() if now is None else now
        if self._priced is not None:
            self._priced.set()
        estimate = round(energy * self._sun_per_energy) if self._sun_per_energy else 0
        self._reserved_sun = max(0, self._reserved_sun - estimate)
        if self._unpriced:
            self._unpriced -= 1
        if order is None:
            self._energy -= energy  # refused or never sent: it spent nothing
            self._spend_in_window(now, -energy, -estimate)
            return
        cost = order.cost_sun
        if cost is None or cost < 0:
            # No price (or a nonsensical one, which decoding refuses anyway): count the
            # estimate, never zero; with no estimate, sun can no longer be counted at all.
            cost = estimate
            if not self._sun_per_energy and self.limits_sun:
                self.blind = (
                    f"order {order.id} came without a price and none is known yet: the sun"
                    " limit can no longer be kept"
                )
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


@dataclass(frozen=True, slots=True)
class Skipped:
    """A request the batch did not settle in this run, and why.

    ``sent`` is False when its create never left (nothing was bought: a resume, or a rerun,
    sends it) and True when a create may have left before the batch stopped (it stays
    unsettled in the journal; only a resume, which replays it by ``client_order_id``, may touch
    it). ``service_down`` marks a row not sent because a service was unavailable (safe to retry).
    """

    request: OrderRequest
    reason: str
    sent: bool = False
    service_down: bool = False

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id


Outcome = DeliveryResult | Skipped


class BatchRun:
    """The outcomes of a running batch, in the order they settle.

    Iterating yields the delivery results only; `outcomes` yields every request's outcome,
    `Skipped` rows included. ``stop_reason`` says why no more orders are being sent (a spend
    limit, a refusal of money or credentials, a failing journal, `stop`), if any.
    ``in_flight`` holds the ``client_order_id`` of every order being settled right now.
    """

    def __init__(self, receive: ObjectReceiveStream[Outcome]) -> None:
        self._receive = receive
        self.stop_reason: str | None = None
        self.journal_error: JournalError | None = None
        self.in_flight: set[str] = set()
        self._stopped = anyio.Event()
        self._workers: set[anyio.CancelScope] = set()
        self.aborted = False
        self.route: list[str] = []  # how the batch's provider was chosen: in every result

    def stop(self, reason: str) -> None:
        """Send no new order; those in flight settle, the rest come out as `Skipped`."""
        if self.stop_reason is None:
            self.stop_reason = reason
            log.warning("batch stopped sending new orders: %s", reason)
        self._stopped.set()

    def abort(self) -> None:
        """`stop`, and give up on the orders in flight: they come out as unsettled `Skipped`
        rows (journalled as they stand, for a resume)."""
        self.stop("aborted")
        self.aborted = True
        for scope in self._workers:
            scope.cancel()

    async def outcomes(self) -> AsyncIterator[Outcome]:
        async for outcome in self._receive:
            yield outcome

    async def __aiter__(self) -> AsyncIterator[DeliveryResult]:
        async for outcome in self._receive:
            if isinstance(outcome, DeliveryResult):
                yield outcome


def run_batch(
    coordinator: Coordinator,
    requests: Iterable[OrderRequest],
    *,
    concurrency: int,
    deadline: float,
    journal: Journal | None,
    spend_guard: SpendGuard | None,
    route: Sequence[str] = (),
) -> AbstractAsyncContextManager[BatchRun]:
    """``route``: how the provider was chosen (``--provider auto``), kept in every result."""
    items = (_Item(request) for request in requests)
    return _batch(
        coordinator,
        _recorded(items, coordinator, journal),
        concurrency,
        deadline,
        journal,
        spend_guard,
        route=route,
    )


def run_resume(
    coordinator: Coordinator,
    journal: Journal,
    *,
    concurrency: int,
    deadline: float,
    spend_guard: SpendGuard | None = None,
    route: Sequence[str] = (),
) -> AbstractAsyncContextManager[BatchRun]:
    """Finish what a journal left unsettled at ``coordinator``'s provider: send the never-sent,
    re-attach the rest (never at another provider)."""
    return _batch(
        coordinator,
        _unsettled(coordinator, journal),
        concurrency,
        deadline,
        journal,
        spend_guard,
        route=route,
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

    # Exclusivity across resumes: every settled order keeps the txs it was credited.
    session = coordinator.session
    async for entry in journal.iter_entries(state=EntryState.SETTLED):
        if entry.result is not None:
            coordinator.ledger.remember(entry.result)
            if entry.result.order is not None and entry.provider == coordinator.provider:
                session.note_order(entry.result.order.id, entry.client_order_id)
    async for entry in journal.iter_entries(provider=coordinator.provider):
        if entry.order is not None:
            session.note_order(entry.order.id, entry.client_order_id)
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
    *,
    route: Sequence[str] = (),
) -> AsyncIterator[BatchRun]:
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")
    if journal is not None and guard is not None:
        # What the journal's earlier runs spent counts against this run's limits: in total (a
        # resume must not spend the budget again), and in the rolling hour.
        if guard.max_energy is not None or guard.max_sun is not None:
            energy, sun = await journal.spent()
            guard.seed_total(energy, sun, await journal.unpriced_energy())
        if guard.max_energy_per_hour or guard.max_sun_per_hour:
            since = time.time() - _HOUR
            energy, sun = await journal.spent(since=since)
            guard.seed(energy, sun, time.time(), await journal.unpriced_energy(since=since))
    send, receive = anyio.create_memory_object_stream[Outcome](concurrency)
    run = BatchRun(receive)
    run.route = list(route)
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
    send: ObjectSendStream[Outcome],
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
            if not await _take_slot(slots, run):
                # Stopped: every remaining row still comes out, unsent (or unsettled).
                reason = run.stop_reason or "stopped"
                await send.send(Skipped(item.request, reason, sent=item.resumed))
                continue
            energy = item.request.expected_energy
            if guard is not None and not item.resumed:
                await guard.wait_for_price()
                refusal = guard.admit(energy)
                if refusal is not None:
                    slots.release()
                    run.stop(refusal)
                    await send.send(Skipped(item.request, refusal))
                    continue
            run.in_flight.add(item.request.client_order_id)
            workers.start_soon(
                _one, coordinator, item, send, run, slots, deadline, journal, guard, energy
            )


async def _take_slot(slots: anyio.Semaphore, run: BatchRun) -> bool:
    """True with a slot taken; False once the batch is stopped (a stop must not wait for one)."""
    if run.stop_reason is not None:
        return False
    if slots.value:
        slots.acquire_nowait()
        return True
    taken = False
    async with anyio.create_task_group() as race:

        async def stopped() -> None:
            await run._stopped.wait()
            race.cancel_scope.cancel()

        race.start_soon(stopped)
        await slots.acquire()
        taken = True
        race.cancel_scope.cancel()
    if taken and run.stop_reason is not None:
        slots.release()
        return False
    return taken


async def _one(
    coordinator: Coordinator,
    item: _Item,
    send: ObjectSendStream[Outcome],
    run: BatchRun,
    slots: anyio.Semaphore,
    deadline: float,
    journal: Journal | None,
    guard: SpendGuard | None,
    energy: int,
) -> None:
    request = item.request
    try:
        with anyio.CancelScope() as scope:
            run._workers.add(scope)
            if run.aborted:
                scope.cancel()
            outcome: Outcome = await _settle(coordinator, item, run, deadline, journal)
        run._workers.discard(scope)
        if scope.cancelled_caught:
            outcome = Skipped(request, "interrupted while in flight", sent=True)
        if guard is not None and not item.resumed:
            bought = outcome.order if isinstance(outcome, DeliveryResult) else None
            guard.settle(energy, bought)
            if guard.blind is not None:
                run.stop(guard.blind)
        if isinstance(outcome, DeliveryResult) and outcome.error_kind in _MONEY_STOPS:
            # The money (or the key to it) stopped: nothing more is sent, like a spend limit.
            # The refused order bought nothing; it stays to do (a resume replays it by id).
            reason = f"{_MONEY_STOPS[outcome.error_kind]}: {outcome.error}"
            run.stop(reason)
            outcome = Skipped(request, reason)
        if isinstance(outcome, DeliveryResult) and run.route and not outcome.evidence.route:
            outcome.evidence.route = list(run.route)
        if isinstance(outcome, DeliveryResult) and journal is not None:
            await _journal_result(journal, run, outcome)
        await send.send(outcome)
    finally:
        run.in_flight.discard(request.client_order_id)
        slots.release()


async def _settle(
    coordinator: Coordinator, item: _Item, run: BatchRun, deadline: float, journal: Journal | None
) -> Outcome:
    """This order's outcome, whatever happens to it: never an exception that would cancel
    the orders beside it."""
    request = item.request
    try:
        if item.resumed and item.order is None and journal is not None:
            await _note_sent_before(coordinator, journal, request.client_order_id)
        return await coordinator.settle(
            request,
            deadline=deadline,
            hooks=_JournalHooks(journal) if journal is not None else None,
            resume_order=item.order,
            resumed=item.resumed,
        )
    except Exception as caught:  # whatever it is, it costs this order, never the batch
        return await _failed(coordinator, item, run, journal, caught)


async def _failed(
    coordinator: Coordinator, item: _Item, run: BatchRun, journal: Journal | None, caught: Exception
) -> Outcome:
    """The outcome of an order whose settling raised. The referee's task group wraps what a
    witness or a journal hook raised in an `ExceptionGroup`: the errors inside it are what
    happened (a journal error first, as it stops the batch), never the group."""
    request = item.request
    errors = error_leaves(caught)
    exc = next((e for e in errors if isinstance(e, JournalError)), None) or most_telling(errors)
    if isinstance(exc, NothingBought):
        return Skipped(request, f"not sent: {exc.message}", service_down=True)
    if isinstance(exc, AuthenticationError | InsufficientBalance):
        reason = f"{_money_stop(exc)}: {exc.message}"
        run.stop(reason)
        sent = not exc.not_sent and await _maybe_sent(journal, item)
        return Skipped(request, reason, sent=sent)
    if isinstance(exc, JournalError):
        _journal_failed(run, exc)
        why = str(exc) if "journal" in exc.message else f"journal write failed: {exc}"
        return _unknown(coordinator, request, why)
    if isinstance(exc, EnergyError):
        if not await _maybe_sent(journal, item):
            return Skipped(request, f"not sent: {exc}", service_down=exc.retryable)
        return _unknown(coordinator, request, str(exc))
    # A bug must cost this order its verdict, not the whole batch.
    log.debug("order %s failed unexpectedly", request.client_order_id, exc_info=caught)
    return _unknown(
        coordinator, request, f"unexpected error {type(exc).__name__}: {_first_line(exc)}"
    )


@dataclass(frozen=True, slots=True)
class _JournalHooks:
    """The coordinator's order hooks, written to the journal."""

    journal: Journal

    async def on_sending(self, client_order_id: str) -> None:
        await self.journal.mark_sent(client_order_id)

    async def on_order(self, client_order_id: str, order: Order) -> None:
        await self.journal.record_order(client_order_id, order)

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> dict[str, str]:
        return await self.journal.claim_credits(client_order_id, target, tx_ids)

    async def windows_touching(self, targets: Sequence[str]) -> dict[str, list[Window]]:
        return await self.journal.windows_touching(targets)


async def _note_sent_before(
    coordinator: Coordinator, journal: Journal, client_order_id: str
) -> None:
    """A resumed order whose create may have left in an earlier run: a provider with no
    idempotency key must reconcile it from the intent's time on, never send it blindly."""
    from energy_async.providers._base import Idempotency

    if coordinator.session.provider.idempotency is not Idempotency.NONE:
        return
    entry = await journal.get(client_order_id)
    if entry is None:  # it was just read from this journal: never place it blind
        raise JournalError(f"the journal lost {client_order_id!r} while resuming it")
    coordinator.session.note_sent_before(client_order_id, entry.created_at)


def _money_stop(exc: EnergyError) -> str:
    kind = "InsufficientBalance" if isinstance(exc, InsufficientBalance) else "AuthenticationError"
    return _MONEY_STOPS[kind]


async def _maybe_sent(journal: Journal | None, item: _Item) -> bool:
    """Whether this order's create may have left: the journal knows; without one, assume so
    unless the coordinator said otherwise (it raises before sending only for a failed
    pre-order look, which it reports as `NothingBought`)."""
    if item.resumed:
        return True
    if journal is None:
        return True
    from energy_async.journal import EntryState

    try:
        entry = await journal.get(item.request.client_order_id)
    except JournalError:
        return True
    return entry is None or entry.state is not EntryState.INTENDED


async def _journal_result(journal: Journal, run: BatchRun, result: DeliveryResult) -> None:
    if run.journal_error is not None:
        return  # the journal failed already: the CLI lists what it could not record
    try:
        await journal.record_result(result.client_order_id, result)
    except JournalError as exc:
        _journal_failed(run, exc)


def _journal_failed(run: BatchRun, exc: JournalError) -> None:
    if run.journal_error is None:
        run.journal_error = exc
    run.stop(f"the journal failed ({exc.message}); nothing more is sent")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else ""


def _unknown(coordinator: Coordinator, request: OrderRequest, why: str) -> DeliveryResult:
    now = time.time()
    return DeliveryResult(
        verdict=Verdict.UNKNOWN,
        provider=coordinator.provider,
        client_order_id=request.client_order_id,
        request=request,
        order=None,
        evidence=Evidence(
            started_at=now,
            settled_at=now,
            notes=[f"outcome not settled ({why}); resolve it by client_order_id (--resume)"],
        ),
        error=why,
    )

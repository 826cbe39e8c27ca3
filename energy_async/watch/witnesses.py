"""The two witnesses: I/O only. Each look becomes one event handed to the referee.

The provider witness creates (or replays) the order, then polls it. The chain witness reads
what the current phase needs, within the TronGrid budget, and is woken as soon as a tx is named.
Neither decides anything: the referee applies their events and asks the judge.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
from yarl import URL

from energy_async.energy import EnergyTotals
from energy_async.errors import (
    AuthenticationError,
    DuplicateOrder,
    EnergyError,
    InputError,
    JournalError,
    NetworkError,
    NothingBought,
    OutcomeUnknown,
    ProviderError,
)
from energy_async.models import (
    DelegatedResource,
    DelegationTx,
    Order,
    OrderPhase,
    ResourceSnapshot,
)
from energy_async.session import REPLAY_MISMATCH
from energy_async.slots import BLOCK_OUT_MS, first_poll_delay, next_poll_delay
from energy_async.watch.attribution import TxStatus, before_the_order, judge_tx, provider_silent
from energy_async.watch.events import (
    ChainFailed,
    CreateRefused,
    CreateSent,
    CreateUnsettled,
    Event,
    OrderSeen,
    PollFailed,
    SnapshotRead,
    TxRead,
)

if TYPE_CHECKING:
    from energy_async._http import CallMeter
    from energy_async.ledger import OrderLedger, Window
    from energy_async.session import ProviderSession
    from energy_async.slots import NamingLead, SlotClock
    from energy_async.verifier import Verifier
    from energy_async.watch.policy import PollPolicy
    from energy_async.watch.state import WatchState

__all__ = [
    "ChainWitness",
    "CreditClaims",
    "Delegators",
    "Observer",
    "OrderHooks",
    "Phase",
    "PhaseHook",
    "ProviderWitness",
    "SharedWindows",
]

# Words a provider's refusal uses when the client_order_id is taken: the order exists.
_DUPLICATE_WORDS = ("duplicate", "already exist", "already used", "repeat")


class Phase(enum.StrEnum):
    """The steps of one order a user can follow, in the order they come."""

    ORDERED = "ordered"  # detail: the provider's order id
    TX_NAMED = "tx named"  # detail: the txid(s) the provider names
    IN_BLOCK = "in block"  # detail: the block number
    VERIFIED = "verified"  # detail: the verdict


class PhaseHook(Protocol):
    """Optional on an :class:`OrderHooks`: told each :class:`Phase` once, as it happens.

    Called synchronously from the watch, so it must be quick (print, log) and never block.
    """

    def on_phase(self, client_order_id: str, phase: Phase, detail: str) -> None: ...


class OrderHooks(Protocol):
    """What a batch (its journal) hears about an order while it is watched.

    An implementation may also have ``on_phase`` (:class:`PhaseHook`); it is not required.
    """

    async def on_sending(self, client_order_id: str) -> None:
        """The first create is about to be sent (commit the intent as sent first)."""

    async def on_order(self, client_order_id: str, order: Order) -> None:
        """The provider answered with the order, or its status changed."""


@runtime_checkable
class CreditClaims(Protocol):
    """Optional, beside :class:`OrderHooks`: exclusivity shared beyond this process.

    Hooks that also define ``claim_credits`` are asked before a delegation tx may count for
    an order; hooks without it leave exclusivity to the in-process ledger alone.
    """

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> Mapping[str, str]:
        """Credit ``tx_ids`` to the order unless another order holds them; returns the txs
        another order already holds, each with that order's ``client_order_id``."""
        ...


@runtime_checkable
class SharedWindows(Protocol):
    """Optional, beside :class:`OrderHooks`: other processes' orders to the same address.

    Hooks that also define ``windows_touching`` are asked, just before the EnergyLimit delta
    could speak for an order (no tx named, the limit rose), which orders held elsewhere may
    touch its target; the ledger learns them, so the delta never speaks for an order while
    another worker's order to the same address, claimed since, may explain it.
    """

    async def windows_touching(self, targets: Sequence[str]) -> Mapping[str, Sequence[Window]]:
        """The windows of orders held by other processes to each of ``targets``."""
        ...


class Observer(Protocol):
    """The referee, as the witnesses see it."""

    state: WatchState
    fatal: EnergyError | None

    def observe(self, event: Event) -> None: ...

    def fail(self, error: EnergyError) -> None: ...

    def budget_spent(self) -> bool: ...


class ProviderWitness:
    def __init__(
        self,
        session: ProviderSession,
        policy: PollPolicy,
        meter: CallMeter,
        hooks: OrderHooks | None,
        slots: SlotClock | None = None,
        naming: NamingLead | None = None,
    ) -> None:
        self.session = session
        self.policy = policy
        self.meter = meter
        self.hooks = hooks
        self.slots = slots
        self.naming = naming
        self._lead_ms: int | None = None  # the lead of this order's first question, if timed

    def done(self, state: WatchState) -> bool:
        """The provider has said all it will say: stop asking."""
        order = state.order
        if order is None:
            return state.refused is not None
        return order.phase in (OrderPhase.CONFIRMED, OrderPhase.FAILED) and bool(
            order.delegate_hashes
        )

    async def run(self, referee: Observer) -> None:
        interval = self.policy.initial_interval
        polled = 0
        while not self.done(referee.state):
            if referee.state.order is None:
                await self.create(referee)
            else:
                await self.poll(referee)
                polled += 1
                if polled == 1 and self._lead_ms is not None and self.naming is not None:
                    self.naming.heard(bool(referee.state.named))
            if referee.fatal is not None:
                return
            if referee.state.named:
                # The chain is the witness now: a delivery needs nothing more from the
                # provider, so ask it only at the slowest pace (for a failure it may report;
                # at the deadline the referee asks once more if the chain never showed a tx).
                interval = self.policy.max_interval
            await anyio.sleep(self._wait(referee.state, interval, polled))
            interval = min(interval * self.policy.backoff, self.policy.max_interval)

    def _wait(self, state: WatchState, interval: float, polled: int) -> float:
        """Until the next question: ``interval``, moved onto the slot schedule while the
        provider has an order but has not named its tx (`energy_async.slots`): the first
        question at the learned lead after the first slot after the create, a second one (if
        that was early) when that block is surely out, later ones on a block out."""
        phase = self.slots.phase_ms if self.slots is not None else None
        if phase is None or state.order is None or state.named or state.ordered_at is None:
            return interval
        now_ms, sent_ms = time.time() * 1000, state.ordered_at * 1000
        if not polled:
            self._lead_ms = self.naming.lead_ms if self.naming is not None else BLOCK_OUT_MS
            return first_poll_delay(now_ms, sent_ms, phase, self._lead_ms)
        if polled == 1 and self._lead_ms is not None and self._lead_ms < BLOCK_OUT_MS:
            surely_out = first_poll_delay(now_ms, sent_ms, phase)
            if surely_out > 0:
                return surely_out
        return next_poll_delay(now_ms, interval, phase)

    async def create(self, referee: Observer) -> None:
        """Send the create, or replay it: the same ``client_order_id`` makes a replay return
        the earlier order, so this can be repeated until it settles and never buys twice."""
        state = referee.state
        if state.ordered_clock is None:
            referee.observe(CreateSent(anyio.current_time(), time.time()))
        try:
            order = await self.session.place(state.request, meter=self.meter)
        except (AuthenticationError, InputError) as exc:
            # Wrong for every order: configuration, not a verdict. Refused before any charge,
            # so nothing was bought unless an earlier attempt of this create may have been.
            exc.not_sent = not referee.state.unsettled
            referee.fail(exc)
            return
        except NetworkError as exc:
            if exc.not_sent and not referee.state.unsettled:
                referee.fail(self._never_left(exc))  # fail fast: nothing was bought
                return
            referee.observe(CreateUnsettled(type(exc).__name__, str(exc), anyio.current_time()))
            return
        except OutcomeUnknown as exc:
            referee.observe(CreateUnsettled(type(exc).__name__, str(exc), anyio.current_time()))
            return
        except DuplicateOrder as exc:
            if exc.code == REPLAY_MISMATCH:
                # The id belongs to another order: this create bought nothing new.
                referee.observe(
                    CreateRefused(
                        str(exc), anyio.current_time(), maybe_sent=False, kind=type(exc).__name__
                    )
                )
                return
            # The provider says an order exists for this id: possibly ours. Look it up.
            referee.observe(
                CreateRefused(str(exc), anyio.current_time(), maybe_sent=True, duplicate=True)
            )
            return
        except ProviderError as exc:
            words = f"{exc.message} {exc.provider_message or ''}".lower()
            duplicate = any(word in words for word in _DUPLICATE_WORDS)
            referee.observe(
                CreateRefused(
                    str(exc),
                    anyio.current_time(),
                    maybe_sent=referee.state.unsettled,
                    duplicate=duplicate,
                    kind=type(exc).__name__,
                )
            )
            return
        except EnergyError as exc:
            # Throttling that outlasted the session's retries, a garbled answer: the replay of
            # the same client_order_id settles it, so keep going.
            referee.observe(CreateUnsettled(type(exc).__name__, str(exc), anyio.current_time()))
            return
        replayed = referee.state.unsettled
        referee.observe(OrderSeen(order, anyio.current_time(), time.time(), replayed=replayed))
        if self.hooks is not None:
            await self.hooks.on_order(state.request.client_order_id, order)

    def _never_left(self, error: NetworkError) -> NothingBought:
        host = URL(self.session.provider.base_url).host
        name = self.session.provider.name
        refused = NothingBought(
            f"could not reach {name} at {host} ({error.message}); the order was never sent, "
            "nothing was bought, safe to retry",
            service=name,
            host=host,
            attempts=error.attempts,
        )
        refused.__cause__ = error
        return refused

    async def poll(self, referee: Observer) -> None:
        order = referee.state.order
        assert order is not None
        try:
            fresh = await self.session.get_order(order.id, meter=self.meter)
        except EnergyError as exc:
            referee.observe(PollFailed(type(exc).__name__, anyio.current_time()))
            return
        referee.observe(OrderSeen(fresh, anyio.current_time(), time.time()))
        if self.hooks is not None and fresh.status != order.status:
            await self.hooks.on_order(referee.state.request.client_order_id, fresh)


class Delegators:
    """The address a provider last delegated from, kept by its Coordinator for the next
    order's first look (a guess that saves a round trip; it decides nothing)."""

    def __init__(self) -> None:
        self.last: str | None = None


class ChainWitness:
    def __init__(
        self,
        verifier: Verifier,
        policy: PollPolicy,
        meter: CallMeter,
        ledger: OrderLedger,
        delegators: Delegators | None = None,
        *,
        hooks: OrderHooks | None = None,
    ) -> None:
        self.verifier = verifier
        self.policy = policy
        self.meter = meter
        self.ledger = ledger
        self.delegators = delegators if delegators is not None else Delegators()
        self.credits = hooks if isinstance(hooks, CreditClaims) else None
        self.windows = hooks if isinstance(hooks, SharedWindows) else None
        self.journaled: set[str] = set()  # txs the shared journal credits to this order
        self.named = anyio.Event()  # set by the referee when the provider names a tx
        self.named_clock = 0.0  # time.monotonic() when it last did

    async def run(self, referee: Observer) -> None:
        interval = self.policy.initial_interval
        while True:
            # Wait out the backoff, unless the provider names a tx: then look at once.
            # (The target was read just before the create, so waiting first costs nothing.)
            with anyio.move_on_after(interval):
                await self.named.wait()
            if self.named.is_set():
                self.named = anyio.Event()
                interval = self.policy.initial_interval
            else:
                interval = min(interval * self.policy.backoff, self.policy.max_interval)
            await self.look(referee)
            if referee.budget_spent() or referee.fatal is not None:
                return

    async def look(self, referee: Observer) -> None:
        """One look at the chain, spending only the calls this phase needs; every tx read in
        it is published with the record and the snapshot of the same look."""
        if referee.budget_spent():
            return
        state = referee.state
        try:
            if not state.named:
                if not provider_silent(state, self.policy, anyio.current_time()):
                    return  # the provider is about to name its tx: nothing to read yet
                # The provider is silent: the EnergyLimit is all there is to watch.
                await self.snapshot(referee)
                return
            await self.read_txs(referee)
        except* EnergyError as group:
            kinds = tuple(sorted({type(exc).__name__ for exc in group.exceptions}))
            referee.observe(ChainFailed(kinds, anyio.current_time()))

    async def snapshot(self, referee: Observer) -> None:
        state = referee.state
        snapshot = await self.verifier.snapshot(state.target, meter=self.meter)
        before = state.before
        rose = before is not None and snapshot.energy_limit > before.energy_limit
        if rose and not state.named and self.windows is not None:
            # The delta may speak: first learn who else (another worker) may explain it.
            try:
                found = await self.windows.windows_touching([state.target])
            except JournalError:
                return  # unknown: the delta stays silent this look; the next one asks again
            self.ledger.learn(state.target, list(found.get(state.target, ())))
        referee.observe(SnapshotRead(snapshot, anyio.current_time()))

    async def read_txs(self, referee: Observer) -> None:
        """Every named tx not yet judged, then for those that are ours their delegators'
        records, priced by the target's snapshot unless totals read after their blocks are
        at hand.

        A tx read for the first time is read beside the record of the provider's last
        delegator and, when no totals were learned since the tx was named, the target's
        snapshot: when the guess is right (a provider delegates from its pool), the whole
        look is one round trip. A wrong guess costs the record read after, as without it.
        A guessed record that holds less than the txs delegated may have been served before
        their block: it is read again after them, in the same look, before it can cap them.
        """
        state = referee.state
        wanted = [
            txid
            for txid in state.named
            if txid not in state.txs
            or judge_tx(state, txid, self.policy)[0] not in (TxStatus.COUNTS, TxStatus.DISQUALIFIED)
        ]
        first = any(txid not in state.txs for txid in wanted)
        guess = self.delegators.last if first else None
        # The target's snapshot beside the tx saves a round trip when nothing else will
        # price it; a read under way for another order will (shared totals), most likely.
        early = (
            first
            and self.verifier.totals.learned_clock() < self.named_clock
            and not self.verifier.snapshots_in_flight
        )
        looked, records, snapshot = await self._first_round(
            referee, wanted, guess=guess, snapshot=early
        )
        owners = {txid: self._claim(state, tx) for txid, tx in looked.items()}
        if not await self._claim_shared(referee, owners):
            return
        for txid, look in state.txs.items():
            owners.setdefault(txid, look.owner)
        counted = [
            looked.get(txid) or state.txs[txid].tx
            for txid, owner in owners.items()
            if owner == state.key
        ]
        delegators = sorted({tx.owner for tx in counted if tx.owner})
        if delegators:
            self.delegators.last = delegators[0]
        for owner, record in list(records.items()):
            if record.energy_sun < sum(tx.balance_sun for tx in counted if tx.owner == owner):
                del records[owner]  # perhaps served before the block: read it after
        block_ms = _latest_block_ms(counted)
        totals = None
        if snapshot is None and block_ms is not None:
            totals = self.verifier.totals.since(block_ms)
        missing = [owner for owner in delegators if owner not in records]
        priced = snapshot is not None or totals is not None
        fresh: set[str] = set()  # delegators whose record was asked for after the block
        if delegators and (missing or not priced) and not referee.budget_spent():
            more, later, shared = await self._records_and_price(
                state.target, missing, price=not priced, block_ms=block_ms
            )
            records.update(more)
            fresh.update(more)
            snapshot = snapshot or later
            totals = totals or shared
        now, at = anyio.current_time(), time.time()
        for txid in state.named:
            tx = looked.get(txid)
            reread = tx is not None
            if tx is None:
                # Not read again (it counts already): refresh its record and price only.
                tx = state.txs[txid].tx
                if owners.get(txid) != state.key or (snapshot is None and tx.owner not in fresh):
                    continue
            referee.observe(
                TxRead(
                    tx,
                    now,
                    at,
                    record=records.get(tx.owner or ""),
                    snapshot=snapshot,
                    owner=owners[txid],
                    reread=reread,
                    totals=totals if snapshot is None else None,
                    record_after_block=tx.owner in fresh,
                )
            )

    async def _first_round(
        self, referee: Observer, txids: list[str], *, guess: str | None, snapshot: bool
    ) -> tuple[dict[str, DelegationTx], dict[str, DelegatedResource], ResourceSnapshot | None]:
        """The txs (info and body each), and the guessed record and the snapshot when asked,
        all side by side within the budget."""
        looked: dict[str, DelegationTx] = {}
        records: dict[str, DelegatedResource] = {}
        taken: ResourceSnapshot | None = None
        target = referee.state.target
        per_tx = 3 if self.policy.require_solid else 2  # info and body, and solid when asked
        room = self.policy.trongrid_budget - self.meter.calls
        txids = txids[: max(room // per_tx, 1)] if not referee.budget_spent() else []
        if room - per_tx * len(txids) < 2:
            guess, snapshot = None, False

        async def read(txid: str) -> None:
            looked[txid] = await self.verifier.delegation(
                txid, check_solid=self.policy.require_solid, meter=self.meter
            )

        async def read_record(owner: str) -> None:
            records[owner] = await self.verifier.delegated_resource(owner, target, meter=self.meter)

        async def take_snapshot() -> None:
            nonlocal taken
            taken = await self.verifier.snapshot(target, meter=self.meter)

        if len(txids) == 1 and guess is None and not snapshot:
            await read(txids[0])  # no task group for the usual lone read
            return looked, records, None
        async with anyio.create_task_group() as group:
            for txid in txids:
                group.start_soon(read, txid)
            if guess is not None:
                group.start_soon(read_record, guess)
            if snapshot:
                group.start_soon(take_snapshot)
        return looked, records, taken

    def _claim(self, state: WatchState, tx: DelegationTx) -> str | None:
        """Credit a tx that delivers to the target to this order, unless another has it."""
        delivers = (
            tx.in_block
            and not tx.half_found
            and not tx.failed
            and tx.contract_type == "DelegateResourceContract"
            and tx.receiver == state.target
            and tx.authentic is not False
        )
        if not delivers:
            return self.ledger.owner(tx.txid)
        if before_the_order(state, tx) is not None:
            return self.ledger.owner(tx.txid)  # older than the order: never ours to claim
        return self.ledger.claim(tx.txid, state.key)

    async def _claim_shared(self, referee: Observer, owners: dict[str, str | None]) -> bool:
        """Claim in the shared journal what the in-process ledger gave this order, before it
        can count: a tx another worker's order holds is that order's (``owners`` says whose).

        A journal that cannot be written fails the order (as any journal write does): False,
        and nothing read in this look is published, so no tx counts on it.
        """
        state = referee.state
        if self.credits is None:
            return True
        mine = [t for t, owner in owners.items() if owner == state.key and t not in self.journaled]
        if not mine:
            return True
        try:
            held = await self.credits.claim_credits(state.key, state.target, mine)
        except JournalError as exc:
            referee.fail(exc)
            return False
        for txid in mine:
            holder = held.get(txid)
            if holder is None or holder == state.key:
                self.journaled.add(txid)
            else:
                self.ledger.cede(txid, state.key, holder)
                owners[txid] = holder
        return True

    async def _records_and_price(
        self, target: str, delegators: list[str], *, price: bool, block_ms: int | None
    ) -> tuple[dict[str, DelegatedResource], ResourceSnapshot | None, EnergyTotals | None]:
        """The delegators' records and, when asked, the price: totals read after ``block_ms``
        (one read shared with the orders asking meanwhile) or, without a block time, the
        target's snapshot."""
        records: dict[str, DelegatedResource] = {}
        snapshot: ResourceSnapshot | None = None
        totals: EnergyTotals | None = None

        async def read_record(owner: str) -> None:
            records[owner] = await self.verifier.delegated_resource(owner, target, meter=self.meter)

        async def read_price() -> None:
            nonlocal snapshot, totals
            if block_ms is None:
                snapshot = await self.verifier.snapshot(target, meter=self.meter)
            else:
                totals, snapshot = await self.verifier.priced_after(
                    block_ms, target, meter=self.meter
                )

        if len(delegators) == 1 and not price:
            await read_record(delegators[0])  # no task group for the usual single record
            return records, snapshot, totals
        async with anyio.create_task_group() as group:
            for owner in delegators:
                group.start_soon(read_record, owner)
            if price:
                group.start_soon(read_price)
        return records, snapshot, totals


def _latest_block_ms(counted: list[DelegationTx]) -> int | None:
    """The newest block time of the counted txs (None: some block time is unknown)."""
    times = [tx.block_time_ms for tx in counted]
    if not times or any(ms is None for ms in times):
        return None
    return max(ms for ms in times if ms is not None)

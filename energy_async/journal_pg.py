"""The journal in PostgreSQL: one batch shared by many workers, on one or several machines.

Same contract as the SQLite journal (`energy_async.journal_contract`), plus what many workers
need: ``claim`` takes unsettled orders with row locks that skip what other workers hold
(``FOR UPDATE SKIP LOCKED``) and leases them; ``renew`` is the heartbeat; an order whose lease
expired (its worker died) is claimed again and re-attached by replaying its ``client_order_id``,
never bought again. Spend limits are checked and reserved in the database, in the claim's own
transaction, under one lock row (``budget``), so N workers together never cross a limit.

Times that decide who owns an order (leases) are the database server's clock, so workers on
machines whose clocks disagree still agree on when a lease expired. The budget is the whole
journal's: every order any worker of any run reserved or paid for counts against a limit
(the safe reading of "a limit for this batch" once a batch is shared).

The driver is psycopg 3 (imported only here, and only when a DSN is used). Writes queue and are
committed together (group commit) through one connection; a write returns only once committed.
When the connection is lost, writes wait while the journal reconnects with backoff and then
commit what was queued (every write is idempotent, so a commit whose outcome was lost is safely
repeated); if it cannot reconnect before this worker's leases expire, every waiting write fails
with `JournalUnavailable` naming the orders it held.

Nothing secret is stored: the DSN is never written, shown only without its password, and an
order's raw provider fields hold no credential-like keys (``Order`` drops them when built).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar
from urllib.parse import urlsplit

import anyio
import msgspec
import psycopg
from anyio.abc import AsyncResource

from energy_async.errors import JournalError, JournalUnavailable
from energy_async.journal import EntryState, JournalEntry
from energy_async.journal_contract import (
    check_belongs,
    check_request,
    decode_entry,
    encode_result,
    spent_where,
    unknown_intent,
)
from energy_async.ledger import Window, lingers
from energy_async.models import DeliveryResult, Order, OrderRequest, Verdict

__all__ = ["APPLICATION", "SCHEMA_VERSION", "Claim", "PgJournal", "SpendLimits", "redact_dsn"]

log = logging.getLogger("energy_async.journal")

APPLICATION = "energy_async journal"
SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "energy_async"

_PAGE_SIZE = 512
_CONNECT_TIMEOUT = 5  # seconds, per connection attempt
_RECONNECT_TIMEOUT = 30.0  # seconds to keep trying when this process holds no lease
_BACKOFF = (0.05, 2.0)  # first and longest pause between reconnection attempts
_HOUR = 3600.0
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_STATES = [str(state) for state in EntryState]

_TABLES = frozenset({"meta", "entries", "budget", "credits"})
_DDL = (
    "CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)",
    """
    CREATE TABLE {s}.entries (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        client_order_id text NOT NULL UNIQUE,
        provider text NOT NULL,
        state text NOT NULL,
        request text NOT NULL,
        order_json text,
        result text,
        verdict text,
        energy bigint NOT NULL,
        sun bigint,
        created_at double precision NOT NULL,
        updated_at double precision NOT NULL,
        sent_at double precision,
        holder text,
        lease_until double precision,
        reserved_at double precision,
        spend_energy bigint NOT NULL DEFAULT 0,
        spend_sun bigint NOT NULL DEFAULT 0,
        unpriced boolean NOT NULL DEFAULT false
    )
    """,
    "CREATE INDEX entries_unsettled ON {s}.entries (provider, seq) WHERE state <> 'SETTLED'",
    "CREATE INDEX entries_sent ON {s}.entries (sent_at) WHERE sent_at IS NOT NULL",
    "CREATE INDEX entries_reserved ON {s}.entries (reserved_at) WHERE reserved_at IS NOT NULL",
    """
    CREATE TABLE {s}.budget (
        id smallint PRIMARY KEY CHECK (id = 1),
        energy bigint NOT NULL DEFAULT 0,
        sun bigint NOT NULL DEFAULT 0,
        sun_per_energy double precision,
        unpriced integer NOT NULL DEFAULT 0
    )
    """,
    "INSERT INTO {s}.budget (id) VALUES (1)",
    # One delegation tx credited to one order (exclusivity), across workers and runs.
    """
    CREATE TABLE {s}.credits (
        tx_id text PRIMARY KEY,
        client_order_id text NOT NULL REFERENCES {s}.entries (client_order_id),
        target text NOT NULL,
        credited_at double precision NOT NULL
    )
    """,
    "CREATE INDEX credits_target ON {s}.credits (target)",
)
_COLUMNS = (
    "client_order_id, provider, state, request, order_json, result, verdict,"
    " created_at, updated_at, sent_at"
)
_CLOCK = "extract(epoch FROM clock_timestamp())::double precision"

_encode = msgspec.json.Encoder().encode
_decode_request = msgspec.json.Decoder(OrderRequest).decode

_T = TypeVar("_T")
_Cursor: TypeAlias = "psycopg.AsyncCursor[tuple[Any, ...]]"
_Op = Callable[[_Cursor, float], Awaitable[_T]]


def redact_dsn(dsn: str) -> str:
    """The DSN fit to show: scheme, user, host, port and database; no password, no options."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
    except ValueError:
        return "postgresql://(unparsable DSN)"
    return f"{parts.scheme}://{user}{host}{port}{parts.path}"


@dataclass(frozen=True, slots=True)
class SpendLimits:
    """Limits the database enforces across every worker (energy units and sun)."""

    max_energy: int | None = None
    max_sun: int | None = None
    max_energy_per_hour: int | None = None
    max_sun_per_hour: int | None = None

    @property
    def any(self) -> bool:
        return any(
            limit is not None
            for limit in (
                self.max_energy,
                self.max_sun,
                self.max_energy_per_hour,
                self.max_sun_per_hour,
            )
        )

    @property
    def limits_sun(self) -> bool:
        return self.max_sun is not None or self.max_sun_per_hour is not None


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim took: entries now leased to this worker, and why it took no more."""

    entries: tuple[JournalEntry, ...]
    stop_reason: str | None = None  # a spend limit: no new order may be sent
    must_wait: bool = False  # a sun limit and no price known yet: retry once one is


# One entry moves forward: the state only ever advances (a settled entry stays settled), the
# order, result and costs are replaced when given, and the entry's share of the budget follows
# its cost (or drops to nothing when nothing was bought). Returns the budget deltas.
_ADVANCE = """
WITH old AS (
    SELECT seq, state, energy, spend_energy, spend_sun, unpriced
    FROM {s}.entries WHERE client_order_id = %(cid)s FOR UPDATE
)
UPDATE {s}.entries AS e SET
    state = CASE
        WHEN array_position(%(states)s::text[], old.state)
             >= array_position(%(states)s::text[], %(state)s::text) THEN old.state
        ELSE %(state)s::text END,
    order_json = CASE WHEN %(order_in_result)s THEN NULL
        ELSE coalesce(%(order)s::text, e.order_json) END,
    energy = coalesce(%(energy)s::bigint, e.energy),
    sun = CASE WHEN %(order)s::text IS NULL THEN e.sun ELSE %(sun)s::bigint END,
    sent_at = CASE WHEN %(sent)s THEN coalesce(e.sent_at, %(now)s) ELSE e.sent_at END,
    updated_at = %(now)s,
    result = coalesce(%(result)s::text, e.result),
    verdict = coalesce(%(verdict)s::text, e.verdict),
    holder = CASE WHEN %(release)s THEN NULL ELSE e.holder END,
    lease_until = CASE WHEN %(release)s THEN NULL ELSE e.lease_until END,
    spend_energy = CASE
        WHEN %(free)s THEN 0
        WHEN %(sun)s::bigint IS NULL THEN e.spend_energy
        ELSE coalesce(%(energy)s::bigint, old.energy) END,
    spend_sun = CASE
        WHEN %(free)s THEN 0
        WHEN %(sun)s::bigint IS NULL THEN e.spend_sun
        ELSE %(sun)s::bigint END,
    reserved_at = CASE
        WHEN %(sun)s::bigint IS NULL THEN e.reserved_at
        ELSE coalesce(e.reserved_at, %(now)s) END,
    unpriced = CASE WHEN %(priced)s THEN false ELSE e.unpriced END
FROM old WHERE e.seq = old.seq
RETURNING e.spend_energy - old.spend_energy, e.spend_sun - old.spend_sun, old.unpriced
"""


_RELEASE = """
WITH old AS (
    SELECT seq, state = %s AS unsent, spend_energy, spend_sun, unpriced FROM {s}.entries
    WHERE holder = %s AND client_order_id = ANY(%s) FOR UPDATE
), freed AS (
    UPDATE {s}.entries AS e SET holder = NULL, lease_until = NULL,
        spend_energy = CASE WHEN old.unsent THEN 0 ELSE e.spend_energy END,
        spend_sun = CASE WHEN old.unsent THEN 0 ELSE e.spend_sun END,
        reserved_at = CASE WHEN old.unsent THEN NULL ELSE e.reserved_at END,
        unpriced = CASE WHEN old.unsent THEN false ELSE e.unpriced END
    FROM old WHERE e.seq = old.seq
    RETURNING old.unsent, old.spend_energy, old.spend_sun, old.unpriced
)
UPDATE {s}.budget SET
    energy = energy - (SELECT coalesce(sum(spend_energy), 0) FROM freed WHERE unsent),
    sun = sun - (SELECT coalesce(sum(spend_sun), 0) FROM freed WHERE unsent),
    unpriced = greatest(0, unpriced - (SELECT count(*) FROM freed WHERE unsent AND unpriced))
WHERE id = 1
"""


@dataclass(slots=True)
class _Change:
    """What one write tells the journal about an entry."""

    state: EntryState
    sent: bool
    final: bool
    free: bool = False  # nothing was bought: the entry's share of the budget drops to nothing
    order_json: str | None = None
    energy: int | None = None
    sun: int | None = None  # cost plus activation, when the provider said
    price: float | None = None  # sun per energy unit, when the provider said
    result: str | None = None
    verdict: str | None = None
    order_in_result: bool = False  # the result carries the order: the order column empties

    @classmethod
    def of_order(cls, order: Order, state: EntryState, *, final: bool) -> _Change:
        # A provider's order proves the create was sent, even if mark_sent never committed.
        costs = (order.cost_sun, order.activation_cost_sun)
        sun = None if costs == (None, None) else sum(cost or 0 for cost in costs)
        price = order.cost_sun / order.energy if order.cost_sun and order.energy else None
        return cls(
            state=state,
            sent=True,
            final=final,
            order_json=_encode(order).decode(),
            energy=order.energy,
            sun=sun,
            price=price,
        )


class _Write(Generic[_T]):
    __slots__ = ("done", "error", "op", "value")

    def __init__(self, op: _Op[_T]) -> None:
        self.op = op
        self.done = False
        self.value: _T | None = None
        self.error: BaseException | None = None

    def outcome(self) -> _T:
        if not self.done:
            raise JournalError("a journal write was dropped before it was committed")
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # set by the commit when no error


class _Lost(Exception):
    """The connection broke; the operation's outcome is unknown."""


class PgJournal(AsyncResource):
    """The journal of a batch shared by many workers; open it with `PgJournal.open`."""

    def __init__(
        self, connection: psycopg.AsyncConnection[Any], dsn: str, schema: str, worker: str
    ) -> None:
        self._connection: psycopg.AsyncConnection[Any] | None = connection
        self._dsn = dsn
        self._shown = redact_dsn(dsn)
        self._schema = schema
        self.worker = worker
        self._lock = anyio.Lock()
        self._queued: list[_Write[Any]] = []
        self._closing = False
        self._held: dict[str, float] = {}  # client_order_id -> lease end (monotonic, ours)
        self._lease_ends: float | None = None  # earliest monotonic time a held lease expires
        self._price = 0.0  # the highest sun per energy unit this journal wrote to the budget
        self.round_trips = 0
        self.reconnects = 0  # times the connection was lost and re-established

    # --- opening ----------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, dsn: str, *, create: bool = True, schema: str = DEFAULT_SCHEMA
    ) -> PgJournal:
        """Connect and check (or, if ``create``, set up) the journal's schema.

        A schema that is not this journal's (other tables, another application's ``meta``) or
        that a newer energy_async wrote is refused with `JournalError` and left as it is.
        """
        if not _SCHEMA_NAME.fullmatch(schema):
            raise JournalError(f"invalid schema name {schema!r}: use [a-z_][a-z0-9_]*")
        worker = uuid.uuid4().hex[:12]
        connection = await _connect(dsn, worker)
        try:
            await _prepare(connection, schema, create, redact_dsn(dsn))
        except BaseException:
            with anyio.CancelScope(shield=True):
                await connection.close()
            raise
        return cls(connection, dsn, schema, worker)

    @property
    def path(self) -> str:
        return self._shown

    @property
    def held(self) -> tuple[str, ...]:
        """client_order_ids this worker holds a lease on (claimed, not yet settled)."""
        return tuple(self._held)

    def __repr__(self) -> str:
        return f"<PgJournal {self._shown!r} {'closed' if self._closing else 'open'}>"

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            async with self._lock:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await connection.close()

    def _t(self, sql: str) -> str:
        return sql.replace("{s}", f'"{self._schema}"')

    # --- writes (the shared contract) ---------------------------------------------------------

    async def record_intents(self, provider: str, requests: Sequence[OrderRequest]) -> int:
        """Record intents in one transaction; returns how many were new (see the contract)."""
        for request in requests:
            check_request(request)
        intents = tuple(requests)
        return await self._write(lambda cur, now: self._insert_intents(cur, now, provider, intents))

    async def record_intent(self, provider: str, request: OrderRequest) -> JournalEntry:
        check_request(request)

        async def op(cur: _Cursor, now: float) -> JournalEntry:
            await self._insert_intents(cur, now, provider, (request,))
            return await self._require(cur, request.client_order_id)

        return await self._write(op)

    async def mark_sent(self, client_order_id: str) -> None:
        """Record that the create is about to be sent; a settled order raises `JournalError`."""

        async def op(cur: _Cursor, now: float) -> None:
            await self._exec(
                cur,
                "UPDATE {s}.entries SET state = CASE WHEN state = %s THEN %s ELSE state END,"
                " sent_at = coalesce(sent_at, %s), updated_at = %s"
                " WHERE client_order_id = %s AND state <> %s RETURNING seq",
                (
                    str(EntryState.INTENDED),
                    str(EntryState.SENT),
                    now,
                    now,
                    client_order_id,
                    str(EntryState.SETTLED),
                ),
            )
            if await cur.fetchone() is None:
                if await self._get(cur, client_order_id) is None:
                    raise unknown_intent(client_order_id)
                raise JournalError(
                    f"order {client_order_id!r} is already settled; it must not be sent again"
                )

        await self._write(op)

    async def record_order(self, client_order_id: str, order: Order) -> None:
        """Record the provider's order: ORDERED (unless settled), and sent if it was not."""
        check_belongs(client_order_id, order.client_order_id, "order")
        change = _Change.of_order(order, EntryState.ORDERED, final=False)

        async def op(cur: _Cursor, now: float) -> None:
            await self._apply(cur, now, client_order_id, change)

        await self._write(op)

    async def record_result(self, client_order_id: str, result: DeliveryResult) -> None:
        """A final verdict settles the entry and ends its lease; UNKNOWN keeps it unsettled."""
        check_belongs(client_order_id, result.client_order_id, "result")
        final = result.verdict is not Verdict.UNKNOWN
        order = result.order
        if final:
            state = EntryState.SETTLED
        else:
            state = EntryState.ORDERED if order is not None else EntryState.SENT
        if order is not None:
            change = _Change.of_order(order, state, final=final)
        else:
            nothing_bought = final and result.verdict is Verdict.REJECTED
            change = _Change(state=state, sent=not final, final=final, free=nothing_bought)
        change.result = encode_result(result)
        change.verdict = str(result.verdict)
        change.order_in_result = order is not None

        credited, target = _credited(result), result.request.target

        async def op(cur: _Cursor, now: float) -> None:
            await self._apply(cur, now, client_order_id, change)
            if credited:
                taken = await self._credit(cur, now, client_order_id, target, credited)
                if taken:
                    # The verdict rests on a delegation another order of this journal holds.
                    log.error(
                        "delegation(s) %s credited to order %s are already credited to"
                        " another order of this journal",
                        ", ".join(sorted(taken)),
                        client_order_id,
                    )

        await self._write(op)
        self._release(client_order_id)

    async def run_id(self, proposed: str | None = None) -> str | None:
        """The batch's run id; records ``proposed`` if there is none (the first run's wins)."""

        async def op(cur: _Cursor, now: float) -> str | None:
            if proposed is not None:
                await self._exec(
                    cur,
                    "INSERT INTO {s}.meta (key, value) VALUES ('run_id', %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (proposed,),
                )
            await self._exec(cur, "SELECT value FROM {s}.meta WHERE key = 'run_id'")
            row = await cur.fetchone()
            return None if row is None else str(row[0])

        return await self._write(op)

    # --- reads (the shared contract) ----------------------------------------------------------

    async def get(self, client_order_id: str) -> JournalEntry | None:
        async def read(cur: _Cursor) -> JournalEntry | None:
            return await self._get(cur, client_order_id)

        return await self._read(read)

    async def iter_entries(
        self, state: EntryState | None = None, provider: str | None = None
    ) -> AsyncIterator[JournalEntry]:
        conditions = [] if state is None else [("state = %s", str(state))]
        async for entry in self._stream(conditions, provider):
            yield entry

    async def unsettled(self, provider: str | None = None) -> list[JournalEntry]:
        conditions = [("state <> %s", str(EntryState.SETTLED))]
        return [entry async for entry in self._stream(conditions, provider)]

    async def counts(self) -> dict[str, int]:
        async def read(cur: _Cursor) -> dict[str, int]:
            counts = {str(state): 0 for state in EntryState}
            counts |= {f"SETTLED:{verdict}": 0 for verdict in Verdict}
            counts["UNKNOWN"] = 0
            await self._exec(
                cur, "SELECT state, verdict, count(*) FROM {s}.entries GROUP BY state, verdict"
            )
            for state, verdict, number in await cur.fetchall():
                counts[state] += number
                if state == EntryState.SETTLED and verdict is not None:
                    counts[f"SETTLED:{verdict}"] += number
                elif verdict == Verdict.UNKNOWN:
                    counts["UNKNOWN"] += number
            return counts

        return await self._read(read)

    async def spent(
        self, since: float | None = None, provider: str | None = None
    ) -> tuple[int, int]:
        """``(energy, sun)`` of orders sent at or after ``since``; REJECTED ones count nothing."""
        where, params = spent_where(since, provider, "%s")
        query = (
            "SELECT coalesce(sum(energy), 0), coalesce(sum(sun), 0) FROM {s}.entries"
            f" WHERE {' AND '.join(where)}"
        )

        async def read(cur: _Cursor) -> tuple[int, int]:
            await self._exec(cur, query, params)
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1])

        return await self._read(read)

    async def unpriced_energy(self, since: float | None = None, provider: str | None = None) -> int:
        """The part of `spent`'s energy whose cost no provider reported."""
        where, params = spent_where(since, provider, "%s")
        query = (
            "SELECT coalesce(sum(energy), 0) FROM {s}.entries"
            f" WHERE sun IS NULL AND {' AND '.join(where)}"
        )

        async def read(cur: _Cursor) -> int:
            await self._exec(cur, query, params)
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

        return await self._read(read)

    # --- many workers -------------------------------------------------------------------------

    async def claim(
        self,
        provider: str,
        count: int,
        *,
        lease: float,
        limits: SpendLimits | None = None,
        unknown_before: float | None = None,
        fresh: bool = True,
    ) -> Claim:
        """Lease up to ``count`` unsettled orders no live worker holds, oldest first.

        An order never reserved (INTENDED) is taken only if the spend limits leave room, and
        its energy and estimated sun are reserved in the same transaction; an order already
        sent (or reserved by a worker that died) is taken whatever the limits say, since its
        money is counted already. Orders whose last look ended UNKNOWN are taken only if that
        look was before ``unknown_before`` (a resume), so a run never loops on them. With
        ``fresh=False`` (a limit was reached) only orders already reserved or sent are taken.
        """
        lease_s = float(lease)

        async def op(cur: _Cursor, now: float) -> Claim:
            budget = None
            if limits is not None and limits.any:
                await self._exec(
                    cur,
                    "SELECT energy, sun, sun_per_energy, unpriced FROM {s}.budget"
                    " WHERE id = 1 FOR UPDATE",
                )
                budget = await cur.fetchone()
            await self._exec(
                cur,
                f"SELECT seq, reserved_at IS NULL AND state = %s, energy, {_COLUMNS}"
                " FROM {s}.entries WHERE provider = %s AND state <> %s"
                f" AND (holder IS NULL OR lease_until < {_CLOCK})"
                " AND (verdict IS DISTINCT FROM %s OR updated_at < %s)"
                " AND (%s OR reserved_at IS NOT NULL OR state <> %s)"
                # Orders already reserved or sent come first: a dead worker's orders are
                # taken over even when a spend limit stops every new one.
                " ORDER BY reserved_at IS NULL AND state = %s, seq"
                " LIMIT %s FOR UPDATE SKIP LOCKED",
                (
                    str(EntryState.INTENDED),
                    provider,
                    str(EntryState.SETTLED),
                    str(Verdict.UNKNOWN),
                    -1.0 if unknown_before is None else unknown_before,
                    fresh,
                    str(EntryState.INTENDED),
                    str(EntryState.INTENDED),
                    count,
                ),
            )
            rows = await cur.fetchall()
            taken: list[tuple[Any, ...]] = []
            new: list[tuple[int, int]] = []  # (seq, estimated sun): never reserved before
            stop, wait = None, False
            if budget is not None and limits is not None:
                energy, sun, price, unpriced = budget
                hour_energy = hour_sun = 0
                if limits.max_energy_per_hour or limits.max_sun_per_hour:
                    await self._exec(
                        cur,
                        "SELECT coalesce(sum(spend_energy), 0), coalesce(sum(spend_sun), 0)"
                        " FROM {s}.entries WHERE reserved_at >= %s",
                        (now - _HOUR,),
                    )
                    hour = await cur.fetchone()
                    assert hour is not None
                    hour_energy, hour_sun = int(hour[0]), int(hour[1])
            for row in rows:
                if not row[1]:
                    taken.append(row)
                    continue
                if budget is None or limits is None:
                    taken.append(row)
                    new.append((row[0], 0))
                    continue
                if stop is not None or wait:
                    continue
                if limits.limits_sun and price is None and unpriced > 0:
                    wait = True  # one unpriced order at a time until a price is known
                    continue
                want = int(row[2])
                estimate = round(want * price) if price else 0
                stop = _over_limit(
                    limits, energy + want, sun + estimate, hour_energy + want, hour_sun + estimate
                )
                if stop is not None:
                    continue
                energy, sun = energy + want, sun + estimate
                hour_energy, hour_sun = hour_energy + want, hour_sun + estimate
                if price is None:
                    unpriced += 1
                taken.append(row)
                new.append((row[0], estimate))
            if not taken:
                return Claim((), stop, wait)
            await self._exec(
                cur,
                "UPDATE {s}.entries SET holder = %s,"
                f" lease_until = {_CLOCK} + %s WHERE seq = ANY(%s)",
                (self.worker, lease_s, [row[0] for row in taken]),
            )
            if new and budget is not None:
                await cur.executemany(
                    self._t(
                        "UPDATE {s}.entries SET reserved_at = %s, spend_energy = energy,"
                        " spend_sun = %s, unpriced = %s WHERE seq = %s"
                    ),
                    [(now, estimate, budget[2] is None, seq) for seq, estimate in new],
                )
                self.round_trips += 1
                await self._exec(
                    cur,
                    "UPDATE {s}.budget SET energy = %s, sun = %s, unpriced = %s WHERE id = 1",
                    (energy, sun, unpriced),
                )
            elif new:
                await self._exec(
                    cur,
                    "UPDATE {s}.entries SET reserved_at = %s WHERE seq = ANY(%s)",
                    (now, [seq for seq, _ in new]),
                )
            return Claim(tuple(_entry(row[3:]) for row in taken), stop, wait)

        claim = await self._write(op)
        ends = time.monotonic() + lease_s
        for entry in claim.entries:
            self._held[entry.client_order_id] = ends
        self._update_lease_end()
        return claim

    async def renew(self, lease: float) -> tuple[str, ...]:
        """Heartbeat: extend every lease this worker holds; returns the ids it no longer holds."""
        held = list(self._held)
        if not held:
            return ()

        async def op(cur: _Cursor, now: float) -> set[str]:
            await self._exec(
                cur,
                f"UPDATE {{s}}.entries SET lease_until = {_CLOCK} + %s"
                " WHERE holder = %s AND client_order_id = ANY(%s) AND state <> %s"
                " RETURNING client_order_id",
                (float(lease), self.worker, held, str(EntryState.SETTLED)),
            )
            return {str(row[0]) for row in await cur.fetchall()}

        renewed = await self._write(op)
        ends = time.monotonic() + lease
        lost = tuple(cid for cid in held if cid not in renewed and cid in self._held)
        for cid in held:
            if cid in renewed and cid in self._held:
                self._held[cid] = ends
        for cid in lost:
            self._release(cid)
        self._update_lease_end()
        return lost

    async def release_held(self) -> None:
        """Give back every lease this worker holds (it is leaving).

        An order never sent also gives back its reservation, so the budget counts only what
        was sent; one that may have been sent keeps it and is free for another worker.
        """
        held = list(self._held)
        if not held:
            return

        async def op(cur: _Cursor, now: float) -> None:
            await self._exec(cur, _RELEASE, (str(EntryState.INTENDED), self.worker, held))

        await self._write(op)
        for cid in held:
            self._release(cid)

    async def others_working(self, provider: str) -> float | None:
        """Seconds until the first live lease of another worker ends; None if there is none."""

        async def read(cur: _Cursor) -> float | None:
            await self._exec(
                cur,
                f"SELECT min(lease_until) - {_CLOCK} FROM {{s}}.entries"
                " WHERE provider = %s AND state <> %s AND holder IS NOT NULL"
                f" AND holder <> %s AND lease_until >= {_CLOCK}",
                (provider, str(EntryState.SETTLED), self.worker),
            )
            row = await cur.fetchone()
            return None if row is None or row[0] is None else max(0.0, float(row[0]))

        return await self._read(read)

    async def windows_touching(self, targets: Sequence[str]) -> dict[str, list[Window]]:
        """The windows of this journal's orders to ``targets`` that other workers watch or
        that ended without a proven delivery: what the EnergyLimit delta rule must see.

        In flight: sent (or claimed by a live worker, about to be sent) and not settled, open
        from when it was sent (or now). Settled without a proven delivery (neither DELIVERED
        nor UNDER_DELIVERED, nor a refusal that bought nothing): it may still land, so its
        window never ends (``lingers``). Orders this worker holds are left out.
        """
        wanted = sorted(set(targets))
        if not wanted:
            return {}
        proven = [str(Verdict.DELIVERED), str(Verdict.UNDER_DELIVERED)]

        async def read(cur: _Cursor) -> list[tuple[Any, ...]]:
            await self._exec(
                cur,
                "SELECT client_order_id, request::jsonb ->> 'target', state, sent_at,"
                " updated_at, CASE WHEN verdict = %s THEN request END,"
                " CASE WHEN verdict = %s THEN order_json END,"
                " CASE WHEN verdict = %s THEN result END"
                " FROM {s}.entries WHERE request::jsonb ->> 'target' = ANY(%s)"
                " AND holder IS DISTINCT FROM %s AND ("
                f"  (state <> %s AND (state <> %s OR lease_until >= {_CLOCK}))"
                "   OR (state = %s AND verdict <> ALL(%s)))",
                (
                    *[str(Verdict.REJECTED)] * 3,
                    wanted,
                    self.worker,
                    str(EntryState.SETTLED),
                    str(EntryState.INTENDED),
                    str(EntryState.SETTLED),
                    proven,
                ),
            )
            return list(await cur.fetchall())

        rows = await self._read(read)
        now = time.time()
        found: dict[str, list[Window]] = {target: [] for target in wanted}
        for cid, target, state, sent, updated, request, order, result in rows:
            start = now if sent is None else float(sent)
            if state != EntryState.SETTLED:
                found[target].append(Window(cid, target, start))
                continue
            if result is not None:
                _, _, settled = decode_entry(cid, request, order, result)
                if settled is not None and not lingers(settled):
                    continue  # refused with nothing bought
            found[target].append(Window(cid, target, start, float(updated), lingers=True))
        return found

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> dict[str, str]:
        """Credit delegation txs to an order, in one statement; returns those another order
        holds already, each with that order's ``client_order_id``.

        A tx is credited to the first order that claims it, across every worker and run
        (exclusivity); claiming the same tx for the same order again changes nothing. The
        coordinator claims before a tx may count (`CreditClaims`), so a clash is prevented.
        """
        txs = tuple(dict.fromkeys(tx_ids))

        async def op(cur: _Cursor, now: float) -> dict[str, str]:
            return await self._credit(cur, now, client_order_id, target, txs)

        return await self._write(op)

    async def _credit(
        self, cur: _Cursor, now: float, client_order_id: str, target: str, txs: Sequence[str]
    ) -> dict[str, str]:
        # ON CONFLICT DO UPDATE (a no-op) rather than DO NOTHING: it waits for a concurrent
        # claim of the same tx to commit and returns the row as committed, holder included;
        # a separate read would see the statement's snapshot, without that claim.
        await self._exec(
            cur,
            "INSERT INTO {s}.credits AS c (tx_id, client_order_id, target, credited_at)"
            " SELECT unnest(%s::text[]), %s, %s, %s"
            " ON CONFLICT (tx_id) DO UPDATE SET client_order_id = c.client_order_id"
            " RETURNING c.tx_id, c.client_order_id",
            (list(dict.fromkeys(txs)), client_order_id, target, now),
        )
        rows = await cur.fetchall()
        return {str(row[0]): str(row[1]) for row in rows if row[1] != client_order_id}

    async def status(self) -> dict[str, Any]:
        """What an operator asks: schema version, entries per state, leases, the budget."""

        async def read(cur: _Cursor) -> dict[str, Any]:
            await self._exec(cur, "SELECT value FROM {s}.meta WHERE key = 'schema_version'")
            version = await cur.fetchone()
            await self._exec(
                cur,
                f"SELECT count(DISTINCT holder), count(*) FROM {{s}}.entries"
                f" WHERE holder IS NOT NULL AND lease_until >= {_CLOCK}",
            )
            leases = await cur.fetchone()
            await self._exec(cur, "SELECT energy, sun FROM {s}.budget WHERE id = 1")
            budget = await cur.fetchone()
            assert version is not None and leases is not None and budget is not None
            return {
                "schema_version": int(version[0]),
                "workers": int(leases[0]),
                "leased": int(leases[1]),
                "reserved_energy": int(budget[0]),
                "reserved_sun": int(budget[1]),
            }

        status = await self._read(read)
        status["counts"] = await self.counts()
        return status

    def _release(self, client_order_id: str) -> None:
        self._held.pop(client_order_id, None)
        self._update_lease_end()

    def _update_lease_end(self) -> None:
        self._lease_ends = min(self._held.values(), default=None)

    # --- row operations -----------------------------------------------------------------------

    async def _insert_intents(
        self, cur: _Cursor, now: float, provider: str, requests: Sequence[OrderRequest]
    ) -> int:
        if not requests:
            return 0
        encoded = [_encode(request).decode() for request in requests]
        await self._exec(
            cur,
            "INSERT INTO {s}.entries (client_order_id, provider, state, request, energy,"
            " created_at, updated_at)"
            " SELECT cid, %s, %s, req, energy, %s, %s"
            " FROM unnest(%s::text[], %s::text[], %s::bigint[]) AS t(cid, req, energy)"
            " ON CONFLICT (client_order_id) DO NOTHING RETURNING client_order_id",
            (
                provider,
                str(EntryState.INTENDED),
                now,
                now,
                [request.client_order_id for request in requests],
                encoded,
                [request.expected_energy for request in requests],
            ),
        )
        added = {str(row[0]) for row in await cur.fetchall()}
        existing = [request for request in requests if request.client_order_id not in added]
        if existing:
            await self._exec(
                cur,
                "SELECT client_order_id, provider, request FROM {s}.entries"
                " WHERE client_order_id = ANY(%s)",
                ([request.client_order_id for request in existing],),
            )
            recorded = {str(row[0]): (row[1], row[2]) for row in await cur.fetchall()}
            for request in existing:
                recorded_provider, text = recorded[request.client_order_id]
                if recorded_provider != provider or _decode_request(text) != request:
                    raise JournalError(
                        f"client_order_id {request.client_order_id!r} is already recorded for"
                        f" a different order ({recorded_provider}: {text}); use a new id"
                    )
        return len(added)

    async def _apply(self, cur: _Cursor, now: float, client_order_id: str, change: _Change) -> None:
        """One entry moves forward (one statement); the budget follows only when it must."""
        await self._exec(
            cur,
            _ADVANCE,
            {
                "cid": client_order_id,
                "states": _STATES,
                "state": str(change.state),
                "order": change.order_json,
                "energy": change.energy,
                "sun": change.sun,
                "sent": change.sent,
                "now": now,
                "result": change.result,
                "order_in_result": change.order_in_result,
                "verdict": change.verdict,
                "release": change.result is not None,
                "free": change.free,
                "priced": change.price is not None or change.final,
            },
        )
        row = await cur.fetchone()
        if row is None:
            raise unknown_intent(client_order_id)
        delta_energy, delta_sun, was_unpriced = int(row[0]), int(row[1]), bool(row[2])
        price = change.price if change.price is not None and change.price > self._price else None
        release = 1 if was_unpriced and (change.price is not None or change.final) else 0
        if not (delta_energy or delta_sun or release or price is not None):
            return
        await self._exec(
            cur,
            "UPDATE {s}.budget SET energy = energy + %s, sun = sun + %s,"
            " unpriced = greatest(0, unpriced - %s),"
            " sun_per_energy = CASE WHEN %s::double precision IS NULL THEN sun_per_energy"
            " ELSE greatest(coalesce(sun_per_energy, 0), %s::double precision) END"
            " WHERE id = 1",
            (delta_energy, delta_sun, release, price, price),
        )
        if price is not None:
            self._price = price

    async def _get(self, cur: _Cursor, client_order_id: str) -> JournalEntry | None:
        await self._exec(
            cur,
            f"SELECT {_COLUMNS} FROM {{s}}.entries WHERE client_order_id = %s",
            (client_order_id,),
        )
        row = await cur.fetchone()
        return None if row is None else _entry(row)

    async def _require(self, cur: _Cursor, client_order_id: str) -> JournalEntry:
        entry = await self._get(cur, client_order_id)
        if entry is None:
            raise unknown_intent(client_order_id)
        return entry

    async def _stream(
        self, conditions: Sequence[tuple[str, object]], provider: str | None
    ) -> AsyncIterator[JournalEntry]:
        if provider is not None:
            conditions = [*conditions, ("provider = %s", provider)]
        where = " ".join(f"AND {condition}" for condition, _ in conditions)
        params = [param for _, param in conditions]
        query = (
            f"SELECT seq, {_COLUMNS} FROM {{s}}.entries WHERE seq > %s {where}"
            " ORDER BY seq LIMIT %s"
        )

        after, full = 0, True
        while full:

            async def page(cur: _Cursor, after: int = after) -> list[tuple[Any, ...]]:
                await self._exec(cur, query, (after, *params, _PAGE_SIZE))
                rows: list[tuple[Any, ...]] = await cur.fetchall()
                return rows

            rows = await self._read(page)
            full = len(rows) == _PAGE_SIZE
            if rows:
                after = rows[-1][0]
            for row in rows:
                yield _entry(row[1:])

    # --- plumbing -----------------------------------------------------------------------------

    async def _exec(
        self, cur: _Cursor, sql: str, params: Sequence[object] | Mapping[str, object] = ()
    ) -> None:
        self.round_trips += 1
        await cur.execute(self._t(sql), params)  # built from constants

    async def _read(self, read: Callable[[_Cursor], Awaitable[_T]]) -> _T:
        if self._closing:
            raise self._closed_error()
        async with self._lock:
            return await self._with_reconnect(lambda: self._read_once(read))

    async def _read_once(self, read: Callable[[_Cursor], Awaitable[_T]]) -> _T:
        connection = self._open_connection()
        try:
            async with connection.cursor() as cur:
                return await read(cur)
        except psycopg.Error as error:
            raise self._classify(error, "read") from None

    async def _write(self, op: _Op[_T]) -> _T:
        """Queue ``op`` and return once a commit that includes it is done (group commit)."""
        if self._closing:
            raise self._closed_error()
        write = _Write(op)
        self._queued.append(write)
        try:
            async with self._lock:
                if not write.done:
                    batch, self._queued = self._queued, []
                    with anyio.CancelScope(shield=True):
                        await self._commit(batch)
        except BaseException:
            if write in self._queued:
                self._queued.remove(write)
            raise
        return write.outcome()

    async def _commit(self, batch: list[_Write[Any]]) -> None:
        try:
            await self._with_reconnect(lambda: self._commit_once(batch))
        except JournalError as error:
            for write in batch:
                if not write.done:
                    write.error, write.done = error, True

    async def _commit_once(self, batch: list[_Write[Any]]) -> None:
        """All writes in one transaction; if one fails, each is committed on its own."""
        pending = [write for write in batch if not write.done]
        try:
            values = await self._transaction([write.op for write in pending])
        except _Lost:
            raise
        except Exception:
            for write in pending:
                try:
                    (value,) = await self._transaction([write.op])
                except _Lost:
                    raise
                except Exception as error:
                    write.error, write.done = _wrap(error), True
                else:
                    write.value, write.done = value, True
            return
        for write, value in zip(pending, values, strict=True):
            write.value, write.done = value, True

    async def _transaction(self, ops: list[_Op[Any]]) -> list[Any]:
        connection = self._open_connection()
        now = time.time()
        try:
            async with connection.transaction(), connection.cursor() as cur:
                self.round_trips += 2  # BEGIN and COMMIT
                return [await op(cur, now) for op in ops]
        except psycopg.Error as error:
            raise self._classify(error, "write") from None

    def _classify(self, error: psycopg.Error, what: str) -> Exception:
        connection = self._connection
        if connection is None or connection.broken or connection.closed:
            return _Lost(str(error))
        return JournalError(f"journal {what} failed: {_one_line(error)}", path=self._shown)

    async def _with_reconnect(self, attempt: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``attempt``; when the connection is lost, reconnect with backoff and run it again.

        Gives up with `JournalUnavailable` when this worker's first lease would expire (another
        worker may take its orders over from then on), or after a fixed time if it holds none.
        """
        give_up: float | None = None
        pause = _BACKOFF[0]
        while True:
            try:
                return await attempt()
            except _Lost as lost:
                if give_up is None:
                    give_up = self._lease_ends or time.monotonic() + _RECONNECT_TIMEOUT
                    log.warning("journal connection lost (%s); reconnecting", lost)
            while True:
                if time.monotonic() + pause >= give_up:
                    held = self.held
                    raise JournalUnavailable(
                        f"lost the journal's database and could not reconnect before the"
                        f" leases expired; orders held: {', '.join(held) or 'none'}",
                        held=held,
                        path=self._shown,
                    )
                await anyio.sleep(pause)
                pause = min(pause * 2, _BACKOFF[1])
                try:
                    self._connection = await _connect(self._dsn, self.worker)
                except JournalError:
                    continue
                self.reconnects += 1
                log.warning("journal connection re-established")
                break

    def _open_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is None:
            raise self._closed_error()
        return self._connection

    def _closed_error(self) -> JournalError:
        return JournalError("the journal is closed", path=self._shown)


# --- connecting and checking the schema -------------------------------------------------------


async def _connect(dsn: str, worker: str) -> psycopg.AsyncConnection[Any]:
    try:
        return await psycopg.AsyncConnection.connect(
            dsn,
            autocommit=True,
            connect_timeout=_CONNECT_TIMEOUT,
            application_name=f"energy_async {worker}",
        )
    except psycopg.Error as error:
        # libpq's messages name host and user, never the password; the cause is not chained.
        raise JournalError(
            f"cannot connect to the journal's database: {_one_line(error)}",
            path=redact_dsn(dsn),
        ) from None


async def _prepare(
    connection: psycopg.AsyncConnection[Any], schema: str, create: bool, shown: str
) -> None:
    """Check the schema, or create it if absent; one opener at a time (an advisory lock)."""

    def t(sql: str) -> str:
        return sql.replace("{s}", f'"{schema}"')

    try:
        async with connection.transaction(), connection.cursor() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (APPLICATION + schema,))
            await cur.execute(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (schema,),
            )
            tables = {str(row[0]) for row in await cur.fetchall()}
            await cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            exists = await cur.fetchone() is not None
            if not exists or not tables:
                if not create:
                    raise JournalError(
                        f"no energy_async journal in this database (schema {schema!r});"
                        " nothing was bought",
                        path=shown,
                    )
                if not exists:
                    await cur.execute(t("CREATE SCHEMA {s}"))
                for statement in _DDL:
                    await cur.execute(t(statement))
                await cur.executemany(
                    t("INSERT INTO {s}.meta (key, value) VALUES (%s, %s)"),
                    [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
                )
                return
            if "meta" not in tables:
                raise _foreign(schema, tables, shown)
            await cur.execute(t("SELECT key, value FROM {s}.meta"))
            meta = {str(key): str(value) for key, value in await cur.fetchall()}
    except psycopg.Error as error:
        raise JournalError(f"cannot set up the journal: {_one_line(error)}", path=shown) from None
    _check_identity(schema, tables, meta, shown)


def _check_identity(schema: str, tables: set[str], meta: dict[str, str], shown: str) -> None:
    if meta.get("application") != APPLICATION:
        raise _foreign(schema, tables, shown)
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise _foreign(schema, tables, shown) from None
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"the journal was written by a newer energy_async (schema version {version}, this"
            f" version reads {SCHEMA_VERSION}); upgrade energy_async; it was left as is",
            path=shown,
        )
    if version != SCHEMA_VERSION or tables != _TABLES:
        raise JournalError(
            f"the journal's schema {schema!r} is damaged (version {version}, tables"
            f" {', '.join(sorted(tables))}); it was left as is",
            path=shown,
        )


def _foreign(schema: str, tables: set[str], shown: str) -> JournalError:
    return JournalError(
        f"schema {schema!r} belongs to another application (tables"
        f" {', '.join(sorted(tables))}), not an energy_async journal; it was left as is",
        path=shown,
    )


# --- pure helpers -----------------------------------------------------------------------------


def _over_limit(
    limits: SpendLimits, energy: int, sun: int, hour_energy: int, hour_sun: int
) -> str | None:
    """Which limit the totals after one more order would cross, if any (pure)."""
    if limits.max_energy is not None and energy > limits.max_energy:
        return f"energy limit reached: {energy:,} would exceed {limits.max_energy:,}"
    if limits.max_sun is not None and sun > limits.max_sun:
        return f"sun limit reached: {sun:,} would exceed {limits.max_sun:,}"
    if limits.max_energy_per_hour is not None and hour_energy > limits.max_energy_per_hour:
        return (
            f"hourly energy limit reached: {hour_energy:,} would exceed"
            f" {limits.max_energy_per_hour:,}"
        )
    if limits.max_sun_per_hour is not None and hour_sun > limits.max_sun_per_hour:
        return f"hourly sun limit reached: {hour_sun:,} would exceed {limits.max_sun_per_hour:,}"
    return None


def _credited(result: DeliveryResult) -> tuple[str, ...]:
    """The delegation txs a settled verdict counts for its order (exclusivity's subject)."""
    if result.verdict not in (Verdict.DELIVERED, Verdict.UNDER_DELIVERED):
        return ()
    findings = getattr(result.evidence, "delegations", None)  # per-tx findings, when judged
    if findings:
        return tuple(finding.txid for finding in findings if finding.counted)
    delegation = result.evidence.delegation
    return () if delegation is None else (delegation.txid,)


def _wrap(error: Exception) -> Exception:
    if isinstance(error, OverflowError | psycopg.DataError | psycopg.errors.NumericValueOutOfRange):
        return JournalError(f"journal write refused: {_one_line(error)}")
    if isinstance(error, psycopg.Error):
        return JournalError(f"journal write failed: {_one_line(error)}")
    return error


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _entry(row: Sequence[Any]) -> JournalEntry:
    (cid, provider, state, request, order, result, verdict, created, updated, sent) = row
    intent, placed, outcome = decode_entry(cid, request, order, result)
    try:
        return JournalEntry(
            client_order_id=cid,
            provider=provider,
            request=intent,
            state=EntryState(state),
            order=placed,
            result=outcome,
            verdict=None if verdict is None else Verdict(verdict),
            created_at=created,
            updated_at=updated,
            sent_at=sent,
        )
    except (msgspec.DecodeError, ValueError) as error:
        raise JournalError(f"journal entry {cid!r} is damaged: {error}") from error

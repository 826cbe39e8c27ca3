"""A write-ahead journal of orders, so that a batch survives a killed process.

The batch runner records each order's intent before its create is sent, marks it sent, and
records the provider's order and the final verdict after. On resume the journal is the only
memory: every unsettled order is re-attached by ``client_order_id``, no settled order is bought
again, and orders never sent are sent.

The contract (what any backend must keep; the batch and the CLI rely on nothing else):

- An entry is keyed by ``client_order_id`` and only moves forward through `EntryState`:
  INTENDED (recorded; the create has not left, so sending it is safe) -> SENT (the create may
  have left: only a replay with the same id may follow) -> ORDERED (the provider returned an
  order) -> SETTLED (a final verdict is recorded).
- Only a final verdict settles: DELIVERED, UNDER_DELIVERED, NOT_DELIVERED, PROVIDER_MISMATCH or
  REJECTED. An UNKNOWN result is recorded (``result``/``verdict``) but leaves the entry where it
  was, so `unsettled` returns it and a resume re-attaches it (replay by id, query, verify).
  An order that was never sent (a service was down, the batch stopped, the money ran out)
  simply stays INTENDED: a resume sends it.
- Every write returns only once it is durable (committed); a write that raises did not happen.
- ``run_id`` is fixed by the first run that opens a journal, so a resume rebuilds the same
  generated ``client_order_id`` values and never buys a row again under a new id.
- `open` with ``create=False`` refuses anything it did not write itself, with `JournalError`
  naming the file and what is wrong, and leaves it untouched: a missing or empty file, another
  application's file, a newer schema, a damaged file, or a copy taken without its ``-wal``
  file while it was in use (its newest entries would be missing, and a resume would buy them
  again).

Storage is one SQLite file (stdlib ``sqlite3``) in WAL mode, reached through one connection on
anyio worker threads, one call at a time. Concurrent writes are committed together in one
transaction (group commit), and every write returns only once its transaction is committed.
With the default ``synchronous=NORMAL`` a commit survives a killed process but power loss or an
OS crash may lose the last few commits; ``durable=True`` (``synchronous=FULL``) syncs every
commit to disk at some cost in throughput.

The file is held with an exclusive lock while open, so two batch runners can never work from
the same journal. A file that is not a journal of this version (not SQLite, damaged, another
application's database, or a journal from a newer energy_async) is refused with
`JournalError` and left untouched: it is inspected through a read-only connection first.
"""

from __future__ import annotations

import contextlib
import enum
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import anyio
import msgspec
from anyio.abc import AsyncResource

from energy_async.errors import JournalBusy, JournalError
from energy_async.journal_contract import (
    check_belongs,
    check_request,
    decode_entry,
    encode_result,
    is_dsn,
    spent_where,
    unknown_intent,
)
from energy_async.models import DeliveryResult, Order, OrderRequest, Verdict

if TYPE_CHECKING:
    from energy_async.ledger import Window

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "EntryState", "Journal", "JournalEntry"]

APPLICATION_ID = 0x456E4A6C  # "EnJl": marks the file as an energy_async journal
SCHEMA_VERSION = 2  # 2 added the ``meta`` table (run id, open flag); 1 is upgraded on open

_PAGE_SIZE = 512  # entries per page when streaming
_LOCK_TIMEOUT = 1.0  # seconds to wait for a file another process holds

_META_TABLE = "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = (
    """
    CREATE TABLE entries (
        seq INTEGER PRIMARY KEY,
        client_order_id TEXT NOT NULL UNIQUE,
        provider TEXT NOT NULL,
        state TEXT NOT NULL,
        request TEXT NOT NULL,
        order_json TEXT,
        result TEXT,
        verdict TEXT,
        energy INTEGER NOT NULL,
        sun INTEGER,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        sent_at REAL
    )
    """,
    "CREATE INDEX entries_unsettled ON entries (seq) WHERE state != 'SETTLED'",
    # Covers spent(), so spend guards never read the (large) rows.
    "CREATE INDEX entries_sent ON entries (sent_at, provider, energy, sun)"
    " WHERE sent_at IS NOT NULL",
    _META_TABLE,
)
_V1_OBJECTS = frozenset(
    {("table", "entries"), ("index", "entries_unsettled"), ("index", "entries_sent")}
)
_SCHEMA_OBJECTS = _V1_OBJECTS | {("table", "meta")}
# ``meta`` keys: the batch's run id, and "1" under ``in_use`` from open until a clean close.
_RUN_ID, _IN_USE = "run_id", "in_use"
_MAX_INT = 2**63 - 1  # SQLite's INTEGER
_COLUMNS = (
    "client_order_id, provider, state, request, order_json, result, verdict, "
    "created_at, updated_at, sent_at"
)

_encode = msgspec.json.Encoder().encode
_decode_request = msgspec.json.Decoder(OrderRequest).decode

_T = TypeVar("_T")
_Row = tuple[Any, ...]


class EntryState(enum.StrEnum):
    """How far an order got; an entry only ever moves forward through these."""

    INTENDED = "INTENDED"  # recorded, create not yet sent
    SENT = "SENT"  # create sent, outcome not yet known
    ORDERED = "ORDERED"  # the provider returned an order
    SETTLED = "SETTLED"  # a verdict is recorded


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the journal knows it. Times are Unix seconds."""

    client_order_id: str
    provider: str
    request: OrderRequest
    state: EntryState
    order: Order | None
    result: DeliveryResult | None
    verdict: Verdict | None
    created_at: float
    updated_at: float
    sent_at: float | None


class _Write(Generic[_T]):
    """A write waiting for the next group commit; settled only once that commit is done."""

    __slots__ = ("done", "error", "op", "value")

    def __init__(self, op: Callable[[sqlite3.Connection, float], _T]) -> None:
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


class Journal(AsyncResource):
    """The write-ahead journal of one batch (or of many); open it with `Journal.open`."""

    def __init__(
        self, connection: sqlite3.Connection, path: str, limiter: anyio.CapacityLimiter
    ) -> None:
        self._connection: sqlite3.Connection | None = connection
        self._path = path
        self._limiter = limiter
        self._write_lock = anyio.Lock()
        self._queued: list[_Write[Any]] = []
        self._closing = False

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, create: bool = True, durable: bool = False
    ) -> Journal:
        """Open the journal at ``path``, creating it if ``create`` and it does not exist.

        Raises `JournalError` when the file is missing (and not ``create``), is not a journal
        this version can read, or is open elsewhere; the file is then left as it was.

        A ``postgresql://`` DSN opens the PostgreSQL journal instead (`energy_async.journal_pg`,
        many workers; needs the ``postgres`` extra), which keeps this same contract
        (`energy_async.journal_contract.JournalBackend`).
        """
        file = os.fspath(path)
        if is_dsn(file):
            from energy_async.journal_pg import PgJournal

            return cast("Journal", await PgJournal.open(file, create=create))
        limiter = anyio.CapacityLimiter(1)
        # Shielded: a connection opened in the thread must not leak its lock on cancellation.
        with anyio.CancelScope(shield=True):
            connection = await anyio.to_thread.run_sync(
                _connect, file, create, durable, limiter=limiter
            )
        return cls(connection, file, limiter)

    @property
    def path(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"<Journal {self._path!r} {'closed' if self._closing else 'open'}>"

    async def aclose(self) -> None:
        """Commit what is queued, then close; closing again does nothing."""
        if self._closing:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            async with self._write_lock:
                await anyio.to_thread.run_sync(self._close, limiter=self._limiter)

    # --- writes -------------------------------------------------------------------------------

    async def record_intents(self, provider: str, requests: Sequence[OrderRequest]) -> int:
        """Record intents in one transaction; returns how many were new.

        An identical intent already recorded is left as it is. The same ``client_order_id``
        with a different request or provider raises `JournalError` and records none of them:
        an id is never re-pointed at another order.
        """
        for request in requests:
            check_request(request)
        intents = tuple(requests)
        return await self._write(lambda db, now: _insert_intents(db, now, provider, intents))

    async def record_intent(self, provider: str, request: OrderRequest) -> JournalEntry:
        """Record one intent (see `record_intents`) and return its entry."""
        check_request(request)

        def op(db: sqlite3.Connection, now: float) -> JournalEntry:
            _insert_intents(db, now, provider, (request,))
            return _require(db, request.client_order_id)

        return await self._write(op)

    async def mark_sent(self, client_order_id: str) -> None:
        """Record that the create is about to be sent; returns only once that is committed.

        Marking an order sent again (a resend on resume) keeps its first ``sent_at``. A settled
        order raises `JournalError`: sending it again could buy it twice.
        """

        def op(db: sqlite3.Connection, now: float) -> None:
            state = _state_of(db, client_order_id)
            if state is EntryState.SETTLED:
                raise JournalError(
                    f"order {client_order_id!r} is already settled; it must not be sent again"
                )
            db.execute(
                "UPDATE entries SET state = ?, sent_at = coalesce(sent_at, ?), updated_at = ?"
                " WHERE client_order_id = ?",
                (max(state, EntryState.SENT, key=_rank), now, now, client_order_id),
            )

        await self._write(op)

    async def record_order(self, client_order_id: str, order: Order) -> None:
        """Record the provider's order: ORDERED (unless settled), and sent if it was not."""
        check_belongs(client_order_id, order.client_order_id, "order")

        def op(db: sqlite3.Connection, now: float) -> None:
            state = _state_of(db, client_order_id)
            _store_order(db, now, client_order_id, max(state, EntryState.ORDERED, key=_rank), order)

        await self._write(op)

    async def record_result(self, client_order_id: str, result: DeliveryResult) -> None:
        """Record a verdict; a later result replaces an earlier one.

        A final verdict settles the entry. UNKNOWN does not: the result is kept (for reports),
        the entry stays SENT or ORDERED, and a resume re-attaches it.
        """
        check_belongs(client_order_id, result.client_order_id, "result")
        final = result.verdict is not Verdict.UNKNOWN
        encoded = encode_result(result)

        def op(db: sqlite3.Connection, now: float) -> None:
            state = _state_of(db, client_order_id)
            if final:
                state = EntryState.SETTLED
            else:
                # UNKNOWN is only ever reached once a create was tried.
                progress = EntryState.ORDERED if result.order is not None else EntryState.SENT
                state = max(state, progress, key=_rank)
                db.execute(
                    "UPDATE entries SET sent_at = coalesce(sent_at, ?) WHERE client_order_id = ?",
                    (now, client_order_id),
                )
            if result.order is not None:
                _store_order(db, now, client_order_id, state, result.order)
            # The order travels in the result (entry encoding 1): stored once, not twice.
            db.execute(
                "UPDATE entries SET state = ?, result = ?, verdict = ?, updated_at = ?,"
                " order_json = CASE WHEN ? THEN NULL ELSE order_json END"
                " WHERE client_order_id = ?",
                (
                    state,
                    encoded,
                    result.verdict,
                    now,
                    result.order is not None,
                    client_order_id,
                ),
            )

        await self._write(op)

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> dict[str, str]:
        """No tx is held by an order this process does not know: always empty.

        A SQLite journal is held by one process (its lock is exclusive), whose ledger is
        rebuilt from the settled results on resume, so the ledger already decides
        exclusivity here. The method keeps the contract the PostgreSQL journal shares.
        """
        return {}

    async def windows_touching(self, targets: Sequence[str]) -> dict[str, list[Window]]:
        """No other process holds orders of this journal (its lock is exclusive): none."""
        return {target: [] for target in targets}

    async def run_id(self, proposed: str | None = None) -> str | None:
        """The batch run id recorded in this journal; records ``proposed`` if there is none.

        A resume passes ``None`` and gets the first run's id back (``None`` for a journal of
        schema 1, which did not record one).
        """

        def op(db: sqlite3.Connection, now: float) -> str | None:
            if proposed is not None:
                db.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                    (_RUN_ID, proposed),
                )
            row = db.execute("SELECT value FROM meta WHERE key = ?", (_RUN_ID,)).fetchone()
            return None if row is None else str(row[0])

        return await self._write(op)

    # --- reads --------------------------------------------------------------------------------

    async def get(self, client_order_id: str) -> JournalEntry | None:
        return await self._read(lambda db: _get(db, client_order_id))

    async def iter_entries(
        self, state: EntryState | None = None, provider: str | None = None
    ) -> AsyncIterator[JournalEntry]:
        """Entries in the order they were recorded, read a page at a time.

        No cursor stays open between pages, so writes may go on while this is consumed; an entry
        that changes meanwhile is seen at most once.
        """
        where: list[tuple[str, object]] = [] if state is None else [("state = ?", state)]
        async for entry in self._stream(where, provider):
            yield entry

    async def unsettled(self, provider: str | None = None) -> list[JournalEntry]:
        """Entries INTENDED, SENT or ORDERED, in the order they were recorded: what to resume."""
        # Written as the partial index's own condition, so that index serves it.
        where: list[tuple[str, object]] = [("state != 'SETTLED'", None)]
        return [entry async for entry in self._stream(where, provider)]

    async def counts(self) -> dict[str, int]:
        """Entries per state, settled entries per verdict as ``"SETTLED:<VERDICT>"``, and
        unsettled entries whose last look ended UNKNOWN as ``"UNKNOWN"``."""

        def read(db: sqlite3.Connection) -> dict[str, int]:
            counts = {str(state): 0 for state in EntryState}
            counts |= {f"SETTLED:{verdict}": 0 for verdict in Verdict}
            counts["UNKNOWN"] = 0
            rows = db.execute(
                "SELECT state, verdict, count(*) FROM entries GROUP BY state, verdict"
            )
            for state, verdict, number in rows:
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
        """``(energy, sun)`` of orders sent at or after ``since`` (Unix s): for spend guards.

        Energy is the order's (or, before the provider answered, the request's); sun is the
        cost plus activation cost the provider reported, so an order whose cost is not known
        yet adds no sun. A REJECTED order bought nothing and counts nothing.
        """
        where, params = spent_where(since, provider, "?")
        query = (
            "SELECT coalesce(sum(energy), 0), coalesce(sum(sun), 0) FROM entries"
            f" WHERE {' AND '.join(where)}"
        )

        def read(db: sqlite3.Connection) -> tuple[int, int]:
            energy, sun = db.execute(query, params).fetchone()
            return int(energy), int(sun)

        return await self._read(read)

    async def unpriced_energy(self, since: float | None = None, provider: str | None = None) -> int:
        """The part of `spent`'s energy whose cost no provider reported (it adds no sun there):
        a spend guard prices it at the highest price it knows, never as free."""
        where, params = spent_where(since, provider, "?")
        query = (
            "SELECT coalesce(sum(energy), 0) FROM entries"
            f" WHERE sun IS NULL AND {' AND '.join(where)}"
        )

        def read(db: sqlite3.Connection) -> int:
            return int(db.execute(query, params).fetchone()[0])

        return await self._read(read)

    # --- plumbing -----------------------------------------------------------------------------

    async def _stream(
        self, where: list[tuple[str, object]], provider: str | None
    ) -> AsyncIterator[JournalEntry]:
        if provider is not None:
            where = [*where, ("provider = ?", provider)]
        conditions = " ".join(f"AND {condition}" for condition, _ in where)
        params = [param for condition, param in where if "?" in condition]
        query = (
            f"SELECT seq, {_COLUMNS} FROM entries WHERE seq > ? {conditions} ORDER BY seq LIMIT ?"
        )

        def page(db: sqlite3.Connection, after: int) -> tuple[list[JournalEntry], int]:
            rows = db.execute(query, (after, *params, _PAGE_SIZE)).fetchall()
            return [_entry(row[1:]) for row in rows], (rows[-1][0] if rows else after)

        after, full = 0, True
        while full:
            entries, after = await self._read(partial(page, after=after))
            full = len(entries) == _PAGE_SIZE
            for entry in entries:
                yield entry

    async def _read(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._closing:
            raise self._closed_error()
        return await anyio.to_thread.run_sync(self._call, read, limiter=self._limiter)

    def _call(self, read: Callable[[sqlite3.Connection], _T]) -> _T:
        try:
            return read(self._open_connection())
        except sqlite3.Error as error:
            raise JournalError(f"journal read failed: {error}", path=self._path) from error

    async def _write(self, op: Callable[[sqlite3.Connection, float], _T]) -> _T:
        """Queue ``op`` and return once a commit that includes it is done.

        Whoever holds the write lock commits everything queued so far in one transaction, so
        writers that arrive together share one commit.
        """
        if self._closing:
            raise self._closed_error()
        write = _Write(op)
        self._queued.append(write)
        try:
            async with self._write_lock:
                if not write.done:
                    batch, self._queued = self._queued, []
                    # Shielded: once taken from the queue, the batch is committed or failed.
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)
        except BaseException:
            if write in self._queued:  # cancelled while waiting: never committed
                self._queued.remove(write)
            raise
        return write.outcome()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            db = self._open_connection()
            now = time.time()
            db.execute("BEGIN IMMEDIATE")
            for write in batch:
                db.execute("SAVEPOINT write")
                try:
                    outcomes.append((write.op(db, now), None))
                except Exception as error:
                    db.execute("ROLLBACK TO write")
                    outcomes.append((None, self._wrap(error)))
                db.execute("RELEASE write")
            db.execute("COMMIT")
        except (sqlite3.Error, JournalError) as error:
            outcomes = [(None, self._wrap(error)) for _ in batch]  # one error per waiter
            if self._connection is not None and self._connection.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # the failure is reported already
                    self._connection.execute("ROLLBACK")
        for write, (value, problem) in zip(batch, outcomes, strict=True):
            write.value, write.error, write.done = value, problem, True

    def _wrap(self, error: Exception) -> Exception:
        if isinstance(error, OverflowError):
            return JournalError(f"journal write refused: {error}", path=self._path)
        if isinstance(error, sqlite3.Error):
            return JournalError(f"journal write failed: {error}", path=self._path)
        return error

    def _open_connection(self) -> sqlite3.Connection:
        if self._connection is None:
            raise self._closed_error()
        return self._connection

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        folded = cleared = False
        try:
            # Everything into the main file first: the flag's write then needs one page of
            # -wal, room a full disk has just got back from the truncated -wal.
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            folded = True
            # A clean close: the checkpoint on close moves the flag into the main file.
            connection.execute("UPDATE meta SET value = '0' WHERE key = ?", (_IN_USE,))
            cleared = True
        except sqlite3.Error:
            pass  # left marked in use: the -wal file stays, and the next open reads it
        finally:
            connection.close()
        if folded and not cleared:
            # Every entry is in the main file, but the flag still says "in use", and closing
            # removed the -wal: the next open would take this intact journal for a copy made
            # without its -wal. An empty -wal (which SQLite reads as no entries) says it is not.
            with contextlib.suppress(OSError):
                Path(self._path + "-wal").touch()

    def _closed_error(self) -> JournalError:
        return JournalError("the journal is closed", path=self._path)


# --- opening and checking the file ------------------------------------------------------------


def _connect(path: str, create: bool, durable: bool) -> sqlite3.Connection:
    exists = os.path.exists(path)
    if not exists and not create:
        raise JournalError("no journal at this path", path=path)
    if not exists:
        _check_directory(path)
    found = _inspect(path, create) if exists else _Found.FRESH
    try:
        db = sqlite3.connect(
            path, timeout=_LOCK_TIMEOUT, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as error:
        raise JournalError(f"cannot open the journal: {error}", path=path) from error
    try:
        # Exclusive before the first read: the lock is taken now and held until close.
        db.execute("PRAGMA locking_mode = EXCLUSIVE")
        if found is _Found.FRESH:
            _create_schema(db, path)
        else:
            db.execute("PRAGMA journal_mode = WAL")
            if found is _Found.UPGRADE:
                _upgrade(db)
        db.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
        # In use from now until a clean close, and said so in the main file itself: a copy of
        # the main file taken meanwhile, without its -wal, is then recognised as incomplete.
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, '1')"
            " ON CONFLICT (key) DO UPDATE SET value = '1'",
            (_IN_USE,),
        )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException as error:
        db.close()
        if isinstance(error, sqlite3.Error):
            raise _open_error(path, error) from error
        raise
    return db


def _check_directory(path: str) -> None:
    """Say what is wrong with the place a new journal would go, before SQLite says less."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise JournalError(f"cannot open the journal: no directory {directory}", path=path)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise JournalError(
            f"cannot open the journal: the directory {directory} is not writable", path=path
        )


class _Found(enum.Enum):
    FRESH = "fresh"  # empty: may be set up as a new journal
    UPGRADE = "upgrade"  # a journal of schema version 1
    JOURNAL = "journal"


def _inspect(path: str, create: bool) -> _Found:
    """Check an existing file without writing to it: what it is, or `JournalError`."""
    if os.path.isfile(path) and os.path.getsize(path) == 0 and not create:
        raise JournalError(
            "the file is empty, not a journal (a journal starts with SQLite's header and"
            " energy_async's application id); nothing was bought",
            path=path,
        )
    # Looked at before SQLite opens the file: reading a WAL database creates an empty -wal.
    wal_present = os.path.exists(path + "-wal")
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True, timeout=_LOCK_TIMEOUT)
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    try:
        application_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        objects = set(
            db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")
        )
        if application_id == 0 and version == 0 and not objects:
            if not create:
                raise JournalError(
                    "an empty SQLite database, not a journal; nothing was bought", path=path
                )
            return _Found.FRESH
        _check_identity(path, application_id, version, objects)
        problems = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise JournalError(
                f"the journal is damaged ({'; '.join(problems)}); it was left as is",
                path=path,
            )
        if version == 1:
            return _Found.UPGRADE
        in_use = db.execute("SELECT value FROM meta WHERE key = ?", (_IN_USE,)).fetchone()
        if in_use == ("1",) and not wal_present:
            raise JournalError(
                "the journal was copied (or its -wal file removed) while it was in use: its"
                f" newest entries are in {os.path.basename(path)}-wal, which is missing; copy"
                " both files, or resume from the original; it was left as is",
                path=path,
            )
        return _Found.JOURNAL
    except sqlite3.Error as error:
        raise _open_error(path, error) from error
    finally:
        db.close()


def _check_identity(path: str, application_id: int, version: int, objects: set[Any]) -> None:
    if application_id != APPLICATION_ID:
        what = (
            f"application_id {application_id:#x}"
            if application_id
            else "tables " + ", ".join(sorted(name for kind, name in objects if kind == "table"))
        )
        raise JournalError(
            f"another application's SQLite database ({what}), not an energy_async journal;"
            " it was left as is",
            path=path,
        )
    if version > SCHEMA_VERSION:
        raise JournalError(
            f"the journal was written by a newer energy_async (schema version"
            f" {version}, this version reads {SCHEMA_VERSION}); upgrade energy_async",
            path=path,
        )
    expected = _V1_OBJECTS if version == 1 else _SCHEMA_OBJECTS
    if version not in (1, SCHEMA_VERSION) or objects != expected:
        raise JournalError(
            f"the journal is damaged (schema version {version} with unexpected tables);"
            " it was left as is",
            path=path,
        )


def _create_schema(db: sqlite3.Connection, path: str) -> None:
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN IMMEDIATE")
    # Checked again under the lock: the file may have changed since it was inspected.
    taken = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if taken or db.execute("PRAGMA application_id").fetchone()[0]:
        db.execute("ROLLBACK")
        raise JournalError("the file changed while it was being opened; try again", path=path)
    for statement in _SCHEMA:
        db.execute(statement)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def _upgrade(db: sqlite3.Connection) -> None:
    """Schema 1 -> 2: add ``meta``; the entries are as they were."""
    db.execute("BEGIN IMMEDIATE")
    db.execute(_META_TABLE)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def _open_error(path: str, error: sqlite3.Error) -> JournalError:
    name = getattr(error, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return JournalBusy(
            "the journal is open in another process or Journal (a batch still running holds"
            " it alone); wait for that one to end",
            path=path,
        )
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_READONLY")):
        message = f"cannot read or write the journal's files ({error}: disk full, or no access?)"
        message += "; it was left as is"
    else:
        message = f"not an energy_async journal, or damaged ({error}); it was left as is"
    return JournalError(message, path=path)


# --- row operations (run on the worker thread, inside a transaction) ----------------------------


def _rank(state: EntryState) -> int:
    return list(EntryState).index(state)


def _insert_intents(
    db: sqlite3.Connection, now: float, provider: str, requests: Sequence[OrderRequest]
) -> int:
    added = 0
    for request in requests:
        inserted = db.execute(
            "INSERT INTO entries (client_order_id, provider, state, request, energy,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (client_order_id) DO NOTHING",
            (
                request.client_order_id,
                provider,
                EntryState.INTENDED,
                _encode(request).decode(),
                request.expected_energy,
                now,
                now,
            ),
        ).rowcount
        if inserted:
            added += 1
            continue
        recorded_provider, recorded = db.execute(
            "SELECT provider, request FROM entries WHERE client_order_id = ?",
            (request.client_order_id,),
        ).fetchone()
        if recorded_provider != provider or _decode_request(recorded) != request:
            raise JournalError(
                f"client_order_id {request.client_order_id!r} is already recorded for a"
                f" different order ({recorded_provider}: {recorded}); use a new id"
            )
    return added


def _state_of(db: sqlite3.Connection, client_order_id: str) -> EntryState:
    row = db.execute(
        "SELECT state FROM entries WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()
    if row is None:
        raise unknown_intent(client_order_id)
    return EntryState(row[0])


def _store_order(
    db: sqlite3.Connection, now: float, client_order_id: str, state: EntryState, order: Order
) -> None:
    # A provider's order proves the create was sent, even if mark_sent never made it to disk.
    costs = (order.cost_sun, order.activation_cost_sun)
    sun = None if costs == (None, None) else sum(cost or 0 for cost in costs)
    db.execute(
        "UPDATE entries SET state = ?, order_json = ?, energy = coalesce(?, energy),"
        " sun = ?, sent_at = coalesce(sent_at, ?), updated_at = ? WHERE client_order_id = ?",
        (state, _encode(order).decode(), order.energy, sun, now, now, client_order_id),
    )


def _get(db: sqlite3.Connection, client_order_id: str) -> JournalEntry | None:
    row = db.execute(
        f"SELECT {_COLUMNS} FROM entries WHERE client_order_id = ?", (client_order_id,)
    ).fetchone()
    return None if row is None else _entry(row)


def _require(db: sqlite3.Connection, client_order_id: str) -> JournalEntry:
    entry = _get(db, client_order_id)
    if entry is None:
        raise unknown_intent(client_order_id)
    return entry


def _entry(row: _Row) -> JournalEntry:
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
    except ValueError as error:
        raise JournalError(f"journal entry {cid!r} is damaged: {error}") from None

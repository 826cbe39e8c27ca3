"""What every journal backend keeps: the one contract the batch, the coordinator and the CLI use.

Two backends implement it: SQLite (`energy_async.journal.Journal`, one process, the embedded
default) and PostgreSQL (`energy_async.journal_pg.PgJournal`, many workers on one or several
machines). Their shared behaviour is pinned by one parametrised test suite
(``tests/test_journal_contract.py``). The rules themselves are written in the docstring of
`energy_async.journal`: entries keyed by ``client_order_id`` that only move forward, UNKNOWN
never settles, every write returns only once it is committed.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from energy_async.errors import EnergyError, InvalidOrder, JournalError
from energy_async.journal_dictionary import ENTRY_DICTIONARY_1
from energy_async.models import DeliveryResult, Order, OrderRequest

if TYPE_CHECKING:
    from types import TracebackType

    from energy_async.journal import EntryState, JournalEntry
    from energy_async.ledger import Window

__all__ = [
    "JournalBackend",
    "check_belongs",
    "check_request",
    "decode_entry",
    "encode_result",
    "is_dsn",
    "spent_where",
    "unknown_intent",
]

_DSN_SCHEMES = ("postgresql://", "postgres://")

# Entry encoding 1 of a result: this prefix, then base64 of the JSON of the result without its
# request (the entry's own column) but with its order (the entry's order column is then emptied,
# so a settled entry stores the order once), deflated with a preset dictionary
# (`energy_async.journal_dictionary`). A result without the prefix is the whole result as plain
# JSON, as every journal wrote it before: both are read, forever.
_PACKED = "z1:"
_ZLIB_LEVEL = 6
_json = msgspec.json.Encoder()
_decode_request = msgspec.json.Decoder(OrderRequest).decode
_decode_order = msgspec.json.Decoder(Order).decode
_decode_whole_result = msgspec.json.Decoder(DeliveryResult).decode
_decode_any = msgspec.json.Decoder().decode


def encode_result(result: DeliveryResult) -> str:
    """A result as the journal stores it (entry encoding 1: compact, each thing once).

    About 0.8 KB for a typical settled order against 4.4 KB as plain JSON (and 1.6 KB
    compressed without the preset dictionary): the request is not repeated, and key names
    and common values come from the dictionary.
    """
    data: dict[str, Any] = msgspec.to_builtins(result)
    del data["request"]
    deflate = zlib.compressobj(_ZLIB_LEVEL, zdict=ENTRY_DICTIONARY_1)
    packed = deflate.compress(_json.encode(data)) + deflate.flush()
    return _PACKED + base64.b64encode(packed).decode("ascii")


def decode_entry(
    cid: str, request: str, order: str | None, result: str | None
) -> tuple[OrderRequest, Order | None, DeliveryResult | None]:
    """An entry's request, order and result from its stored columns (either encoding).

    The order is the order column's when there is one (a later status than the result's),
    else the one the result carries. Raises `JournalError` naming the entry when damaged.
    """
    try:
        intent = _decode_request(request)
        verdict = None if result is None else _decode_result(result, request)
        if order is not None:
            placed: Order | None = _decode_order(order)
        else:
            placed = verdict.order if verdict is not None else None
    except (msgspec.DecodeError, ValueError, zlib.error, EnergyError) as error:
        raise JournalError(f"journal entry {cid!r} is damaged: {error}") from None
    return intent, placed, verdict


def _decode_result(text: str, request: str) -> DeliveryResult:
    if not text.startswith(_PACKED):
        return _decode_whole_result(text)  # written before entry encoding 1
    try:
        packed = base64.b64decode(text[len(_PACKED) :], validate=True)
    except binascii.Error as error:
        raise ValueError(f"result is not base64: {error}") from error
    inflate = zlib.decompressobj(zdict=ENTRY_DICTIONARY_1)
    data = _decode_any(inflate.decompress(packed) + inflate.flush())
    if not inflate.eof:
        raise ValueError("result is truncated")
    if not isinstance(data, dict):
        raise ValueError("result is not an object")
    data["request"] = _decode_any(request)
    return msgspec.convert(data, DeliveryResult)


def is_dsn(location: str) -> bool:
    """A PostgreSQL connection URI (``postgresql://...``) rather than a file path."""
    return location.lower().startswith(_DSN_SCHEMES)


def check_request(request: OrderRequest) -> None:
    """A request is journalled only under its fixed ``client_order_id`` (every backend)."""
    if not request.client_order_id:
        raise InvalidOrder(
            "a journaled request needs its client_order_id fixed before it is recorded"
        )


def check_belongs(client_order_id: str, recorded_id: str | None, what: str) -> None:
    """An order or result is written only to the entry whose ``client_order_id`` it carries."""
    if recorded_id is not None and recorded_id != client_order_id:
        raise JournalError(
            f"the {what} carries client_order_id {recorded_id!r}, not {client_order_id!r}"
        )


def unknown_intent(client_order_id: str) -> JournalError:
    return JournalError(f"no intent is recorded for client_order_id {client_order_id!r}")


@runtime_checkable
class JournalBackend(Protocol):
    """The journal as the batch and the coordinator see it, whatever stores it."""

    @property
    def path(self) -> str:
        """Where the journal is, fit to show (a DSN without its password)."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> JournalBackend: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> bool | None: ...

    async def record_intents(self, provider: str, requests: Sequence[OrderRequest]) -> int: ...

    async def record_intent(self, provider: str, request: OrderRequest) -> JournalEntry: ...

    async def mark_sent(self, client_order_id: str) -> None: ...

    async def record_order(self, client_order_id: str, order: Order) -> None: ...

    async def record_result(self, client_order_id: str, result: DeliveryResult) -> None: ...

    async def claim_credits(
        self, client_order_id: str, target: str, tx_ids: Sequence[str]
    ) -> dict[str, str]:
        """Credit delegation txs to an order; returns those another order holds, with it."""
        ...

    async def windows_touching(self, targets: Sequence[str]) -> dict[str, list[Window]]:
        """Orders of this journal to ``targets`` held by other processes that may touch them
        (for the EnergyLimit delta rule); empty where one process holds the journal."""
        ...

    async def run_id(self, proposed: str | None = None) -> str | None: ...

    async def get(self, client_order_id: str) -> JournalEntry | None: ...

    def iter_entries(
        self, state: EntryState | None = None, provider: str | None = None
    ) -> AsyncIterator[JournalEntry]: ...

    async def unsettled(self, provider: str | None = None) -> list[JournalEntry]: ...

    async def counts(self) -> dict[str, int]: ...

    async def spent(
        self, since: float | None = None, provider: str | None = None
    ) -> tuple[int, int]: ...

    async def unpriced_energy(
        self, since: float | None = None, provider: str | None = None
    ) -> int: ...


def spent_where(
    since: float | None, provider: str | None, placeholder: str
) -> tuple[list[str], list[object]]:
    """SQL conditions (and their parameters, as ``placeholder``) for the orders that may have
    cost something: sent (at or after ``since``, by ``provider``) and not REJECTED."""
    where = ["sent_at IS NOT NULL", "(verdict IS NULL OR verdict <> 'REJECTED')"]
    params: list[object] = []
    if since is not None:
        where.append(f"sent_at >= {placeholder}")
        params.append(since)
    if provider is not None:
        where.append(f"provider = {placeholder}")
        params.append(provider)
    return where, params

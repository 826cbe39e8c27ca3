"""What every journal backend keeps: the one contract the batch, the coordinator and the CLI use.

Two backends implement it: SQLite (`energy_async.journal.Journal`, one process, the embedded
default) and PostgreSQL (`energy_async.journal_pg.PgJournal`, many workers on one or several
machines). Their shared behaviour is pinned by one parametrised test suite
(``tests/test_journal_contract.py``). The rules themselves are written in the docstring of
`energy_async.journal`: entries keyed by ``client_order_id`` that only move forward, UNKNOWN
never settles, every write returns only once it is committed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from energy_async.errors import InvalidOrder, JournalError

if TYPE_CHECKING:
    from types import TracebackType

    from energy_async.journal import EntryState, JournalEntry
    from energy_async.models import DeliveryResult, Order, OrderRequest

__all__ = [
    "JournalBackend",
    "check_belongs",
    "check_request",
    "is_dsn",
    "unknown_intent",
]

_DSN_SCHEMES = ("postgresql://", "postgres://")


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

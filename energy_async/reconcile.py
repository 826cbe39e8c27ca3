"""Did a create whose answer was lost buy anything? For providers with no idempotency key.

TronSave (`Idempotency.NONE`) dedupes nothing: a second POST is a second purchase. So after an
unknown outcome, in this process or after a restart (the journal keeps when the intent was
recorded), nothing is sent until the account's order history has been read back past that
moment, and this table decides:

- exactly one order in the history matches the request (receiver, energy, duration), was
  created since the intent (less `CLOCK_MARGIN_S`), and is not already another intent's: it
  is ours, ADOPT it;
- more than one such order: we cannot tell which is ours, UNPROVEN (UNKNOWN, nothing sent);
- none: NOTHING_BOUGHT only when every one of these holds, else UNPROVEN:
  the history was read back to before the intent (or to its end), every entry carries its
  creation time, at least `QUIET_S` passed since the intent (a create still in flight at the
  provider would not be listed yet), and the chain shows no delegation to the receiver at all
  (a second witness, in case the history lags; checked only when it is the last doubt).

Times compare on the provider's clock: the intent's wall time plus the offset the session
measured from the provider's ``Date`` header. Where a document is silent (how soon an order
appears in the history, whether ``createdAt`` is always present), the reading that can only
answer UNKNOWN, never a second purchase, is taken.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from energy_async.address import to_base58
from energy_async.errors import InvalidAddress
from energy_async.models import Order, OrderRequest

if TYPE_CHECKING:
    from energy_async.verifier import Verifier

__all__ = [
    "CLOCK_MARGIN_S",
    "QUIET_S",
    "Decision",
    "Finding",
    "decide",
    "echoed_address",
    "history_covers",
    "no_delegation_to",
]

# Our clock against the provider's, both ways: the Date header has 1 s resolution and the
# providers allow 5 s of skew; a minute more than covers both.
CLOCK_MARGIN_S = 60.0
# An empty history proves nothing sooner than this after the intent: the create may still be
# on its way through the provider (no document says how soon an order is listed).
QUIET_S = 30.0


class Finding(enum.StrEnum):
    ADOPT = "ADOPT"  # the history holds our order
    NOTHING_BOUGHT = "NOTHING_BOUGHT"  # proven: a create may be sent again
    UNPROVEN = "UNPROVEN"  # neither: the outcome stays unknown, nothing is sent


@dataclass(frozen=True, slots=True)
class Decision:
    finding: Finding
    reason: str
    order: Order | None = None
    needs_chain: bool = False  # the chain is the last doubt: ask it and decide again


def history_covers(orders: Sequence[Order], since: float) -> bool:
    """Whether a newest-first history read so far reaches back before ``since`` (seconds)."""
    start_ms = (since - CLOCK_MARGIN_S) * 1000
    return any(o.created_at_ms is not None and o.created_at_ms < start_ms for o in orders)


def decide(
    request: OrderRequest,
    history: Sequence[Order],
    *,
    since: float,
    now: float,
    complete: bool,
    claimed: Mapping[str, str],
    chain_clear: bool | None,
    quiet: float = QUIET_S,
) -> Decision:
    """What the history (newest first) says about ``request``, sent at ``since`` (seconds).

    ``complete``: the history was read to its end. ``claimed``: order id -> the
    ``client_order_id`` it already belongs to. ``chain_clear``: no delegation to the receiver
    on chain (``None``: not asked). ``quiet``: seconds after the intent before an empty
    history counts (`QUIET_S`).
    """
    start_ms = (since - CLOCK_MARGIN_S) * 1000
    undated = [o.id for o in history if o.created_at_ms is None]
    if undated:
        return Decision(Finding.UNPROVEN, f"the order history gives no time for {undated[0]}")
    mine = request.client_order_id
    candidates = [
        order
        for order in history
        if order.created_at_ms is not None
        and order.created_at_ms >= start_ms
        and claimed.get(order.id, mine) == mine
        and _matches(order, request)
    ]
    if len(candidates) == 1:
        return Decision(Finding.ADOPT, "found in the order history", candidates[0])
    if candidates:
        ids = ", ".join(o.id for o in candidates)
        why = f"{len(candidates)} orders in the history match ({ids}): which is ours is unclear"
        return Decision(Finding.UNPROVEN, why)
    if not complete and not history_covers(history, since):
        return Decision(Finding.UNPROVEN, "the order history was not read back to the intent")
    if now - since < quiet:
        return Decision(Finding.UNPROVEN, f"not listed yet, {now - since:.0f} s after the create")
    if chain_clear is None:
        return Decision(
            Finding.UNPROVEN, "not listed, and the chain was not checked", needs_chain=True
        )
    if not chain_clear:
        return Decision(
            Finding.UNPROVEN, "not listed, but the chain shows delegations to the receiver"
        )
    return Decision(Finding.NOTHING_BOUGHT, "not in the order history, nothing on chain")


class _DelegationIndex(msgspec.Struct, rename={"error": "Error"}):
    fromAccounts: list[str] = msgspec.field(default_factory=list)
    error: str | None = None


_INDEX = msgspec.json.Decoder(_DelegationIndex)


async def no_delegation_to(verifier: Verifier, receiver: str) -> bool:
    """True when the chain shows no account delegating anything to ``receiver``.

    ``getdelegatedresourceaccountindexv2`` lists in ``fromAccounts`` every address that
    delegates to ``receiver``; for an address with no index java-tron answers the default
    instance, ``{}`` (``Wallet.getDelegatedResourceAccountIndexV2``). ``{}`` is also what a node
    that does not know the address says, so the account must exist too (``getaccountresource``).
    """
    path = "/wallet/getdelegatedresourceaccountindexv2"
    index = await verifier.read(path, {"value": receiver, "visible": True}, _INDEX)
    if index.fromAccounts:
        return False
    return (await verifier.snapshot(receiver)).exists


def _matches(order: Order, request: OrderRequest) -> bool:
    return (
        echoed_address(order.target) == request.target
        and order.energy == request.energy
        and order.duration in (None, request.duration)
    )


def echoed_address(address: str) -> str:
    """An address echoed by a provider, as base58 (some echo the 41-hex form)."""
    try:
        return to_base58(address)
    except InvalidAddress:
        return address

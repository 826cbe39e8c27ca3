"""The reconciliation table: when a lost TronSave create is ours, proven unbought, or unknown."""

from __future__ import annotations

import pytest

from energy_async.models import Order, OrderRequest
from energy_async.reconcile import CLOCK_MARGIN_S, QUIET_S, Finding, decide

TARGET = "TJRabPrwbZy45sbavfcjinPJC18kjpRTv8"
OTHER = "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"
SINCE = 1_000_000.0
LATER = SINCE + QUIET_S + 1
REQUEST = OrderRequest(target=TARGET, energy=65_000, duration="1h", client_order_id="mine")


def order(
    order_id: str,
    *,
    at: float | None = SINCE + 1,
    target: str = TARGET,
    energy: int = 65_000,
    duration: str | None = "1h",
) -> Order:
    created = None if at is None else int(at * 1000)
    return Order(
        provider="tronsave",
        id=order_id,
        client_order_id=None,
        target=target,
        energy=energy,
        duration=duration,
        created_at_ms=created,
    )


OLD = order("old", at=SINCE - CLOCK_MARGIN_S - 1)


@pytest.mark.parametrize(
    ("history", "complete", "claimed", "now", "chain", "finding", "adopted"),
    [
        # ours is listed: adopt it, whatever the chain says
        ([order("a"), OLD], False, {}, SINCE + 1, None, Finding.ADOPT, "a"),
        # created a little before our clock's "since": within the margin, still ours
        ([order("a", at=SINCE - CLOCK_MARGIN_S + 1)], True, {}, LATER, None, Finding.ADOPT, "a"),
        # another intent's order with the same shape is never adopted twice
        ([order("a"), order("b"), OLD], False, {"a": "theirs"}, LATER, True, Finding.ADOPT, "b"),
        # two candidates: which is ours cannot be told
        ([order("a"), order("b"), OLD], False, {}, LATER, True, Finding.UNPROVEN, None),
        # other receivers, amounts, durations, or older orders are not candidates
        (
            [
                order("x", target=OTHER),
                order("y", energy=70_000),
                order("z", duration="1d"),
                OLD,
            ],
            False,
            {},
            LATER,
            True,
            Finding.NOTHING_BOUGHT,
            None,
        ),
        # an old matching order (before the intent) proves nothing was bought since
        (
            [OLD, order("older", at=SINCE - 10_000)],
            False,
            {},
            LATER,
            True,
            Finding.NOTHING_BOUGHT,
            None,
        ),
        # an empty, complete history with a clear chain, long enough after: nothing bought
        ([], True, {}, LATER, True, Finding.NOTHING_BOUGHT, None),
        # ... but not while the create may still be in flight
        ([], True, {}, SINCE + QUIET_S - 1, True, Finding.UNPROVEN, None),
        # ... nor with delegations to the receiver on chain, nor without asking the chain
        ([], True, {}, LATER, False, Finding.UNPROVEN, None),
        ([], True, {}, LATER, None, Finding.UNPROVEN, None),
        # a history not read back to the intent proves nothing
        ([order("x", target=OTHER)], False, {}, LATER, True, Finding.UNPROVEN, None),
        # an entry without a time cannot be placed before or after the intent
        ([order("a", at=None)], True, {}, LATER, True, Finding.UNPROVEN, None),
    ],
)
def test_decide(
    history: list[Order],
    complete: bool,
    claimed: dict[str, str],
    now: float,
    chain: bool | None,
    finding: Finding,
    adopted: str | None,
) -> None:
    decision = decide(
        REQUEST,
        history,
        since=SINCE,
        now=now,
        complete=complete,
        claimed=claimed,
        chain_clear=chain,
    )
    assert decision.finding is finding, decision.reason
    assert (decision.order.id if decision.order else None) == adopted


def test_the_chain_is_asked_only_when_it_is_the_last_doubt() -> None:
    def needs_chain(history: list[Order], now: float) -> bool:
        decision = decide(
            REQUEST, history, since=SINCE, now=now, complete=True, claimed={}, chain_clear=None
        )
        return decision.needs_chain

    assert needs_chain([], LATER)
    assert not needs_chain([], SINCE)  # too soon: the chain would not settle it
    assert not needs_chain([order("a")], LATER)  # found: nothing to doubt

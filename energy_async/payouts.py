"""A payout file becomes exact purchases: one order per sender for what its transfers lack.

Each row is a transfer a service is about to send (``from``, ``usdt_to``, ``amount``). The rows
of one sender (and duration) are read against the chain together (`readiness.plan_payouts`):
their energy adds up, what the sender has covers part of it, and the rest, rounded up to what
the provider sells, becomes one order to that sender. A sender that lacks nothing, or whose
transfers energy cannot fix (one would revert, the sender is not activated), gets no order and
a reason. Planning reads the chain and buys nothing.

An order's ``client_order_id`` is the batch's id for the sender's first row, so a resumed batch
finds it again; a sender whose order the journal already holds is not planned a second time
(its energy was fixed when it was recorded, and ``--resume`` finishes that order as it is).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from energy_async.batchfile import Payout
from energy_async.errors import InputError
from energy_async.models import OrderRequest
from energy_async.readiness import ReadinessChecker, SenderPlan, plan_payouts

if TYPE_CHECKING:
    from energy_async.providers import Provider

__all__ = ["PlannedSender", "plan_file"]

_PLANNING_CONCURRENCY = 8  # senders read at once; the verifier's rate limit paces the calls


@dataclass(frozen=True, slots=True)
class PlannedSender:
    """One sender's transfers and what the batch does for them."""

    lines: tuple[int, ...]  # the file's rows for this sender, first one first
    sender: str
    duration: str
    request: OrderRequest | None  # the order to send; None: nothing to buy (see ``reason``)
    reason: str  # what is bought and why, or why nothing is
    plan: SenderPlan | None = None  # None: not read (already journalled, or refused)
    journalled: bool = False  # the journal holds this sender's order already: resume sends it

    @property
    def line(self) -> int:
        return self.lines[0]


async def plan_file(
    rows: Iterable[tuple[int, Payout]],
    *,
    checker: ReadinessChecker,
    provider: Provider,
    prepare: Callable[..., OrderRequest],
    id_for_line: Callable[[int], str],
    token: str,
    journalled: Callable[[str], Awaitable[bool]] | None = None,
) -> list[PlannedSender]:
    """Plan every sender of ``rows`` (in first-seen order); chain errors propagate."""
    groups: dict[tuple[str, str], list[tuple[int, Payout]]] = {}
    for line, payout in rows:
        groups.setdefault((payout.sender, payout.duration), []).append((line, payout))
    planned: list[PlannedSender | None] = [None] * len(groups)
    limiter = anyio.CapacityLimiter(_PLANNING_CONCURRENCY)

    async def plan_one(index: int, group: list[tuple[int, Payout]]) -> None:
        async with limiter:
            planned[index] = await _plan_sender(
                group, checker, provider, prepare, id_for_line, token, journalled
            )

    async with anyio.create_task_group() as tasks:
        for index, group in enumerate(groups.values()):
            tasks.start_soon(plan_one, index, group)
    return [sender for sender in planned if sender is not None]


async def _plan_sender(
    group: list[tuple[int, Payout]],
    checker: ReadinessChecker,
    provider: Provider,
    prepare: Callable[..., OrderRequest],
    id_for_line: Callable[[int], str],
    token: str,
    journalled: Callable[[str], Awaitable[bool]] | None,
) -> PlannedSender:
    lines = tuple(line for line, _ in group)
    first = group[0][1]
    client_order_id = id_for_line(lines[0])

    def answer(
        reason: str, request: OrderRequest | None = None, plan: SenderPlan | None = None
    ) -> PlannedSender:
        return PlannedSender(lines, first.sender, first.duration, request, reason, plan)

    if journalled is not None and await journalled(client_order_id):
        return PlannedSender(
            lines, first.sender, first.duration, None, "planned in an earlier run", None, True
        )
    transfers = [(p.sender, p.receiver, p.amount) for _, p in group]
    try:
        (plan,) = await plan_payouts(checker, provider, transfers, token=token)
    except InputError as exc:  # an amount the token cannot hold, a bad address for the node
        return answer(f"not bought: {exc.message}")
    count = f"{len(group)} transfer(s) need {plan.energy_needed:,} energy"
    have = f"{plan.energy_available:,} available"
    if plan.problems:
        return answer(f"not bought: energy cannot help: {'; '.join(plan.problems)}", plan=plan)
    if plan.purchase is None:
        return answer(f"ready: {count}, {have}; nothing to buy", plan=plan)
    try:
        request = prepare(
            target=first.sender,
            energy=plan.purchase.energy,
            transfers=plan.purchase.transfers,
            duration=first.duration,
            client_order_id=client_order_id,
        )
    except InputError as exc:  # more than the provider sells in one order, a bad duration
        return answer(f"not bought: {exc.message}", plan=plan)
    bought = (
        f"{plan.purchase.transfers} transfer(s)"
        if plan.purchase.transfers
        else f"{request.expected_energy:,} energy"
    )
    return answer(
        f"{count}, {have}, {plan.energy_missing:,} missing: buying {bought}", request, plan
    )

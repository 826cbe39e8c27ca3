"""From an order request to a delivery verdict users can trust.

The provider's word is one witness; the chain is the other. The coordinator places the order,
then watches both (bounded, backed off, under a deadline and a budget of TronGrid calls) and
settles by the table in ``verdict.py``. The work is done by :mod:`energy_async.watch`: immutable
events, a frozen state, a pure attribution and judge, two witnesses doing I/O and a referee.
Energy is attributed to *this* order through its own delegation txs (causal, exclusive,
authentic), because the raw EnergyLimit delta lies whenever anything else touches the address.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING

import anyio

from energy_async import ledger as _ledger
from energy_async.errors import ConfigurationError
from energy_async.ledger import OrderLedger
from energy_async.models import DeliveryResult, Order, OrderRequest
from energy_async.reconcile import no_delegation_to
from energy_async.slots import NamingLead
from energy_async.watch.policy import PollPolicy
from energy_async.watch.referee import Referee
from energy_async.watch.witnesses import Delegators, OrderHooks

if TYPE_CHECKING:
    from decimal import Decimal

    from energy_async.batch import BatchRun, SpendGuard
    from energy_async.journal import Journal
    from energy_async.readiness import TransferPurchase
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

__all__ = ["Coordinator", "OrderHooks", "PollPolicy"]


class Coordinator:
    """Buys through a :class:`ProviderSession` and verifies through a :class:`Verifier`."""

    def __init__(
        self,
        session: ProviderSession,
        verifier: Verifier,
        *,
        poll: PollPolicy | None = None,
        ledger: OrderLedger | None = None,
    ) -> None:
        self.session = session
        self.verifier = verifier
        if session.chain_probe is None:  # the chain's word when a lost create is reconciled
            session.chain_probe = functools.partial(no_delegation_to, verifier)
        self.poll = poll or PollPolicy()
        # Our orders per target, shared by every Coordinator of the process unless given.
        self.ledger = ledger if ledger is not None else _ledger.DEFAULT_LEDGER
        # This provider's last delegator: a guess that lets a look read its record at once.
        self.delegators = Delegators()
        self.naming = NamingLead()  # when this provider names its txs (energy_async.slots)

    @property
    def provider(self) -> str:
        return self.session.provider.name

    async def buy(
        self,
        *,
        target: str,
        energy: int | None = None,
        transfers: int | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
        deadline: float = 120.0,
        hooks: OrderHooks | None = None,
    ) -> DeliveryResult:
        """Buy one order and return its verdict with the evidence.

        Bad input raises an :class:`InputError` before anything is sent. A failure to read
        the target before ordering raises too (nothing is bought that could not be verified).
        Everything after the order is sent ends in a ``DeliveryResult``, never an exception.
        ``hooks`` hear the order as it goes (with ``on_phase``, each :class:`Phase`).
        """
        request = self.session.prepare(
            target=target,
            energy=energy,
            transfers=transfers,
            duration=duration,
            client_order_id=client_order_id,
        )
        return await self.settle(request, deadline=deadline, hooks=hooks)

    async def settle(
        self,
        request: OrderRequest,
        *,
        deadline: float = 120.0,
        hooks: OrderHooks | None = None,
        resume_order: Order | None = None,
        resumed: bool = False,
    ) -> DeliveryResult:
        """Take a prepared request to a verdict (the batch runner and resume use this).

        Raises :class:`~energy_async.errors.NothingBought` when TronGrid cannot be read before
        ordering (within ``deadline``) or the create provably never left; nothing was bought.
        """
        if deadline <= 0:
            raise ConfigurationError("deadline must be positive (seconds)")
        ends_at = anyio.current_time() + deadline
        referee = self._referee(request, hooks=hooks, resumed=resumed)
        return await referee.run(ends_at, resume_order=resume_order)

    async def recheck(self, order: Order, *, deadline: float = 60.0) -> DeliveryResult:
        """Judge an existing provider order again from the chain; buys nothing.

        The provider is only polled (never sent a create). With no head block from before the
        order, causality rests on the provider's order time (``PollPolicy`` module notes).
        """
        if deadline <= 0:
            raise ConfigurationError("deadline must be positive (seconds)")
        request = OrderRequest(
            target=order.target,
            energy=order.energy,
            transfers=order.transfers,
            duration=order.duration or "1h",
            client_order_id=order.client_order_id or f"recheck-{order.provider}-{order.id}",
        )
        referee = self._referee(request, hooks=None, resumed=True)
        referee.notes.append(
            f"re-checked at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}"
        )
        return await referee.run(anyio.current_time() + deadline, resume_order=order)

    def _referee(
        self, request: OrderRequest, *, hooks: OrderHooks | None, resumed: bool
    ) -> Referee:
        """One order's referee over this coordinator's session, verifier, policy and ledger."""
        return Referee(
            request,
            session=self.session,
            verifier=self.verifier,
            policy=self.poll,
            ledger=self.ledger,
            hooks=hooks,
            resumed=resumed,
            delegators=self.delegators,
            naming=self.naming,
        )

    def buy_many(
        self,
        requests: Iterable[OrderRequest],
        *,
        concurrency: int = 16,
        deadline: float = 120.0,
        journal: Journal | None = None,
        spend_guard: SpendGuard | None = None,
    ) -> AbstractAsyncContextManager[BatchRun]:
        """Run many orders at once; results stream out as they settle.

        ``async with coordinator.buy_many(requests, concurrency=32) as results:``
        ``    async for result in results: ...``
        See :mod:`energy_async.batch`.
        """
        from energy_async.batch import run_batch

        return run_batch(
            self,
            requests,
            concurrency=concurrency,
            deadline=deadline,
            journal=journal,
            spend_guard=spend_guard,
        )

    def resume(
        self,
        journal: Journal,
        *,
        concurrency: int = 16,
        deadline: float = 120.0,
        spend_guard: SpendGuard | None = None,
    ) -> AbstractAsyncContextManager[BatchRun]:
        """Finish a batch from its journal: settled orders are never bought again, orders never
        sent are sent, the rest are re-attached by ``client_order_id`` (replay, then query)."""
        from energy_async.batch import run_resume

        return run_resume(
            self, journal, concurrency=concurrency, deadline=deadline, spend_guard=spend_guard
        )

    async def buy_for_transfer(
        self,
        *,
        sender: str,
        receiver: str,
        amount: str | Decimal | int,
        token: str | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
        deadline: float = 120.0,
    ) -> TransferPurchase:
        """Buy exactly the energy ``sender`` lacks to send ``amount`` (token units, USDT by
        default) to ``receiver``, verify it like `buy`, and re-read readiness (readiness.py)."""
        from energy_async.readiness import USDT, buy_for_transfer

        return await buy_for_transfer(
            self,
            sender=sender,
            receiver=receiver,
            amount=amount,
            token=USDT if token is None else token,
            duration=duration,
            client_order_id=client_order_id,
            deadline=deadline,
        )

"""One object for the common case: every configured provider, the verifier and a router.

    async with energy_async.Client.from_env() as client:
        result = await client.buy(target="T...", energy=65_000)

``from_env`` takes every provider whose credentials are in the environment (``CATFEE_API_KEY``
and ``CATFEE_API_SECRET``, ..., ``TRONSAVE_API_KEY``), a TronGrid key if there is one, and
builds one session, one shared verifier, one coordinator per provider and a `Router` over them.
``buy(provider="auto")`` routes to the cheapest safe provider; a provider's name buys there.
``ready`` and ``buy_for_transfer`` answer "will this USDT transfer land?" and buy what it lacks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from decimal import Decimal
from types import TracebackType
from typing import Self

from energy_async._http import RetryPolicy
from energy_async.coordinator import Coordinator, OrderHooks, PollPolicy
from energy_async.errors import ConfigurationError
from energy_async.models import DeliveryResult
from energy_async.providers import PROVIDERS, Provider
from energy_async.readiness import (
    USDT,
    Purchase,
    ReadinessChecker,
    TransferPurchase,
    TransferReadiness,
    buy_for_transfer,
    buy_missing,
    plan_purchase,
)
from energy_async.router import QuoteBoard, Router
from energy_async.session import ProviderSession
from energy_async.verifier import DEFAULT_BASE_URL, Verifier

__all__ = ["Client"]


class Client:
    """Sessions, a verifier, coordinators and a router, opened and closed together."""

    def __init__(
        self,
        providers: Sequence[Provider],
        *,
        trongrid_url: str = DEFAULT_BASE_URL,
        trongrid_api_key: str | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        if not providers:
            raise ConfigurationError(
                "no provider is configured: set e.g. CATFEE_API_KEY and CATFEE_API_SECRET"
            )
        self.sessions = {
            provider.name: ProviderSession(provider, retry=retry) for provider in providers
        }
        if len(self.sessions) != len(providers):
            raise ConfigurationError("each provider once")
        self.verifier = Verifier(trongrid_url, api_key=trongrid_api_key, retry=retry)
        self.coordinators = {
            name: Coordinator(session, self.verifier, poll=poll)
            for name, session in self.sessions.items()
        }
        self.router = Router(list(self.coordinators.values()))
        self.readiness = ReadinessChecker(self.verifier)
        self._stack = AsyncExitStack()

    def __repr__(self) -> str:
        return f"<Client providers={list(self.sessions)}>"

    @classmethod
    def from_env(
        cls,
        *,
        providers: Sequence[str] | None = None,
        urls: Mapping[str, str] | None = None,
        trongrid_url: str = DEFAULT_BASE_URL,
        environ: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
    ) -> Self:
        """Every provider (or those named) whose credentials are set; ``urls`` overrides base
        URLs by provider name (the sandbox, a testnet)."""
        env = os.environ if environ is None else environ
        urls = urls or {}
        unknown = [name for name in (providers or ()) if name not in PROVIDERS]
        unknown += [name for name in urls if name not in PROVIDERS]
        if unknown:
            raise ConfigurationError(f"unknown provider(s) {unknown}; known: {list(PROVIDERS)}")
        chosen: list[Provider] = []
        for name, cls_ in PROVIDERS.items():
            named = providers is not None and name in providers
            if providers is not None and not named:
                continue
            if not named and not all(env.get(var) for var in cls_.env_names()):
                continue  # not configured: left out of "every provider"
            chosen.append(cls_.from_env(base_url=urls.get(name), environ=env))
        return cls(
            chosen,
            trongrid_url=trongrid_url,
            trongrid_api_key=env.get("TRONGRID_API_KEY"),
            retry=retry,
            poll=poll,
        )

    async def __aenter__(self) -> Self:
        await self._stack.__aenter__()
        try:
            for session in self.sessions.values():
                await self._stack.enter_async_context(session)
            await self._stack.enter_async_context(self.verifier)
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def buy(
        self,
        *,
        target: str,
        energy: int,
        duration: str = "1h",
        provider: str = "auto",
        deadline: float = 120.0,
        hooks: OrderHooks | None = None,
    ) -> DeliveryResult:
        """Buy and verify; ``provider="auto"`` takes the cheapest provider that can serve it.

        ``hooks`` hear the order as it goes (``Coordinator.buy``)."""
        if provider == "auto":
            return await self.router.buy(
                target=target, energy=energy, duration=duration, deadline=deadline, hooks=hooks
            )
        return await self._coordinator(provider).buy(
            target=target, energy=energy, duration=duration, deadline=deadline, hooks=hooks
        )

    async def ready(
        self, *, sender: str, receiver: str, amount: str | Decimal | int, token: str = USDT
    ) -> TransferReadiness:
        """Whether ``sender`` can send ``amount`` (token units) to ``receiver`` as it stands,
        the fee_limit to set, and what it lacks; read from the chain, nothing bought."""
        return await self.readiness.check(sender, receiver, amount, token=token)

    async def buy_for_transfer(
        self,
        *,
        sender: str,
        receiver: str,
        amount: str | Decimal | int,
        token: str = USDT,
        duration: str = "1h",
        provider: str = "auto",
        deadline: float = 120.0,
    ) -> TransferPurchase:
        """Buy exactly the energy this transfer lacks, verify it, and read readiness again.

        ``provider="auto"`` routes the shortfall (in energy, rounded up to the providers'
        minimum) like `buy`; a provider's name buys there, in its own units (Mefree's
        ``transfers`` where that buys exactly the shortfall).
        """
        if provider != "auto":
            return await buy_for_transfer(
                self._coordinator(provider),
                sender=sender,
                receiver=receiver,
                amount=amount,
                token=token,
                duration=duration,
                deadline=deadline,
                checker=self.readiness,
            )

        async def routed(purchase: Purchase) -> DeliveryResult:
            assert purchase.energy is not None  # plan_purchase(..., None) buys energy
            return await self.router.buy(
                target=sender, energy=purchase.energy, duration=duration, deadline=deadline
            )

        return await buy_missing(
            self.readiness,
            sender=sender,
            receiver=receiver,
            amount=amount,
            token=token,
            plan=lambda missing: plan_purchase(missing, None),
            buy=routed,
        )

    async def quotes(self, *, energy: int, duration: str = "1h") -> QuoteBoard:
        return await self.router.quotes(energy=energy, duration=duration)

    def _coordinator(self, provider: str) -> Coordinator:
        coordinator = self.coordinators.get(provider)
        if coordinator is None:
            raise ConfigurationError(
                f"provider {provider!r} is not configured; configured: {list(self.sessions)}"
            )
        return coordinator

"""The cheapest provider that can serve an order, and failover that never buys twice.

`Router` holds one `Coordinator` per configured provider. For an order it asks every provider
that publishes a price for a quote (at once), ranks the ones that support the order and
answered by price, then the ones that publish no price (in the order given), and leaves out the
ones that could not answer (a provider that is down). It buys from the first; it moves to the
next **only when the outcome proves nothing was bought**: the create was refused (``REJECTED``
with no order), or `NothingBought`. Any other outcome, ``UNKNOWN`` above all, is the answer:
a second provider is never asked while the first may have charged. Every step is written to the
result's ``evidence.route``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from energy_async.coordinator import Coordinator, OrderHooks
from energy_async.errors import ConfigurationError, EnergyError, InputError, NothingBought
from energy_async.models import DeliveryResult, Quote, Verdict

__all__ = ["QuoteBoard", "Router"]


@dataclass(frozen=True, slots=True)
class QuoteBoard:
    """Quotes cheapest first; the providers that could not price the order, and why."""

    quotes: tuple[Quote, ...]
    unpriced: tuple[tuple[str, str], ...]  # (provider, reason): not published, not supported
    down: tuple[tuple[str, str], ...]  # (provider, reason): asked and could not answer


def rank(providers: Sequence[str], prices: dict[str, int], unpriced: Sequence[str]) -> list[str]:
    """Priced providers cheapest first (ties: the order given), then the unpriced ones."""
    order = {name: index for index, name in enumerate(providers)}
    priced = sorted(prices, key=lambda name: (prices[name], order[name]))
    return priced + [name for name in providers if name in unpriced]


def fails_over(result: DeliveryResult) -> bool:
    """Whether ``result`` proves that nothing was bought: only then may another provider try."""
    return result.verdict is Verdict.REJECTED and result.order is None


class Router:
    """Route orders over ``coordinators`` (one per provider, in order of preference on ties)."""

    def __init__(self, coordinators: Sequence[Coordinator]) -> None:
        if not coordinators:
            raise ConfigurationError("a Router needs at least one provider")
        names = [coordinator.provider for coordinator in coordinators]
        if len(set(names)) != len(names):
            raise ConfigurationError(f"each provider once, got {names}")
        self._coordinators = {coordinator.provider: coordinator for coordinator in coordinators}

    @property
    def providers(self) -> list[str]:
        return list(self._coordinators)

    async def quotes(self, *, energy: int, duration: str = "1h") -> QuoteBoard:
        """Every provider's price for ``energy`` over ``duration``, asked at the same time."""
        quotes: dict[str, Quote] = {}
        unpriced: dict[str, str] = {}
        down: dict[str, str] = {}

        async def ask(name: str, coordinator: Coordinator) -> None:
            try:
                quotes[name] = await coordinator.session.quote(energy=energy, duration=duration)
            except InputError as exc:  # no published price, or cannot sell this order
                unpriced[name] = exc.message
            except EnergyError as exc:
                down[name] = f"{type(exc).__name__}: {exc.message}"

        async with anyio.create_task_group() as tasks:
            for name, coordinator in self._coordinators.items():
                tasks.start_soon(ask, name, coordinator)
        ordered = sorted(
            quotes.values(), key=lambda q: (q.cost_sun, self.providers.index(q.provider))
        )
        names = self.providers
        return QuoteBoard(
            tuple(ordered),
            tuple((name, unpriced[name]) for name in names if name in unpriced),
            tuple((name, down[name]) for name in names if name in down),
        )

    async def buy(
        self,
        *,
        target: str,
        energy: int,
        duration: str = "1h",
        deadline: float = 120.0,
        hooks: OrderHooks | None = None,
    ) -> DeliveryResult:
        """Buy from the cheapest provider able to serve the order; see the module docstring.

        ``hooks`` hear each order tried, as ``Coordinator.buy`` describes."""
        board = await self.quotes(energy=energy, duration=duration)
        route = _route_of(board)
        supported = [
            name
            for name, _ in board.unpriced
            if self._supports(name, target=target, energy=energy, duration=duration)
        ]
        prices = {q.provider: q.cost_sun for q in board.quotes}
        candidates = rank(self.providers, prices, supported)
        if not candidates:
            raise NothingBought(
                "no configured provider can serve this order now: " + "; ".join(route),
                service="router",
            )
        result: DeliveryResult | None = None
        for name in candidates:
            coordinator = self._coordinators[name]
            try:
                result = await coordinator.buy(
                    target=target, energy=energy, duration=duration, deadline=deadline, hooks=hooks
                )
            except NothingBought as exc:
                route.append(f"{name}: nothing bought ({exc.message}); next provider")
                continue
            if fails_over(result):
                route.append(f"{name}: refused at create, nothing bought; next provider")
                continue
            route.append(f"{name}: chosen, verdict {result.verdict}")
            result.evidence.route = route
            return result
        if result is None:
            raise NothingBought(
                "every provider was unavailable: " + "; ".join(route), service="router"
            )
        route.append("every provider refused; nothing was bought")
        result.evidence.route = route
        return result

    async def pick(
        self, *, energy: int, duration: str, accepts: Callable[[str], bool]
    ) -> tuple[str, list[str]]:
        """One provider for a whole batch: the cheapest for ``energy`` over ``duration`` that
        ``accepts`` (every row valid there), and the route that chose it.

        A batch is journalled under the provider its orders are sent to, and resumed there
        alone: an order that may have been sent is never routed anywhere else.
        """
        board = await self.quotes(energy=energy, duration=duration)
        route = _route_of(board)
        prices = {q.provider: q.cost_sun for q in board.quotes}
        for name in rank(self.providers, prices, [name for name, _ in board.unpriced]):
            if accepts(name):
                route.append(f"{name}: chosen for every row of the batch")
                return name, route
            route.append(f"{name}: cannot take every row")
        raise NothingBought(
            "no configured provider can take every row now: " + "; ".join(route),
            service="router",
        )

    def _supports(self, name: str, *, target: str, energy: int, duration: str) -> bool:
        try:
            self._coordinators[name].session.prepare(
                target=target, energy=energy, duration=duration
            )
        except InputError:
            return False
        return True


def _route_of(board: QuoteBoard) -> list[str]:
    """The quotes as route steps: who priced the order at what, who did not, who was down."""
    route = [f"{q.provider}: quoted {q.cost_sun:,} sun" for q in board.quotes]
    route += [f"{name}: not priced ({reason})" for name, reason in board.unpriced]
    route += [f"{name}: skipped, could not answer ({reason})" for name, reason in board.down]
    return route

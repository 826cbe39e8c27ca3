"""The sandbox's world: one chain, the simulated providers on it, and TronGrid's switches.

Nothing here speaks HTTP: ``server.Sandbox`` serves a world, and ``admin`` stages scenarios on
one. Before any request is served, the providers perform what the chain clock says is due
(undelegating expired orders), so every service agrees with the block height however the clock
got there.
"""

from __future__ import annotations

from collections.abc import Sequence

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.faults import FaultPlan, ServiceControl
from energy_async.sandbox.provider_core import ProviderSim
from energy_async.sandbox.registry import PROVIDER_APPS, ProviderApp

__all__ = ["World"]


class World:
    """Simulated providers and TronGrid's fault switches sharing one in-memory chain.

    ``speed`` multiplies the chain clock (blocks every 3 s / speed; 0 freezes it so that only
    ``advance_blocks`` moves it). ``drift_per_block`` makes TotalEnergyWeight wander.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        drift_per_block: float = 0.0,
        provider_apps: Sequence[ProviderApp] = PROVIDER_APPS,
    ) -> None:
        self.seed = seed
        self.chain = Chain(seed=seed, speed=speed, drift_per_block=drift_per_block)
        self.provider_apps = tuple(provider_apps)
        self.providers: dict[str, ProviderSim] = {
            app.name: app.sim(self.chain, seed) for app in self.provider_apps
        }
        self.trongrid = ServiceControl(faults=FaultPlan(seed))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} seed={self.seed} head={self.chain.head()}>"

    @property
    def catfee(self) -> ProviderSim:
        return self.providers["catfee"]

    @property
    def mefree(self) -> ProviderSim:
        return self.providers["mefree"]

    def new_target(self) -> str:
        """A fresh activated address with no energy: somewhere to deliver to."""
        return self.chain.new_account()

    def catch_up(self) -> None:
        """Let every provider do what is due by now (the server does this before each request)."""
        for sim in self.providers.values():
            sim.catch_up()

    def advance_blocks(self, blocks: int) -> None:
        """Move the chain ``blocks`` ahead, each provider acting at the block it is due."""
        if blocks < 0:
            raise ValueError("blocks must not be negative")
        goal = self.chain.head() + blocks
        while True:
            self.catch_up()
            head = self.chain.head()
            if head >= goal:
                return
            due = [sim.next_due_block() for sim in self.providers.values()]
            self.chain.advance_blocks(min([goal, *(b for b in due if b is not None)]) - head)

"""Which simulated providers a sandbox runs: one line each.

A provider is a ``ProviderApp``: its name (also its URL prefix, ``/<name>``), how to make its
simulator over the shared chain, and how to build its aiohttp app from that simulator. To add a
provider, write its module (a ``*_sim`` factory and a ``build_*_app``, as ``catfee.py`` does) and
append one ``ProviderApp(...)`` line to ``PROVIDER_APPS``. Append at the end: simulators draw
their pool addresses from the chain's seeded generator in this order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from energy_async.sandbox.catfee import build_catfee_app, catfee_sim
from energy_async.sandbox.chain import Chain
from energy_async.sandbox.itrx import build_itrx_app, itrx_sim
from energy_async.sandbox.mefree import build_mefree_app, mefree_sim
from energy_async.sandbox.provider_core import ProviderSim
from energy_async.sandbox.tenergy import build_tenergy_app, tenergy_sim
from energy_async.sandbox.tronsave import build_tronsave_app, tronsave_sim

__all__ = ["PROVIDER_APPS", "ProviderApp"]


@dataclass(frozen=True, slots=True)
class ProviderApp:
    name: str  # lower case; the URL prefix and the admin API's "provider"/"service"
    make_sim: Callable[..., ProviderSim]  # (chain: Chain, *, seed: int) -> ProviderSim
    build_app: Callable[[ProviderSim], web.Application]
    base_path: str = ""  # what the provider's documented base URL adds to the host (TEnergy /v1)

    def sim(self, chain: Chain, seed: int) -> ProviderSim:
        return self.make_sim(chain, seed=seed)


PROVIDER_APPS: tuple[ProviderApp, ...] = (
    ProviderApp("catfee", catfee_sim, build_catfee_app),
    ProviderApp("mefree", mefree_sim, build_mefree_app),
    ProviderApp("tenergy", tenergy_sim, build_tenergy_app, base_path="/v1"),
    ProviderApp("itrx", itrx_sim, build_itrx_app),
    ProviderApp("tronsave", tronsave_sim, build_tronsave_app),
)

"""A local simulator of CatFee, Mefree and TronGrid, built from their documentation.

``Sandbox`` serves all three on one loopback port over one in-memory chain; tests and the CLI
switch per-order ``Delivery`` behaviours and per-request ``Fault``s on it. The credentials below
are the sandbox's own fake ones and work nowhere else.
"""

from __future__ import annotations

from energy_async.sandbox.catfee import CATFEE_API_KEY, CATFEE_API_SECRET
from energy_async.sandbox.faults import Fault
from energy_async.sandbox.mefree import MEFREE_API_KEY, MEFREE_API_SECRET
from energy_async.sandbox.provider_core import Delivery, ProviderSim
from energy_async.sandbox.registry import PROVIDER_APPS, ProviderApp
from energy_async.sandbox.server import Sandbox, SandboxURLs
from energy_async.sandbox.world import World

__all__ = [
    "CATFEE_API_KEY",
    "CATFEE_API_SECRET",
    "MEFREE_API_KEY",
    "MEFREE_API_SECRET",
    "PROVIDER_APPS",
    "Delivery",
    "Fault",
    "ProviderApp",
    "ProviderSim",
    "Sandbox",
    "SandboxURLs",
    "World",
]

"""Provider adapters: the facts of each rental API, kept as data next to a few hooks.

`PROVIDERS` is the one registry: the session, the CLI (``--provider`` choices) and the
sandbox's prefixes all use its names.
"""

from collections.abc import Mapping
from types import MappingProxyType

from energy_async.errors import ConfigurationError
from energy_async.providers._base import (
    MAX_ENERGY,
    MAX_TRANSFERS,
    MIN_ENERGY,
    Idempotency,
    Provider,
    Refusal,
    Wire,
)
from energy_async.providers.catfee import CATFEE_MAINNET_URL, CATFEE_NILE_URL, CatFee
from energy_async.providers.itrx import ITRX_MAINNET_URL, Itrx
from energy_async.providers.mefree import MEFREE_MAINNET_URL, Mefree
from energy_async.providers.tenergy import TENERGY_MAINNET_URL, TENERGY_NILE_URL, TEnergy
from energy_async.providers.tronsave import TRONSAVE_MAINNET_URL, TRONSAVE_NILE_URL, TronSave

__all__ = [
    "CATFEE_MAINNET_URL",
    "CATFEE_NILE_URL",
    "ITRX_MAINNET_URL",
    "MAX_ENERGY",
    "MAX_TRANSFERS",
    "MEFREE_MAINNET_URL",
    "MIN_ENERGY",
    "PROVIDERS",
    "TENERGY_MAINNET_URL",
    "TENERGY_NILE_URL",
    "TRONSAVE_MAINNET_URL",
    "TRONSAVE_NILE_URL",
    "CatFee",
    "Idempotency",
    "Itrx",
    "Mefree",
    "Provider",
    "Refusal",
    "TEnergy",
    "TronSave",
    "Wire",
    "provider_class",
]

PROVIDERS: Mapping[str, type[Provider]] = MappingProxyType(
    {cls.name: cls for cls in (CatFee, Mefree, TEnergy, Itrx, TronSave)}
)


def provider_class(name: str) -> type[Provider]:
    """The adapter registered as ``name``; `ConfigurationError` naming the known ones."""
    try:
        return PROVIDERS[name]
    except KeyError:
        known = ", ".join(PROVIDERS)
        raise ConfigurationError(f"unknown provider {name!r}; known: {known}") from None

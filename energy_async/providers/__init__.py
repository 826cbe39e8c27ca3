"""Provider adapters: the facts of each rental API, kept as data next to two parse hooks."""

from energy_async.providers._base import MAX_ENERGY, MAX_TRANSFERS, MIN_ENERGY, Provider
from energy_async.providers.catfee import CATFEE_MAINNET_URL, CATFEE_NILE_URL, CatFee
from energy_async.providers.mefree import MEFREE_MAINNET_URL, Mefree

__all__ = [
    "CATFEE_MAINNET_URL",
    "CATFEE_NILE_URL",
    "MAX_ENERGY",
    "MAX_TRANSFERS",
    "MEFREE_MAINNET_URL",
    "MIN_ENERGY",
    "CatFee",
    "Mefree",
    "Provider",
]

"""Buy TRON energy from rental providers and prove on-chain that it arrived.

Public names load on first use, so ``import energy_async`` stays fast (no aiohttp, no tronpy)
for the CLI and for services that import it at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from energy_async.address import to_base58, to_hex, validate_address
    from energy_async.client import Client
    from energy_async.coordinator import Coordinator, PollPolicy
    from energy_async.errors import (
        AuthenticationError,
        BadResponse,
        ConfigurationError,
        EnergyError,
        InputError,
        InsufficientBalance,
        InvalidAddress,
        InvalidOrder,
        JournalError,
        NetworkError,
        NodeError,
        NothingBought,
        NotSupported,
        OrderNotFound,
        OutcomeUnknown,
        ProviderError,
        RateLimited,
        RequestRejected,
        ServiceUnavailable,
        TokenNotFound,
        TransientError,
    )
    from energy_async.models import (
        DelegatedResource,
        DelegationTx,
        DeliveryResult,
        Evidence,
        Order,
        OrderPhase,
        OrderRequest,
        ResourceSnapshot,
        Verdict,
    )
    from energy_async.providers import CatFee, Itrx, Mefree, Provider, TEnergy, TronSave
    from energy_async.readiness import (
        ReadinessChecker,
        ReadyState,
        TransferPurchase,
        TransferReadiness,
    )
    from energy_async.router import Router
    from energy_async.session import ProviderSession, RetryPolicy
    from energy_async.verifier import Verifier

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "BadResponse",
    "CatFee",
    "Client",
    "ConfigurationError",
    "Coordinator",
    "DelegatedResource",
    "DelegationTx",
    "DeliveryResult",
    "EnergyError",
    "Evidence",
    "InputError",
    "InsufficientBalance",
    "InvalidAddress",
    "InvalidOrder",
    "Itrx",
    "JournalError",
    "Mefree",
    "NetworkError",
    "NodeError",
    "NotSupported",
    "NothingBought",
    "Order",
    "OrderNotFound",
    "OrderPhase",
    "OrderRequest",
    "OutcomeUnknown",
    "PollPolicy",
    "Provider",
    "ProviderError",
    "ProviderSession",
    "RateLimited",
    "ReadinessChecker",
    "ReadyState",
    "RequestRejected",
    "ResourceSnapshot",
    "RetryPolicy",
    "Router",
    "ServiceUnavailable",
    "TEnergy",
    "TokenNotFound",
    "TransferPurchase",
    "TransferReadiness",
    "TransientError",
    "TronSave",
    "Verdict",
    "Verifier",
    "to_base58",
    "to_hex",
    "validate_address",
]

_MODULES = {
    "address": (
        "to_base58",
        "to_hex",
        "validate_address",
    ),
    "client": ("Client",),
    "coordinator": (
        "Coordinator",
        "PollPolicy",
    ),
    "errors": (
        "AuthenticationError",
        "BadResponse",
        "ConfigurationError",
        "EnergyError",
        "InputError",
        "InsufficientBalance",
        "InvalidAddress",
        "InvalidOrder",
        "JournalError",
        "NetworkError",
        "NodeError",
        "NothingBought",
        "NotSupported",
        "OrderNotFound",
        "OutcomeUnknown",
        "ProviderError",
        "RateLimited",
        "RequestRejected",
        "ServiceUnavailable",
        "TokenNotFound",
        "TransientError",
    ),
    "models": (
        "DelegatedResource",
        "DelegationTx",
        "DeliveryResult",
        "Evidence",
        "Order",
        "OrderPhase",
        "OrderRequest",
        "ResourceSnapshot",
        "Verdict",
    ),
    "providers": (
        "CatFee",
        "Itrx",
        "Mefree",
        "Provider",
        "TEnergy",
        "TronSave",
    ),
    "readiness": (
        "ReadinessChecker",
        "ReadyState",
        "TransferPurchase",
        "TransferReadiness",
    ),
    "router": ("Router",),
    "session": (
        "ProviderSession",
        "RetryPolicy",
    ),
    "verifier": ("Verifier",),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'energy_async' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"energy_async.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

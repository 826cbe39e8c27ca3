"""Mefree (https://docs.mefree.net): the facts of its API, from providers.md section 2."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from energy_async.models import Account, Order, OrderRequest, status_phase
from energy_async.providers._base import Idempotency, Provider, convert, ms_or_none, statuses
from energy_async.signing import PathSigner, Signer

__all__ = ["MEFREE_MAINNET_URL", "Mefree"]

MEFREE_MAINNET_URL = "https://api.mefree.net"  # production only; no testnet is documented

# ``period``: 0 fast charge, 1 one hour, 2 one day, 3..30 that many days (providers.md 2.4).
_DURATIONS = {"fast": "0", "1h": "1", "1d": "2"} | {f"{days}d": str(days) for days in range(3, 31)}
_DURATION_OF_PERIOD = {int(period): name for name, period in _DURATIONS.items()}


class _Order(msgspec.Struct, frozen=True):
    """``data`` of ``POST /api/order`` and ``GET /api/order/{pay_hash}``.

    An older real response lacks ``client_order_id`` and ``energy_to_address``, so only
    ``pay_hash`` (a UUID, not a transaction hash) is sure to be set.
    """

    pay_hash: str
    client_order_id: str | None = None
    energy_to_address: str | None = None
    energy_quantity: int | None = None
    energy_period: int | None = None
    status: str | None = None
    confirm_status: str | None = None
    activate_status: str | None = None
    delegate_hash: str | None = None
    amount_sun: int | None = None
    timestamp: int | None = None
    energy_expired_timestamp: int | None = None
    balance: int | None = None


class _Account(msgspec.Struct, frozen=True):
    account_balance: int | None = None  # sun, like every other *_sun-family amount of this API


@dataclass(frozen=True, kw_only=True, repr=False)
class Mefree(Provider):
    """Mefree credentials; ``base_url`` defaults to its (only) production API."""

    base_url: str = MEFREE_MAINNET_URL

    name: ClassVar[str] = "mefree"
    mainnet_url: ClassVar[str] = MEFREE_MAINNET_URL
    header_prefix: ClassVar[str] = "MF"
    signer: ClassVar[Signer] = PathSigner.prefixed("MF")
    idempotency: ClassVar[Idempotency] = Idempotency.NATIVE_KEY  # client_order_id
    env_prefix: ClassVar[str] = "MEFREE"
    create_path: ClassVar[str] = "/api/order"
    order_path: ClassVar[str] = "/api/order/"
    account_path: ClassVar[str] = "/api/config"
    energy_param: ClassVar[str] = "quantity"
    transfers_param: ClassVar[str | None] = "count"
    target_param: ClassVar[str] = "target_address"
    duration_param: ClassVar[str] = "period"
    durations: ClassVar[dict[str, str]] = _DURATIONS
    no_estimate_reason: ClassVar[str] = (
        "no price estimate is documented; /api/config lists *_price_sun values without their "
        "unit, and a guessed price is worse than none"
    )

    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        order = convert(data, _Order, "mefree order")
        status, confirm_status, activate_status = statuses(
            order.status, order.confirm_status, order.activate_status
        )
        period = order.energy_period
        return Order(
            provider=self.name,
            id=order.pay_hash,
            client_order_id=order.client_order_id,
            target=order.energy_to_address or (request.target if request else ""),
            energy=order.energy_quantity,
            transfers=request.transfers if request else None,
            duration=_DURATION_OF_PERIOD.get(period) if period is not None else None,
            status=status,
            confirm_status=confirm_status,
            activate_status=activate_status,
            delegate_hash=order.delegate_hash or None,
            reported_phase=status_phase(status, confirm_status),
            cost_sun=order.amount_sun,
            created_at_ms=ms_or_none(order.timestamp),
            expires_at_ms=ms_or_none(order.energy_expired_timestamp),
            balance_after_sun=order.balance,
            raw=data,
        )

    def parse_account(self, data: Any) -> Account:
        account = convert(data, _Account, "mefree account")
        return Account(
            provider=self.name, balance_sun=account.account_balance, raw=self.account_raw(data)
        )

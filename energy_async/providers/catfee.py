"""CatFee (https://docs.catfee.io): the facts of its API, from providers.md section 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from energy_async.models import Account, Order, OrderRequest, status_phase
from energy_async.providers._base import (
    Idempotency,
    Provider,
    convert,
    duration_from_minutes,
    statuses,
)
from energy_async.signing import PathSigner, Signer

__all__ = ["CATFEE_MAINNET_URL", "CATFEE_NILE_URL", "CatFee"]

CATFEE_MAINNET_URL = "https://api.catfee.io"
CATFEE_NILE_URL = "https://nile.catfee.io"  # Nile testnet: separate account and keys


class _Order(msgspec.Struct, frozen=True):
    """``data`` of ``POST /v1/order`` and ``GET /v1/order/{id}``; only ``id`` is sure to be set."""

    id: str
    client_order_id: str | None = None
    receiver: str | None = None
    quantity: int | None = None
    duration: int | None = None  # minutes
    status: str | None = None
    confirm_status: str | None = None
    activate_status: str | None = None
    delegate_hash: str | None = None
    pay_amount_sun: int | None = None
    activate_amount_sun: int | None = None
    pay_timestamp: int | None = None
    expired_timestamp: int | None = None
    balance: int | None = None


class _Account(msgspec.Struct, frozen=True):
    balance: int | None = None  # sun


@dataclass(frozen=True, kw_only=True, repr=False)
class CatFee(Provider):
    """CatFee credentials; ``base_url`` defaults to mainnet (`CATFEE_NILE_URL` for Nile)."""

    base_url: str = CATFEE_MAINNET_URL

    name: ClassVar[str] = "catfee"
    mainnet_url: ClassVar[str] = CATFEE_MAINNET_URL
    header_prefix: ClassVar[str] = "CF"
    signer: ClassVar[Signer] = PathSigner.prefixed("CF")
    idempotency: ClassVar[Idempotency] = Idempotency.NATIVE_KEY  # client_order_id
    env_prefix: ClassVar[str] = "CATFEE"
    create_path: ClassVar[str] = "/v1/order"
    order_path: ClassVar[str] = "/v1/order/"
    account_path: ClassVar[str] = "/v1/account"
    estimate_path: ClassVar[str | None] = "/v1/estimate"
    energy_param: ClassVar[str] = "quantity"
    transfers_param: ClassVar[str | None] = None
    target_param: ClassVar[str] = "receiver"
    duration_param: ClassVar[str] = "duration"
    # "allowed values are 1h", the only documented one (a client also sends 24h, undocumented).
    durations: ClassVar[dict[str, str]] = {"1h": "1h"}

    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        order = convert(data, _Order, "catfee order")
        status, confirm_status, activate_status = statuses(
            order.status, order.confirm_status, order.activate_status
        )
        return Order(
            provider=self.name,
            id=order.id,
            client_order_id=order.client_order_id,
            target=order.receiver or (request.target if request else ""),
            energy=order.quantity,
            duration=duration_from_minutes(order.duration),
            status=status,
            confirm_status=confirm_status,
            activate_status=activate_status,
            delegate_hash=order.delegate_hash or None,
            reported_phase=status_phase(status, confirm_status),
            cost_sun=order.pay_amount_sun,
            activation_cost_sun=order.activate_amount_sun,
            created_at_ms=order.pay_timestamp,
            expires_at_ms=order.expired_timestamp,
            balance_after_sun=order.balance,
            raw=data,
        )

    def parse_account(self, data: Any) -> Account:
        account = convert(data, _Account, "catfee account")
        return Account(provider=self.name, balance_sun=account.balance, raw=self.account_raw(data))

"""TEnergy (https://api.tenergy.me/v1): the facts of its API, from peers.md section 2.6.

Sources are its SDK (``tenergy`` 0.1.0b0, whose docstrings quote its API docs) and its MCP
schema; where they are silent this adapter takes the safe reading, said here:

- Signing: ``x-api-sign = base64(HMAC-SHA256(secret, timestamp + METHOD + path?query + body))``,
  ``path`` including ``/v1`` (so ``--provider-url`` is the base URL *with* ``/v1``).
- ``POST /orders`` takes a JSON body; ``client_order_id`` makes a retry safe ("same id, same
  order"): the native idempotency key, replayed like CatFee's. ``GET /orders/cid:<id>`` finds an
  order by it.
- A success is the object itself (HTTP 2xx); an error is ``{"error": {code, slug, message},
  "request_id"}``. Slugs are matched first, the HTTP status second.
- Tiers ``5m``, ``1h``, ``1d`` (MCP docs); our names are the same.
- Statuses: ``paid`` (PENDING), ``delegated`` (broadcast: DELEGATED), ``active`` (energy
  delegated: CONFIRMED), then ``expired``/``reclaimed`` (it was delivered, now over: CONFIRMED);
  ``failed``/``refunded`` are FAILED; anything else UNKNOWN.
- ``delegate_hashes[]`` may name several delegations (split fills); every one is named.
- No price endpoint's reply shape is documented, so no quote (a guessed price is worse than
  none). The balance reply's shape is not documented either: ``balance_sun`` or ``balance``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    DuplicateOrder,
    InsufficientBalance,
    OrderNotFound,
    ProviderError,
    RequestRejected,
)
from energy_async.models import Account, Order, OrderPhase, OrderRequest
from energy_async.providers._base import (
    Idempotency,
    Provider,
    Refusal,
    Wire,
    convert,
    decode_json,
)
from energy_async.signing import PathSigner, Signer

__all__ = ["TENERGY_MAINNET_URL", "TENERGY_NILE_URL", "TEnergy"]

TENERGY_MAINNET_URL = "https://api.tenergy.me/v1"
TENERGY_NILE_URL = "https://api-nile.tenergy.me/v1"  # keys ak_test_...

_PHASES = {
    "paid": OrderPhase.PENDING,
    "delegated": OrderPhase.DELEGATED,
    "active": OrderPhase.CONFIRMED,
    "expired": OrderPhase.CONFIRMED,
    "reclaimed": OrderPhase.CONFIRMED,
    "failed": OrderPhase.FAILED,
    "refunded": OrderPhase.FAILED,
}
# Slug words -> error, first match wins (the SDK names ``invalid_signature`` 1008 and
# ``replayed_signature`` 1009; the rest are read by their words).
_SLUG_ERRORS: tuple[tuple[str, type[ProviderError]], ...] = (
    ("insufficient", InsufficientBalance),
    ("signature", AuthenticationError),
    ("api_key", AuthenticationError),
    ("timestamp", AuthenticationError),
    ("unauthorized", AuthenticationError),
    ("forbidden", AuthenticationError),
    ("duplicate", DuplicateOrder),
    ("conflict", DuplicateOrder),
    ("not_found", OrderNotFound),
    ("validation", RequestRejected),
    ("invalid", RequestRejected),
)
_ENCODER = msgspec.json.Encoder()


class _Error(msgspec.Struct, frozen=True):
    code: int | str | None = None
    slug: str | None = None
    message: str | None = None


_NOT_JSON = object()


class _Order(msgspec.Struct, frozen=True):
    id: str
    client_order_id: str | None = None
    receiver: str | None = None
    amount: int | None = None
    tier: str | None = None
    status: str | None = None
    delegate_hashes: list[str] = msgspec.field(default_factory=list)
    price_sun: int | None = None
    created_at_ms: int | None = None
    expires_at_ms: int | None = None
    balance_after_sun: int | None = None


class _Balance(msgspec.Struct, frozen=True):
    balance_sun: int | None = None
    balance: int | None = None


@dataclass(frozen=True, kw_only=True, repr=False)
class TEnergy(Provider):
    """TEnergy credentials; ``base_url`` defaults to mainnet (`TENERGY_NILE_URL` for Nile)."""

    base_url: str = TENERGY_MAINNET_URL

    name: ClassVar[str] = "tenergy"
    mainnet_url: ClassVar[str] = TENERGY_MAINNET_URL
    testnet_url: ClassVar[str | None] = TENERGY_NILE_URL
    env_prefix: ClassVar[str] = "TENERGY"
    signer: ClassVar[Signer] = PathSigner("x-api-key", "x-api-sign", "x-api-timestamp")
    idempotency: ClassVar[Idempotency] = Idempotency.NATIVE_KEY  # client_order_id
    create_path: ClassVar[str] = "/orders"
    order_path: ClassVar[str] = "/orders/"
    account_path: ClassVar[str] = "/balance"
    energy_param: ClassVar[str] = "amount"
    transfers_param: ClassVar[str | None] = None
    target_param: ClassVar[str] = "receiver"
    duration_param: ClassVar[str] = "tier"
    durations: ClassVar[dict[str, str]] = {"5m": "5m", "1h": "1h", "1d": "1d"}
    no_estimate_reason: ClassVar[str] = (
        "its /estimate and /prices replies are not documented; a guessed price is worse than none"
    )

    def create_wire(self, request: OrderRequest) -> Wire:
        # The key order of the published vector: resource, amount, tier, receiver.
        body = {
            "resource": "energy",
            "amount": request.energy,
            "tier": self.wire_duration(request.duration),
            "receiver": request.target,
            "client_order_id": request.client_order_id,
        }
        return Wire("POST", self.create_path, "create", body=_ENCODER.encode(body))

    def lookup_wire(self, client_order_id: str) -> Wire | None:
        return Wire("GET", f"{self.order_path}cid:{client_order_id}", "lookup")

    def unwrap(self, http_status: int, body: bytes, endpoint: str) -> Any:
        try:  # decoded once: the error body and the order share it
            reply = decode_json(body)
        except BadResponse:
            if http_status < 400:
                raise
            reply = _NOT_JSON
        error = _error_in(reply)
        if error is None and http_status < 400:
            return reply
        if error is None:
            return self.refusal_without_body(http_status, endpoint, "TEnergy's error body")
        slug = (error.slug or "").lower()
        kind = _slug_error(slug) or self.error_class(http_status, error.message, endpoint)
        if kind is OrderNotFound and endpoint not in ("get", "lookup"):
            kind = RequestRejected
        message = ": ".join(part for part in (error.slug, error.message) if part) or None
        return Refusal(
            kind,
            f"{self.name} refused the request",
            error.code,
            message,
            about_clock=kind is AuthenticationError and "timestamp" in slug,
        )

    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        order = convert(data, _Order, "tenergy order")
        duration = order.tier if order.tier in self.durations else None
        return Order(
            provider=self.name,
            id=order.id,
            client_order_id=order.client_order_id,
            target=order.receiver or (request.target if request else ""),
            energy=order.amount,
            duration=duration,
            delegate_hashes=tuple(order.delegate_hashes),
            cost_sun=order.price_sun,
            created_at_ms=order.created_at_ms,
            expires_at_ms=order.expires_at_ms,
            balance_after_sun=order.balance_after_sun,
            raw=data,
            reported_phase=_PHASES.get(order.status or "", OrderPhase.UNKNOWN),
        )

    def parse_account(self, data: Any) -> Account:
        balance = convert(data, _Balance, "tenergy balance")
        sun = balance.balance_sun if balance.balance_sun is not None else balance.balance
        return Account(provider=self.name, balance_sun=sun, raw=self.account_raw(data))


def _error_in(reply: Any) -> _Error | None:
    """The ``{"error": {...}}`` of a decoded reply, if it is one."""
    if not isinstance(reply, dict) or not isinstance(reply.get("error"), dict):
        return None
    try:
        return msgspec.convert(reply["error"], _Error)
    except msgspec.ValidationError:
        return None


def _slug_error(slug: str) -> type[ProviderError] | None:
    for word, error in _SLUG_ERRORS:
        if word in slug:
            return error
    return None

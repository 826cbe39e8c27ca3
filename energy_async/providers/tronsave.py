"""TronSave v2 (https://api.tronsave.io): the facts of its API, from peers.md section 2.1.

- Base URL: the host; every path starts ``/v2``. Nile testnet: ``https://api-dev.tronsave.io``.
- Auth: an ``apikey`` header; nothing is signed, there is no timestamp.
- ``POST /v2/buy-resource {resourceType: "ENERGY", resourceAmount, receiver, durationSec}``
  answers 201 ``{"error": false, "message": "Success", "data": {"orderId"}}``. There is **no
  idempotency key**: every POST may buy (the sandbox charges each one). The session sends one
  create per intent; after an unknown outcome it reconciles (`energy_async.reconcile`) from the
  order history and never POSTs blindly (`Idempotency.NONE`).
- History: ``GET /v2/orders?page=&pageSize=`` (``order-history.md``, no whitelist, unlike
  ``/v2/internal/buyer/orders``) -> ``data.{data[], total}``, newest first, each entry shaped
  like the order details. ``createdAt`` (Unix seconds) is documented only on the whitelisted
  list; an entry without it cannot be placed in time, and reconciliation then proves nothing.
- ``GET /v2/order/:id`` -> ``data.{id, receiver, resourceAmount, remainAmount, price,
  durationSec, fulfilledPercent, delegates[]{delegator, amount, txid}}``. No status field:
  ``fulfilledPercent == 100`` with ``remainAmount == 0`` reads as CONFIRMED, anything above 0 as
  DELEGATED (partly filled, a market may fill more later), 0 as PENDING.
- Durations in seconds; only the default (3 days) is documented, so ``1h`` and whole days up to
  30 are offered and the provider's refusal says if one is not sold.
- Minimum: the SDK says above 64,000, the docs' example uses 32,000; our 65,000 satisfies both.
- Errors: ``{"error": true, "message": "TSAS:106 API_KEY_REQUIRED"}`` (the code inside the
  message) or Fastify's ``{"statusCode", "code", "error", "message"}`` for schema errors.
- Price: ``POST /v2/order-book/estimate-buy-resource`` (with the key) -> ``estimateTrx`` in sun
  (the docs' endpoint; the SDK's differs, peers.md 2.1: the docs win).
- Balance: ``GET /v2/user-info`` -> ``balance`` (sun, a string).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    InsufficientBalance,
    OrderNotFound,
    ProviderError,
    RequestRejected,
)
from energy_async.models import Account, Order, OrderPhase, OrderRequest, Quote
from energy_async.providers._base import (
    Idempotency,
    Provider,
    Refusal,
    Wire,
    convert,
)
from energy_async.signing import ApiKeySigner, Signer

__all__ = ["TRONSAVE_MAINNET_URL", "TRONSAVE_NILE_URL", "TronSave"]

TRONSAVE_MAINNET_URL = "https://api.tronsave.io"
TRONSAVE_NILE_URL = "https://api-dev.tronsave.io"
_DURATIONS = {"1h": "3600"} | {f"{days}d": str(days * 86_400) for days in range(1, 31)}
_DURATION_OF_SECONDS = {int(seconds): name for name, seconds in _DURATIONS.items()}
# Codes named in errors-and-rate-limits.md, matched inside ``message``; first match wins.
_CODES: tuple[tuple[str, type[ProviderError]], ...] = (
    ("BALANCE_ACCOUNT_TOO_LOW", InsufficientBalance),
    ("INTERNAL_ACCOUNT_NOT_FOUND", AuthenticationError),
    ("API_KEY", AuthenticationError),
    ("NOT_FOUND", OrderNotFound),
)
HISTORY_PAGE_SIZE = 50  # order-history.md: default 10, no maximum stated; 50 is modest
_ENCODER = msgspec.json.Encoder()


class _Delegate(msgspec.Struct, frozen=True):
    txid: str | None = None
    delegator: str | None = None
    amount: int | None = None


class _Order(msgspec.Struct, frozen=True):
    id: str
    receiver: str | None = None
    resourceAmount: int | None = None
    remainAmount: int | None = None
    price: float | None = None
    durationSec: int | None = None
    fulfilledPercent: float | None = None
    payoutAmount: int | None = None
    delegates: list[_Delegate] = msgspec.field(default_factory=list)
    createdAt: int | None = None  # seconds; history entries only (see the module notes)


class _History(msgspec.Struct, frozen=True):
    data: list[Any]
    total: int


class _Created(msgspec.Struct, frozen=True):
    orderId: str


class _Estimate(msgspec.Struct, frozen=True):
    estimateTrx: int


class _UserInfo(msgspec.Struct, frozen=True):
    balance: str | int | None = None


@dataclass(frozen=True, kw_only=True, repr=False)
class TronSave(Provider):
    """TronSave API key; ``base_url`` is the host (`TRONSAVE_NILE_URL` for Nile)."""

    base_url: str = TRONSAVE_MAINNET_URL

    name: ClassVar[str] = "tronsave"
    mainnet_url: ClassVar[str] = TRONSAVE_MAINNET_URL
    testnet_url: ClassVar[str | None] = TRONSAVE_NILE_URL
    env_prefix: ClassVar[str] = "TRONSAVE"
    needs_secret: ClassVar[bool] = False
    signer: ClassVar[Signer] = ApiKeySigner("apikey")
    idempotency: ClassVar[Idempotency] = Idempotency.NONE
    create_path: ClassVar[str] = "/v2/buy-resource"
    order_path: ClassVar[str] = "/v2/order/"
    account_path: ClassVar[str] = "/v2/user-info"
    estimate_path: ClassVar[str | None] = "/v2/order-book/estimate-buy-resource"
    energy_param: ClassVar[str] = "resourceAmount"
    transfers_param: ClassVar[str | None] = None
    target_param: ClassVar[str] = "receiver"
    duration_param: ClassVar[str] = "durationSec"
    durations: ClassVar[dict[str, str]] = _DURATIONS

    def create_wire(self, request: OrderRequest) -> Wire:
        body = {
            "resourceType": "ENERGY",
            "resourceAmount": request.energy,
            "receiver": request.target,
            "durationSec": int(self.wire_duration(request.duration)),
        }
        return Wire("POST", self.create_path, "create", body=_ENCODER.encode(body))

    def history_wire(self, page: int) -> Wire | None:
        query = (("page", str(page)), ("pageSize", str(HISTORY_PAGE_SIZE)))
        return Wire("GET", "/v2/orders", "list", query)

    def parse_history(self, data: Any, page: int) -> tuple[list[Order], bool]:
        history = convert(data, _History, "tronsave order history")
        orders = [self.parse_order(row) for row in history.data]
        more = len(orders) == HISTORY_PAGE_SIZE and (page + 1) * HISTORY_PAGE_SIZE < history.total
        return orders, more

    def quote_wire(self, *, energy: int, duration: str) -> Wire:
        body = {
            "resourceType": "ENERGY",
            "resourceAmount": energy,
            "durationSec": int(self.wire_duration(duration)),
        }
        path = self.estimate_path or ""
        return Wire("POST", path, "estimate", body=_ENCODER.encode(body))

    def unwrap(self, http_status: int, body: bytes, endpoint: str) -> Any:
        reply = self.json_object(http_status, body, endpoint)
        if isinstance(reply, Refusal):
            return reply
        failed = reply.get("error") not in (False, None) or "statusCode" in reply
        if http_status < 400 and not failed:
            if "data" not in reply:
                raise BadResponse("response has no data")
            return reply["data"]
        message = reply.get("message") if isinstance(reply.get("message"), str) else None
        kind = _code_error(message or "") or self.error_class(http_status, message, endpoint)
        if kind is OrderNotFound and endpoint != "get":
            kind = RequestRejected
        code = reply.get("code") if isinstance(reply.get("code"), str) else None
        return Refusal(kind, f"{self.name} refused the request", code, message)

    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        if isinstance(data, dict) and set(data) == {"orderId"}:
            created = convert(data, _Created, "tronsave create")
            return Order(
                provider=self.name,
                id=created.orderId,
                client_order_id=request.client_order_id if request else None,
                target=request.target if request else "",
                energy=request.energy if request else None,
                duration=request.duration if request else None,
                raw=data,
                reported_phase=OrderPhase.PENDING,  # accepted; matching has not begun
            )
        order = convert(data, _Order, "tronsave order")
        seconds = order.durationSec
        return Order(
            provider=self.name,
            id=order.id,
            client_order_id=request.client_order_id if request else None,
            target=order.receiver or (request.target if request else ""),
            energy=order.resourceAmount,
            duration=_DURATION_OF_SECONDS.get(seconds) if seconds is not None else None,
            delegate_hashes=tuple(d.txid for d in order.delegates if d.txid),
            created_at_ms=order.createdAt * 1000 if order.createdAt is not None else None,
            raw=data,
            reported_phase=_phase(order),
        )

    def parse_quote(self, data: Any, *, energy: int, duration: str) -> Quote:
        estimate = convert(data, _Estimate, "tronsave estimate")
        return Quote(
            provider=self.name,
            energy=energy,
            transfers=None,
            duration=duration,
            cost_sun=estimate.estimateTrx,
        )

    def parse_account(self, data: Any) -> Account:
        info = convert(data, _UserInfo, "tronsave user-info")
        balance = info.balance
        if isinstance(balance, str):
            # isdigit() alone passes "²" (a ValueError in int()) and other scripts' digits.
            if not (balance.isascii() and balance.isdigit()):
                raise BadResponse("tronsave user-info balance is not a whole number of sun")
            if len(balance.lstrip("0")) > 19:  # past 2**63; int() refuses 4,300 digits
                raise BadResponse("tronsave user-info balance is out of range")
            balance = int(balance)
        return Account(provider=self.name, balance_sun=balance, raw=self.account_raw(data))


def _phase(order: _Order) -> OrderPhase:
    percent = order.fulfilledPercent or 0
    if percent >= 100 and not order.remainAmount:
        return OrderPhase.CONFIRMED
    return OrderPhase.DELEGATED if percent > 0 else OrderPhase.PENDING


def _code_error(message: str) -> type[ProviderError] | None:
    upper = message.upper()
    for code, error in _CODES:
        if code in upper:
            return error
    return None

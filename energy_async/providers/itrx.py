"""iTRX (https://develop.itrx.io): the facts of its API, from peers.md section 2.2.

- Base URL: the host, ``https://itrx.io``; every path starts ``/api/v1/frontend``. No testnet.
- Signing (``general/sign.html``): POSTs carry ``API-KEY``, ``TIMESTAMP`` (Unix seconds) and
  ``SIGNATURE = hex(HMAC-SHA256(secret, f"{ts}&{json.dumps(body, sort_keys=True,
  separators=(",", ":"))}"))``; the body sent is exactly that JSON, so what is signed is what is
  received. GETs carry ``API-KEY`` alone.
- ``POST /order {energy_amount, period, receive_address, out_trade_no}`` answers ``{errno: 0,
  serial, amount (sun), balance (sun)}``. ``out_trade_no`` (our ``client_order_id``) is a
  *lookup key* only: what a repeat does is undocumented, so the safe reading is that a repeat
  buys again (the sandbox does so). The session never sends a create twice blindly: it looks
  the key up first (``GET /order/query?out_trade_no=``) and creates only when iTRX answers that
  there is no such order (``errno 404``).
- Periods ``1H``, ``1D``, ``3D``, ``30D`` (our ``1h``, ``1d``, ``3d``, ``30d``); the query answers
  ``period`` as 0 (one hour), 1, 3 or 30 (days).
- Statuses: 0 closed on timeout, 41 refunded/terminated and 43 abnormally terminated are FAILED;
  10 awaiting payment, 20 paid, 30 preparing, 32 abnormal-retrying are PENDING; 31 partially
  delegated is DELEGATED; 40 completed is CONFIRMED (the docs' comment calling 30 a success
  conflicts with the enum and the callback; 40 is used). ``details[]`` names every delegation.
- Errors: HTTP 200 ``{errno != 0, message}``, or HTTP 400 with per-field arrays or
  ``{"detail"}``.
- Price: ``GET /order/price?period=&energy_amount=`` answers ``total_price`` and ``addition``
  (sun; the small-order fee below 50,000 energy). Whether ``total_price`` includes
  ``addition`` is not said; the quote adds them (the dearer reading: it never looks cheaper
  than it is; below our 65,000 minimum it is 0 anyway).
- Balance: ``GET /index-data`` -> ``balance`` (sun).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from energy_async.errors import BadResponse, OrderNotFound, ProviderError, RequestRejected
from energy_async.models import Account, Order, OrderPhase, OrderRequest, Quote
from energy_async.providers._base import (
    Idempotency,
    Provider,
    Refusal,
    Wire,
    convert,
)
from energy_async.signing import HexBodySigner, Signer

__all__ = ["ITRX_MAINNET_URL", "Itrx"]

ITRX_MAINNET_URL = "https://itrx.io"
_API = "/api/v1/frontend"
_PERIODS = {"1h": "1H", "1d": "1D", "3d": "3D", "30d": "30D"}
_DURATION_OF_PERIOD = {0: "1h", 1: "1d", 3: "3d", 30: "30d"}
_PHASES = {
    0: OrderPhase.FAILED,
    10: OrderPhase.PENDING,
    20: OrderPhase.PENDING,
    30: OrderPhase.PENDING,
    31: OrderPhase.DELEGATED,
    32: OrderPhase.PENDING,
    40: OrderPhase.CONFIRMED,
    41: OrderPhase.FAILED,
    43: OrderPhase.FAILED,
}


class _Created(msgspec.Struct, frozen=True):
    serial: str
    amount: int | None = None  # sun paid
    balance: int | None = None  # sun left


class _Detail(msgspec.Struct, frozen=True):
    delegate_hash: str | None = None


class _Queried(msgspec.Struct, frozen=True):
    serial: str | None = None
    order_no: str | None = None
    out_trade_no: str | None = None
    receive_address: str | None = None
    energy_amount: int | None = None
    amount: int | None = None
    period: int | None = None
    status: int | None = None
    details: list[_Detail] = msgspec.field(default_factory=list)


class _Price(msgspec.Struct, frozen=True):
    total_price: int
    addition: int = 0


class _IndexData(msgspec.Struct, frozen=True):
    balance: int | None = None


@dataclass(frozen=True, kw_only=True, repr=False)
class Itrx(Provider):
    """iTRX credentials; ``base_url`` is the host (default ``https://itrx.io``)."""

    base_url: str = ITRX_MAINNET_URL

    name: ClassVar[str] = "itrx"
    mainnet_url: ClassVar[str] = ITRX_MAINNET_URL
    env_prefix: ClassVar[str] = "ITRX"
    signer: ClassVar[Signer] = HexBodySigner()
    idempotency: ClassVar[Idempotency] = Idempotency.LOOKUP_KEY  # out_trade_no
    create_path: ClassVar[str] = f"{_API}/order"
    order_path: ClassVar[str] = f"{_API}/order/query"
    account_path: ClassVar[str] = f"{_API}/index-data"
    estimate_path: ClassVar[str | None] = f"{_API}/order/price"
    energy_param: ClassVar[str] = "energy_amount"
    transfers_param: ClassVar[str | None] = None
    target_param: ClassVar[str] = "receive_address"
    duration_param: ClassVar[str] = "period"
    durations: ClassVar[dict[str, str]] = _PERIODS

    def create_wire(self, request: OrderRequest) -> Wire:
        body = {
            "energy_amount": request.energy,
            "out_trade_no": request.client_order_id,
            "period": self.wire_duration(request.duration),
            "receive_address": request.target,
        }
        return Wire("POST", self.create_path, "create", body=msgspec.json.encode(body))

    def detail_wire(self, order_id: str) -> Wire:
        self.order_detail_path(order_id)  # validates the id
        return Wire("GET", self.order_path, "get", (("serial", order_id),))

    def lookup_wire(self, client_order_id: str) -> Wire | None:
        return Wire("GET", self.order_path, "lookup", (("out_trade_no", client_order_id),))

    def quote_wire(self, *, energy: int, duration: str) -> Wire:
        period = self.wire_duration(duration)
        query = (("period", period), ("energy_amount", str(energy)))
        return Wire("GET", self.estimate_path or "", "estimate", query)

    def unwrap(self, http_status: int, body: bytes, endpoint: str) -> Any:
        data = self.json_object(http_status, body, endpoint)
        if isinstance(data, Refusal):
            return data
        errno = data.get("errno")
        if http_status < 400 and errno == 0:
            return data
        if http_status < 400 and not isinstance(errno, int):
            raise BadResponse("response has no errno")
        message = _message(data)
        kind: type[ProviderError]
        if errno == 404 or http_status == 404:
            kind = OrderNotFound if endpoint in ("get", "lookup") else RequestRejected
        else:
            kind = self.error_class(http_status, message, endpoint)
        code = errno if isinstance(errno, int) else None
        return Refusal(kind, f"{self.name} refused the request", code, message)

    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        if isinstance(data, dict) and "serial" in data and "status" not in data:
            return self._parse_created(data, request)
        order = convert(data, _Queried, "itrx order")
        order_id = order.serial or order.order_no
        if not order_id:
            raise BadResponse("itrx order has neither serial nor order_no")
        hashes = tuple(d.delegate_hash for d in order.details if d.delegate_hash)
        return Order(
            provider=self.name,
            id=order_id,
            client_order_id=order.out_trade_no or (request.client_order_id if request else None),
            target=order.receive_address or (request.target if request else ""),
            energy=order.energy_amount,
            duration=_DURATION_OF_PERIOD.get(order.period) if order.period is not None else None,
            delegate_hashes=hashes,
            cost_sun=order.amount,
            raw=data,
            reported_phase=_PHASES.get(order.status, OrderPhase.UNKNOWN)
            if order.status is not None
            else OrderPhase.UNKNOWN,
        )

    def _parse_created(self, data: dict[str, Any], request: OrderRequest | None) -> Order:
        created = convert(data, _Created, "itrx create")
        return Order(
            provider=self.name,
            id=created.serial,
            client_order_id=request.client_order_id if request else None,
            target=request.target if request else "",
            energy=request.energy if request else None,
            duration=request.duration if request else None,
            cost_sun=created.amount,
            balance_after_sun=created.balance,
            raw=data,
            reported_phase=OrderPhase.PENDING,  # charged, not yet delegated
        )

    def parse_quote(self, data: Any, *, energy: int, duration: str) -> Quote:
        price = convert(data, _Price, "itrx price")
        return Quote(
            provider=self.name,
            energy=energy,
            transfers=None,
            duration=duration,
            cost_sun=price.total_price + price.addition,
        )

    def parse_account(self, data: Any) -> Account:
        index = convert(data, _IndexData, "itrx index-data")
        return Account(provider=self.name, balance_sun=index.balance, raw=self.account_raw(data))


def _message(data: dict[str, Any]) -> str | None:
    """``message``, ``detail``, or the first per-field complaint of a 400."""
    for key in ("message", "detail"):
        if isinstance(data.get(key), str):
            return str(data[key])
    for key, value in data.items():
        if isinstance(value, list) and value and isinstance(value[0], str):
            return f"{key}: {value[0]}"
    return None

"""iTRX's API as peers.md section 2.2 describes it (develop.itrx.io and its docs template).

Mounted at the host root of its prefix: ``POST /api/v1/frontend/order`` (JSON
``{energy_amount, period, receive_address, out_trade_no?}`` -> ``{errno: 0, serial, amount,
balance}``), ``GET /api/v1/frontend/order/query?serial=|out_trade_no=`` (``serial`` wins),
``GET /api/v1/frontend/order/price?period=&energy_amount=``, ``GET /api/v1/frontend/index-data``.

Authentication as ``general/sign.html`` says: every request needs ``API-KEY``; a POST also
``TIMESTAMP`` (10-digit Unix seconds) and ``SIGNATURE = hex(HMAC-SHA256(secret, ts + "&" +
json.dumps(body, sort_keys=True, separators=(",", ":"))))``, recomputed here from the parsed
body. The raw body of every create is kept (``raw_bodies``) so tests can check it is byte for
byte what was signed. ``out_trade_no`` is only a lookup key: a repeat **charges again** (the
undocumented case, taken the expensive way). Order statuses: 20 paid, 30 delegating, 40
completed (also after reclaim), 43 abnormally terminated; ``details[]`` one entry per delegation.

Sandbox assumptions, documented nowhere: a 100 s timestamp window (the docs' callback example
rejects anything older), HTTP 401 ``{"detail"}`` for authentication failures, the query answer
flat next to ``errno`` like the create's, prices below (sun per unit of energy), and that
receivers must already be activated (as the docs say; the ``active`` switch is not simulated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from typing import Any

import msgspec
from aiohttp import web

from energy_async.sandbox.chain import Chain
from energy_async.sandbox.pools import SplitSim
from energy_async.sandbox.provider_core import ProviderSim, Refusal, SimOrder
from energy_async.sandbox.provider_face import Face, build_face_app, json_response
from energy_async.sandbox.provider_http import SIM, Invalid, check_quantity

__all__ = [
    "ITRX_API_KEY",
    "ITRX_API_SECRET",
    "PERIOD_PRICES_SUN",
    "PERIOD_SECONDS",
    "ItrxFace",
    "build_itrx_app",
    "itrx_sim",
]

ITRX_API_KEY = "B433BFF1CDE7450AA38A56BEAC690DD4"  # the docs' example key, sandbox only
ITRX_API_SECRET = "sandbox-itrx-secret"
PERIOD_SECONDS = {"1H": 3600, "1D": 86_400, "3D": 3 * 86_400, "30D": 30 * 86_400}
PERIOD_NUMBER = {"1H": 0, "1D": 1, "3D": 3, "30D": 30}
PERIOD_PRICES_SUN = {"1H": 15, "1D": 40, "3D": 110, "30D": 900}
SMALL_ORDER = 50_000
SMALL_ADDITION_SUN = 500_000
MAX_SKEW_SECONDS = 100
_API = "/api/v1/frontend"
_STAMP = re.compile(r"[0-9]{10}")


def itrx_sim(chain: Chain, *, seed: int = 0) -> SplitSim:
    return SplitSim(
        chain,
        name="itrx",
        api_key=ITRX_API_KEY,
        api_secret=ITRX_API_SECRET,
        paid_status="20",
        activation_sun=0,
        seed=seed,
    )


class ItrxFace:
    """Authentication and error bodies; keeps the raw create bodies it accepted."""

    def __init__(self, sim: ProviderSim) -> None:
        self._sim = sim
        self.raw_bodies: list[bytes] = []

    def refusal(self, refusal: Refusal, detail: str) -> web.Response:
        if refusal is Refusal.ORDER_NOT_FOUND:
            return json_response(200, {"errno": 404, "message": "Order not found"})
        if refusal is Refusal.INVALID_PARAMETER and ":" in detail:
            field, _, text = detail.partition(":")
            return json_response(400, {field: [text.strip()]})
        return json_response(200, {"errno": 1, "message": detail or refusal.message})

    def not_found(self, request: web.Request) -> web.Response:
        return json_response(400, {"detail": "API not found"})

    def authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        headers = request.headers
        if not hmac.compare_digest(headers.get("API-KEY", "").encode(), self._sim.api_key.encode()):
            return json_response(401, {"detail": "Invalid API-KEY"})
        if request.method != "POST":
            return None
        stamp = headers.get("TIMESTAMP", "")
        if not _STAMP.fullmatch(stamp):
            return json_response(401, {"detail": "Invalid TIMESTAMP"})
        try:
            parsed = json.loads(body)
        except ValueError:
            return json_response(400, {"detail": "JSON parse error"})
        canonical = json.dumps(parsed, sort_keys=True, separators=(",", ":"))
        message = f"{stamp}&{canonical}".encode()
        expected = hmac.new(self._sim.api_secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("SIGNATURE", "").encode(), expected.encode()):
            return json_response(401, {"detail": "Invalid signature"})
        if abs(int(stamp) - self._sim.now()) > MAX_SKEW_SECONDS:
            return json_response(401, {"detail": "TIMESTAMP expired"})
        self.raw_bodies.append(body)
        return None


def build_itrx_app(sim: ProviderSim, face: ItrxFace | None = None) -> web.Application:
    chosen: Face = face or ItrxFace(sim)
    return build_face_app(
        sim,
        chosen,
        [
            ("POST", f"{_API}/order", _create, "create"),
            ("GET", f"{_API}/order/query", _query, "get"),
            ("GET", f"{_API}/order/price", _price, "estimate"),
            ("GET", f"{_API}/index-data", _index, "account"),
        ],
    )


def _field(fields: dict[str, Any], name: str) -> Any:
    if name not in fields:
        raise Invalid(Refusal.INVALID_PARAMETER, f"{name}: This field is required.")
    return fields[name]


def _energy(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Invalid(Refusal.INVALID_PARAMETER, "energy_amount: A valid integer is required.")
    return check_quantity(value)


def _period(value: object) -> str:
    if not isinstance(value, str) or value not in PERIOD_SECONDS:
        raise Invalid(Refusal.INVALID_DURATION, "period: not a supported period")
    return value


async def _create(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    assert isinstance(sim, SplitSim)
    fields = msgspec.json.decode(await request.read())
    if not isinstance(fields, dict):
        raise Invalid(Refusal.INVALID_PARAMETER, "non_field_errors: expected an object")
    energy = _energy(_field(fields, "energy_amount"))
    period = _period(_field(fields, "period"))
    receiver = _field(fields, "receive_address")
    if not isinstance(receiver, str) or not sim.chain.is_valid_address(receiver):
        raise Invalid(Refusal.INVALID_ADDRESS, "receive_address is not a valid TRON address")
    out_trade_no = fields.get("out_trade_no")
    if out_trade_no is not None and not isinstance(out_trade_no, str):
        raise Invalid(Refusal.INVALID_PARAMETER, "out_trade_no: Not a valid string.")
    price = energy * PERIOD_PRICES_SUN[period] + (SMALL_ADDITION_SUN if energy < SMALL_ORDER else 0)
    placed = sim.place_again(
        client_order_id=out_trade_no,
        receiver=receiver,
        quantity=energy,
        term=PERIOD_NUMBER[period],
        seconds=PERIOD_SECONDS[period],
        price_sun=price,
        category=period,
        activate=False,
    )
    if isinstance(placed, Refusal):
        raise Invalid(placed, placed.message)
    body = {
        "errno": 0,
        "serial": placed.key,
        "amount": placed.price_sun,
        "balance": placed.balance_after,
    }
    return json_response(200, body)


async def _query(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    assert isinstance(sim, SplitSim)
    serial = request.query.get("serial")
    out_trade_no = request.query.get("out_trade_no")
    order: SimOrder | None = None
    if serial:
        order = sim.orders.get(serial)
    elif out_trade_no:
        order = next((o for o in sim.orders.values() if o.client_order_id == out_trade_no), None)
    else:
        raise Invalid(Refusal.INVALID_PARAMETER, "serial: serial or out_trade_no is required")
    if order is None:
        raise Invalid(Refusal.ORDER_NOT_FOUND, "")
    return json_response(200, {"errno": 0, **_order_data(sim, order)})


async def _price(request: web.Request) -> web.Response:
    period = _period(request.query.get("period"))
    text = request.query.get("energy_amount", "")
    if not text.isdigit():
        raise Invalid(Refusal.INVALID_PARAMETER, "energy_amount: A valid integer is required.")
    energy = _energy(int(text))
    addition = SMALL_ADDITION_SUN if energy < SMALL_ORDER else 0
    unit = PERIOD_PRICES_SUN[period]
    body = {
        "errno": 0,
        "period": PERIOD_NUMBER[period],
        "energy_amount": energy,
        "price": unit,
        "total_price": energy * unit,
        "addition": addition,
    }
    return json_response(200, body)


async def _index(request: web.Request) -> web.Response:
    sim = request.app[SIM]
    body = {
        "errno": 0,
        "platform_avail_energy": 100_000_000,
        "minimum_order_energy": 65_000,
        "maximum_order_energy": 5_000_000,
        "small_amount": SMALL_ORDER,
        "small_addition": SMALL_ADDITION_SUN,
        "balance": sim.balance_sun,
    }
    return json_response(200, body)


def _status(sim: ProviderSim, order: SimOrder) -> int:
    progress = sim.progress(order)
    if progress.status == sim.paid_status:
        return 20
    if progress.status == "DELEGATE_FAIL":
        return 43
    if progress.confirm_status in ("DELEGATION_CONFIRMED", "RECLAIM_CONFIRMED"):
        return 40
    return 30


def _order_data(sim: SplitSim, order: SimOrder) -> dict[str, Any]:
    status = _status(sim, order)
    details = []
    if status != 20:
        for txid in sim.hashes(order):
            details.append(
                {
                    "delegate_hash": txid,
                    "delegate_time": order.created_ms,
                    "reclaim_hash": order.reclaim_hash,
                    "reclaim_time": order.expires_ms,
                    "status": 30 if order.reclaim_hash else 20,
                }
            )
    return {
        "order_no": order.key,
        "serial": order.key,
        "out_trade_no": order.client_order_id,
        "receive_address": order.receiver,
        "energy_amount": order.quantity,
        "amount": order.price_sun,
        "period": order.term,
        "status": status,
        "details": details,
        "create_time": order.created_ms // 1000,
        "refund_amount": 0,
    }

"""The HTTP face both simulated providers share: faults, authentication, envelope, ``Date``.

Every request passes one middleware, in this order: the service is unreachable (drop), a fault
that answers before the provider does (LATENCY, RATE_LIMIT, SERVER_ERROR, BAD_GATEWAY,
HTML_BODY, NON_JSON), authentication, the endpoint itself, then a fault that spoils the real
answer after it took effect (LOST_RESPONSE, TRUNCATED_JSON, HUGE_BODY, WRONG_TYPES). So a create
hit by one of the last four has charged and created; one hit by the first six has not.

Authentication follows CatFee's docs (Mefree's are the same template): string to sign =
timestamp + METHOD + the path and query exactly as received (``request.raw_path``, mount prefix
included), Base64(HMAC-SHA256(secret)); the timestamp must read ``YYYY-MM-DDTHH:MM:SS.mmmZ`` and
be less than 5 s from the provider's clock. Failures answer HTTP 401 with an envelope naming the
cause (the FAQ's three): code 2 ``INVALID_API_KEY`` (code 2 / "Invalid API Key" is seen in the
wild), 3 ``INVALID_SIGNATURE``, 4 ``INVALID_TIMESTAMP`` (its ``sub_msg`` gives the server time).
Other non-business answers: 404 envelope code 404 (unknown path or method), 429 code 429
(with ``Retry-After``), 500 code 500.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import msgspec
from aiohttp import web
from multidict import MultiMapping

from energy_async.sandbox.faults import ActiveFault, Fault, ServiceControl
from energy_async.sandbox.provider_core import MAX_QUANTITY, MIN_QUANTITY, ProviderSim, Refusal

__all__ = [
    "PROVIDER_FAULTS",
    "SIM",
    "Handler",
    "Invalid",
    "build_provider_app",
    "envelope",
    "masked",
    "read_address",
    "read_bool",
    "read_client_order_id",
    "read_int",
    "read_quantity",
    "read_text",
    "refuse",
]

SIM = web.AppKey("sim", ProviderSim)
_HEADER_PREFIX = web.AppKey("header_prefix", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_SKEW_SECONDS = 5.0
PROVIDER_FAULTS = frozenset(
    {
        Fault.LATENCY,
        Fault.RATE_LIMIT,
        Fault.SERVER_ERROR,
        Fault.BAD_GATEWAY,
        Fault.LOST_RESPONSE,
        Fault.HTML_BODY,
        Fault.NON_JSON,
        Fault.TRUNCATED_JSON,
        Fault.HUGE_BODY,
        Fault.WRONG_TYPES,
    }
)
_DIGITS = re.compile(r"[0-9]{1,10}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
_BAD_GATEWAY_PAGE = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    "</body>\r\n</html>\r\n"
)
_HTML_PAGE = (
    "<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    "<body><p>Checking your browser before accessing the site.</p></body></html>"
)


def build_provider_app(
    sim: ProviderSim, header_prefix: str, routes: list[tuple[str, str, Handler, str]]
) -> web.Application:
    """An app serving ``routes`` (method, path, handler, endpoint name) behind the shared gate."""
    app = web.Application(middlewares=[_gate])
    app[SIM] = sim
    app[_HEADER_PREFIX] = header_prefix
    for method, path, handler, endpoint in routes:
        app.router.add_route(method, path, handler, name=endpoint)
    app.router.add_route("*", "/{tail:.*}", _not_found, name="other")
    return app


def envelope(data: Any) -> web.Response:
    """A success: HTTP 200, ``code`` 0, the answer in ``data``."""
    return _json(200, {"code": 0, "msg": "success", "sub_code": "", "sub_msg": "", "data": data})


def refuse(refusal: Refusal, detail: str = "") -> web.Response:
    """A business refusal: HTTP 200, ``code != 0``, the cause in ``sub_code``."""
    return _failure(200, refusal.code, refusal.message, refusal.name, detail)


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


def _failure(status: int, code: int, msg: str, sub_code: str, sub_msg: str = "") -> web.Response:
    body = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg, "data": None}
    return _json(status, body)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = request.app[SIM]
    control = sim.control
    endpoint = request.match_info.route.name or "other"
    if control.unreachable:
        _drop(request, control, endpoint)
    sim.catch_up()
    fault = control.faults.draw(endpoint, PROVIDER_FAULTS)
    response = await _answer(request, handler, sim, fault)
    if fault is not None and fault.fault is Fault.LOST_RESPONSE:
        _drop(request, control, endpoint)
    control.record(request.method, request.raw_path, endpoint, response.status)
    response.headers["Date"] = email.utils.formatdate(sim.now(), usegmt=True)
    return response


async def _answer(
    request: web.Request, handler: Handler, sim: ProviderSim, fault: ActiveFault | None
) -> web.StreamResponse:
    if fault is not None:
        early = await _answer_early(fault)
        if early is not None:
            return early
    try:
        if request.match_info.route.name == "other":
            response = await handler(request)
        else:
            prefix = request.app[_HEADER_PREFIX]
            response = _authenticate(request, sim, prefix) or await handler(request)
    except Invalid as invalid:
        response = refuse(invalid.refusal, invalid.detail)
    if fault is not None and isinstance(response, web.Response):
        _spoil(response, fault)
    return response


async def _answer_early(fault: ActiveFault) -> web.Response | None:
    """The faults that answer before the provider sees the request (None: carry on)."""
    kind = fault.fault
    if kind is Fault.LATENCY:
        await asyncio.sleep(float(fault.param("delay", 0.2)))
        return None
    if kind is Fault.RATE_LIMIT:
        response = _failure(429, 429, "Too Many Requests", "RATE_LIMITED")
        response.headers["Retry-After"] = str(fault.param("retry_after", 1))
        return response
    if kind is Fault.SERVER_ERROR:
        return _failure(500, 500, "Internal Server Error", "INTERNAL_ERROR")
    if kind is Fault.BAD_GATEWAY:
        return web.Response(status=502, text=_BAD_GATEWAY_PAGE, content_type="text/html")
    if kind is Fault.HTML_BODY:
        return web.Response(text=_HTML_PAGE, content_type="text/html")
    if kind is Fault.NON_JSON:
        return web.Response(text="error code: 1010", content_type="text/plain")
    return None


def _spoil(response: web.Response, fault: ActiveFault) -> None:
    """Damage a real answer in place, the way a broken proxy or a buggy release would."""
    body = response.body
    if not isinstance(body, bytes):
        return
    if fault.fault is Fault.TRUNCATED_JSON:
        response.body = body[: len(body) // 2]
    elif fault.fault is Fault.HUGE_BODY:
        payload = msgspec.json.decode(body)
        payload["padding"] = "x" * int(fault.param("size", 5 * 1024 * 1024))
        response.body = msgspec.json.encode(payload)
    elif fault.fault is Fault.WRONG_TYPES:
        response.body = msgspec.json.encode(_stringify_numbers(msgspec.json.decode(body)))


def _stringify_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _stringify_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stringify_numbers(item) for item in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _drop(request: web.Request, control: ServiceControl, endpoint: str) -> NoReturn:
    """Close the connection without a byte of response: the client sees a disconnect."""
    control.record(request.method, request.raw_path, endpoint, 0)
    if request.transport is not None:
        request.transport.close()
    # aiohttp treats a cancelled handler as a client that went away: no 500 page, no log.
    raise asyncio.CancelledError


def _authenticate(request: web.Request, sim: ProviderSim, prefix: str) -> web.Response | None:
    headers = request.headers
    key = headers.get(f"{prefix}-ACCESS-KEY", "")
    if not key or not _same(key, sim.api_key):
        return _failure(401, 2, "Invalid API Key", "INVALID_API_KEY", f"{prefix}-ACCESS-KEY")
    stamp = headers.get(f"{prefix}-ACCESS-TIMESTAMP", "")
    moment = _parse_timestamp(stamp)
    if moment is None:
        return _failure(
            401,
            4,
            "Invalid timestamp",
            "INVALID_TIMESTAMP",
            f"{prefix}-ACCESS-TIMESTAMP must look like 2023-08-26T12:34:56.789Z",
        )
    message = f"{stamp}{request.method}{request.raw_path}".encode()
    digest = hmac.new(sim.api_secret.encode(), message, hashlib.sha256).digest()
    if not _same(headers.get(f"{prefix}-ACCESS-SIGN", ""), base64.b64encode(digest).decode()):
        return _failure(
            401,
            3,
            "Invalid signature",
            "INVALID_SIGNATURE",
            "expected Base64(HMAC-SHA256(secret, timestamp + METHOD + request path and query))",
        )
    now = sim.now()
    if abs(moment - now) >= MAX_SKEW_SECONDS:
        server_time = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        return _failure(
            401,
            4,
            "Timestamp deviation exceeds 5 seconds",
            "INVALID_TIMESTAMP",
            f"server time {server_time.replace('+00:00', 'Z')}",
        )
    return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


def _parse_timestamp(stamp: str) -> float | None:
    if not _TIMESTAMP.fullmatch(stamp):
        return None
    try:
        return datetime.fromisoformat(stamp[:-1] + "+00:00").timestamp()
    except ValueError:  # a day or hour that does not exist
        return None


async def _not_found(request: web.Request) -> web.Response:
    return _failure(404, 404, "Not Found", "NOT_FOUND", f"{request.method} {request.path}")


# -- query parameters -------------------------------------------------------------------------


class Invalid(Exception):
    """A parameter the provider refuses; the gate turns it into a ``code != 0`` envelope."""

    def __init__(self, refusal: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.refusal = refusal
        self.detail = detail


def read_text(query: MultiMapping[str], name: str) -> str | None:
    """One query parameter; repeating it is as invalid as a malformed value."""
    values = query.getall(name, [])
    if len(values) > 1:
        raise Invalid(Refusal.INVALID_PARAMETER, f"{name} given more than once")
    return values[0] if values else None


def _required(query: MultiMapping[str], name: str) -> str:
    value = read_text(query, name)
    if value is None:
        raise Invalid(Refusal.INVALID_PARAMETER, f"{name} is required")
    return value


def read_int(query: MultiMapping[str], name: str) -> int:
    value = _required(query, name)
    if not _DIGITS.fullmatch(value):
        raise Invalid(Refusal.INVALID_PARAMETER, f"{name} must be a whole number")
    return int(value)


def read_quantity(query: MultiMapping[str], name: str = "quantity") -> int:
    return check_quantity(read_int(query, name))


def check_quantity(quantity: int) -> int:
    if quantity < MIN_QUANTITY:
        raise Invalid(Refusal.QUANTITY_TOO_LOW, f"minimum is {MIN_QUANTITY}")
    if quantity > MAX_QUANTITY:
        raise Invalid(Refusal.QUANTITY_TOO_HIGH, f"maximum is {MAX_QUANTITY}")
    return quantity


def read_address(query: MultiMapping[str], name: str, sim: ProviderSim) -> str:
    address = _required(query, name)
    if not sim.chain.is_valid_address(address):
        raise Invalid(Refusal.INVALID_ADDRESS, f"{name} is not a valid TRON address")
    return address


def read_client_order_id(query: MultiMapping[str]) -> str | None:
    value = read_text(query, "client_order_id")
    if value is not None and not 1 <= len(value) <= 64:
        raise Invalid(Refusal.INVALID_PARAMETER, "client_order_id must be 1 to 64 characters")
    return value


def read_bool(query: MultiMapping[str], name: str, *, default: bool) -> bool:
    value = read_text(query, name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise Invalid(Refusal.INVALID_PARAMETER, f"{name} must be true or false")
    return value.lower() == "true"


def masked(secret: str) -> str:
    """How the account pages show a secret: enough to recognise it, not to use it."""
    return secret[:4] + "*" * 8

"""The HTTP face of a simulated provider whose API is not CatFee's template (TEnergy, iTRX,
TronSave): the same fault switches and request log as ``provider_http``, with the provider's
own authentication and error bodies plugged in as a `Face`.

Order per request: unreachable (drop), an early fault (LATENCY, RATE_LIMIT, SERVER_ERROR,
BAD_GATEWAY, HTML_BODY, NON_JSON: nothing happened), authentication on the exact bytes received
(``request.raw_path`` and the raw body), the endpoint, then a late fault that spoils an answer
that already took effect (LOST_RESPONSE, TRUNCATED_JSON, HUGE_BODY, WRONG_TYPES).
"""

from __future__ import annotations

import email.utils
from typing import Protocol

import msgspec
from aiohttp import web

from energy_async.sandbox.faults import Fault
from energy_async.sandbox.provider_core import ProviderSim, Refusal
from energy_async.sandbox.provider_http import (
    PROVIDER_FAULTS,
    SIM,
    Handler,
    Invalid,
    _answer_early,
    _drop,
    _spoil,
)

__all__ = ["FACE", "Face", "build_face_app", "json_response"]


class Face(Protocol):
    """What differs between providers at the HTTP edge."""

    def authenticate(self, request: web.Request, body: bytes) -> web.Response | None:
        """``None`` when the request is authentic, else the provider's refusal."""
        ...

    def refusal(self, refusal: Refusal, detail: str) -> web.Response:
        """A refused order or parameter in the provider's own error shape."""
        ...

    def not_found(self, request: web.Request) -> web.Response: ...


FACE = web.AppKey("face", Face)


def json_response(status: int, body: object) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


def build_face_app(
    sim: ProviderSim, face: Face, routes: list[tuple[str, str, Handler, str]]
) -> web.Application:
    """An app serving ``routes`` (method, path, handler, endpoint name) behind ``face``."""
    app = web.Application(middlewares=[_gate])
    app[SIM] = sim
    app[FACE] = face
    for method, path, handler, endpoint in routes:
        app.router.add_route(method, path, handler, name=endpoint)
    app.router.add_route("*", "/{tail:.*}", _other, name="other")
    return app


async def _other(request: web.Request) -> web.Response:
    return request.app[FACE].not_found(request)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    sim = request.app[SIM]
    face = request.app[FACE]
    control = sim.control
    endpoint = request.match_info.route.name or "other"
    if control.unreachable:
        _drop(request, control, endpoint)
    sim.catch_up()
    fault = control.faults.draw(endpoint, PROVIDER_FAULTS)
    response: web.StreamResponse | None = None
    if fault is not None:
        response = await _answer_early(fault)
    if response is None:
        body = await request.read()
        try:
            if endpoint == "other":
                response = await handler(request)
            else:
                response = face.authenticate(request, body) or await handler(request)
        except Invalid as invalid:
            response = face.refusal(invalid.refusal, invalid.detail)
        if fault is not None and isinstance(response, web.Response):
            _spoil(response, fault)
    if fault is not None and fault.fault is Fault.LOST_RESPONSE:
        _drop(request, control, endpoint)
    control.record(request.method, request.raw_path, endpoint, response.status)
    response.headers["Date"] = email.utils.formatdate(sim.now(), usegmt=True)
    return response

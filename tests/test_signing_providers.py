"""The published signing vectors of iTRX and TEnergy, and per signer a property test that what
is signed is byte for byte what the sandbox received (the sandbox checks it from the docs)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tronpy.keys import to_base58check_address

from energy_async._http import RateLimiter
from energy_async.providers import Itrx, Provider, TEnergy, TronSave
from energy_async.session import ProviderSession
from energy_async.signing import ApiKeySigner, HexBodySigner, PathSigner
from tests.loopback import serving

pytestmark = pytest.mark.anyio

ITRX_SECRET = "0285A2741D0E76E2E187260EB23E51851D48403A756333E7D0CF845406ABF3E8"
ITRX_SIGNED = (
    '1686796826&{"callback_url":"http://{mydomain}/callback","energy_amount":32000,'
    '"out_trade_no":"123456","period":"1D","receive_address":"TExWKszFWYTKZH8LYiovAPKzS3L9MLZ4kw"}'
)
TENERGY = PathSigner("x-api-key", "x-api-sign", "x-api-timestamp")


def _at(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_itrx_published_vector() -> None:
    # The docs' step-1 dict (with the "1D" its signed string really uses), serialized our way.
    body = msgspec.json.encode(
        {
            "receive_address": "TExWKszFWYTKZH8LYiovAPKzS3L9MLZ4kw",
            "period": "1D",
            "out_trade_no": "123456",
            "energy_amount": 32000,
            "callback_url": "http://{mydomain}/callback",
        },
        order="sorted",
    )
    assert b"1686796826&" + body == ITRX_SIGNED.encode()
    headers = HexBodySigner().headers("B433BFF1", ITRX_SECRET, 1686796826.9, "POST", "/x", body)
    assert headers["SIGNATURE"] == (
        "07c125cabfe006614a02131f927cca9e7a654f7644a817b155fad591e1c50f7b"
    )
    assert headers["TIMESTAMP"] == "1686796826"
    assert HexBodySigner().headers("k", ITRX_SECRET, 1.0, "GET", "/x", None) == {"API-KEY": "k"}


def test_tenergy_published_get_vector() -> None:
    headers = TENERGY.headers(
        "ak_test_x", "sk_test_example", _at("2026-09-12T10:00:00.000Z"), "GET", "/v1/balance", None
    )
    assert headers["x-api-sign"] == "WwD3LdlmYhCpc+uiAJDhD4C0fAcO0JgZzUan5jci3fw="
    assert headers["x-api-timestamp"] == "2026-09-12T10:00:00.000Z"


def test_tenergy_published_post_vector() -> None:
    body = (
        b'{"resource":"energy","amount":65000,"tier":"1h",'
        b'"receiver":"TGaBY3tR2JwABYznzY8XUUMQnuvPEjZCA2"}'
    )
    headers = TENERGY.headers(
        "ak_test_x", "sk_test_example", _at("2026-09-12T10:00:00.123Z"), "POST", "/v1/orders", body
    )
    assert headers["x-api-sign"] == "qFViL4FnxyIkwvcMaANZxAsgcQVZVkLLpiZosVYLnGY="


def test_tenergy_create_body_keeps_the_vector_key_order() -> None:
    provider = TEnergy(api_key="k", api_secret="s")
    request = provider.order_request(
        target="TGaBY3tR2JwABYznzY8XUUMQnuvPEjZCA2", energy=65_000, client_order_id="c1"
    )
    body = provider.create_wire(request).body
    assert body is not None and body.startswith(
        b'{"resource":"energy","amount":65000,"tier":"1h",'
        b'"receiver":"TGaBY3tR2JwABYznzY8XUUMQnuvPEjZCA2"'
    )


def test_tronsave_signs_nothing() -> None:
    headers = ApiKeySigner().headers("key", "", 1.0, "POST", "/v2/buy-resource", b"{}")
    assert headers == {"Content-Type": "application/json", "apikey": "key"}


# --- what is signed is what the server received ----------------------------------------------

addresses = st.binary(min_size=20, max_size=20).map(
    lambda raw: to_base58check_address("41" + raw.hex())
)
cids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
prefixes = st.sampled_from(["", "/tenergy", "/a/b-c"])
SECRET = "s3cret"


def _valid(provider: str, request: web.Request, body: bytes) -> bool:
    """The provider's check, written from its docs, over the raw bytes that arrived."""
    headers = request.headers
    if provider == "tenergy":
        message = f"{headers['x-api-timestamp']}{request.method}{request.raw_path}".encode() + body
        expected = hmac.new(SECRET.encode(), message, hashlib.sha256).digest()
        return hmac.compare_digest(base64.b64encode(expected).decode(), headers["x-api-sign"])
    if provider == "itrx":
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        if canonical.encode() != body:  # the body sent is the body signed
            return False
        message = f"{headers['TIMESTAMP']}&".encode() + body
        expected_hex = hmac.new(SECRET.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected_hex, headers["SIGNATURE"])
    return headers.get("apikey") == "k" and "SIGNATURE" not in headers


def _answer(provider: str, request: web.Request, fields: dict[str, Any]) -> dict[str, Any]:
    if provider == "tenergy":
        return {"id": "o-1", "client_order_id": fields["client_order_id"], "status": "paid"}
    if provider == "itrx":
        return {"errno": 0, "serial": "s-1", "amount": 1, "balance": 2}
    return {"error": False, "message": "Success", "data": {"orderId": "t-1"}}


_Seen = tuple[str, bytes, bool]  # raw path, raw body, whether the docs' check passed


@asynccontextmanager
async def _server(
    provider: str, prefix: str
) -> AsyncIterator[tuple[str, list[tuple[str, bytes, bool]]]]:
    seen: list[tuple[str, bytes, bool]] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "GET":  # iTRX looks the key up before it creates: none yet
            return web.json_response({"errno": 404, "message": "Order not found"})
        seen.append((request.raw_path, body, _valid(provider, request, body)))
        return web.json_response(_answer(provider, request, json.loads(body)), status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serving(app) as url:
        yield f"{url}{prefix}", seen


PROVIDERS: dict[str, type[Provider]] = {"tenergy": TEnergy, "itrx": Itrx, "tronsave": TronSave}
PATHS = {"tenergy": "/orders", "itrx": "/api/v1/frontend/order", "tronsave": "/v2/buy-resource"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(sorted(PROVIDERS)),
    target=addresses,
    energy=st.integers(65_000, 10_000_000),
    cid=cids,
    prefix=prefixes,
)
async def test_every_signer_signs_exactly_the_bytes_the_server_received(
    name: str, target: str, energy: int, cid: str, prefix: str
) -> None:
    cls = PROVIDERS[name]
    async with _server(name, prefix) as (url, seen):
        provider = cls(api_key="k", api_secret=SECRET, base_url=url)
        async with ProviderSession(provider, limiter=RateLimiter(10_000)) as session:
            order = await session.create_order(target=target, energy=energy, client_order_id=cid)
    assert order.target == target
    creates = [entry for entry in seen if entry[0] == prefix + PATHS[name]]
    assert len(creates) == 1
    _, body, valid = creates[0]
    assert valid
    fields = json.loads(body)
    assert target in fields.values() and energy in fields.values()

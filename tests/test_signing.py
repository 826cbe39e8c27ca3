"""Signing: the published vectors, and that the bytes signed are the bytes the server receives."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tronpy.keys import to_base58check_address

from energy_async._http import RateLimiter
from energy_async.providers import CatFee, Mefree, Provider
from energy_async.session import ProviderSession
from energy_async.signing import format_timestamp, sign, signed_headers, string_to_sign
from tests.loopback import serving

pytestmark = pytest.mark.anyio

SECRET = "your_api_secret"
CATFEE_PATH = "/v1/order?quantity=65000&receiver=TRON_ADDRESS&duration=1h"
MEFREE_PATH = "/api/order?quantity=65000&target_address=TRON_ADDRESS&period=1"


def test_catfee_published_vector() -> None:
    stamp = "2023-08-26T12:34:56.789Z"
    assert string_to_sign(stamp, "post", CATFEE_PATH) == f"{stamp}POST{CATFEE_PATH}"
    assert (
        sign(SECRET, stamp, "POST", CATFEE_PATH) == "YGUEHUn06m0HfsE2rCz5SapoQwlT1SAZFSzdVCes0S8="
    )


def test_mefree_published_vector() -> None:
    stamp = "2024-11-26T12:34:56.789Z"
    assert (
        sign(SECRET, stamp, "POST", MEFREE_PATH) == "ppOU1OPIbOFlR9xacyApXu00ZyiU0i8IMiY3G/PuWZw="
    )


def test_timestamp_is_iso_utc_with_milliseconds() -> None:
    assert format_timestamp(1693053296.789) == "2023-08-26T12:34:56.789Z"
    assert format_timestamp(1693053296) == "2023-08-26T12:34:56.000Z"


def test_signed_headers_use_the_provider_prefix() -> None:
    stamp = "2023-08-26T12:34:56.789Z"
    headers = signed_headers("CF", "key", SECRET, stamp, "POST", CATFEE_PATH)
    assert headers == {
        "Content-Type": "application/json",
        "CF-ACCESS-KEY": "key",
        "CF-ACCESS-SIGN": "YGUEHUn06m0HfsE2rCz5SapoQwlT1SAZFSzdVCes0S8=",
        "CF-ACCESS-TIMESTAMP": stamp,
    }


# --- property: what is signed is byte for byte what reached the server ---------------------------


class _Seen(msgspec.Struct):
    method: str
    raw_path: str
    signature_valid: bool


@asynccontextmanager
async def _verifying_server(
    provider_cls: type[Provider], prefix: str
) -> AsyncIterator[tuple[str, list[_Seen]]]:
    """A loopback server that checks each signature against ``request.raw_path`` itself."""
    seen: list[_Seen] = []
    head = provider_cls.header_prefix

    async def handler(request: web.Request) -> web.Response:
        stamp = request.headers[f"{head}-ACCESS-TIMESTAMP"]
        message = f"{stamp}{request.method}{request.raw_path}".encode()
        expected = base64.b64encode(hmac.new(b"s3cret", message, hashlib.sha256).digest())
        valid = hmac.compare_digest(expected.decode(), request.headers[f"{head}-ACCESS-SIGN"])
        seen.append(_Seen(request.method, request.raw_path, valid))
        return web.json_response({"code": 0, "msg": "success", "data": _order(request)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    async with serving(app) as url:
        yield f"{url}{prefix}", seen


def _order(request: web.Request) -> dict[str, Any]:
    """Echo the order the request asked for, in the shape of the provider it was sent to."""
    query = request.query
    order_id = request.path.rsplit("/", 1)[-1]
    if "receiver" in query:
        return {
            "id": "o-1",
            "client_order_id": query["client_order_id"],
            "receiver": query["receiver"],
            "quantity": int(query["quantity"]),
        }
    if "target_address" in query:
        return {
            "pay_hash": "p-1",
            "client_order_id": query["client_order_id"],
            "energy_to_address": query["target_address"],
            "energy_quantity": int(query.get("quantity", "65000")),
        }
    return {"id": order_id, "pay_hash": order_id}


addresses = st.binary(min_size=20, max_size=20).map(
    lambda body: to_base58check_address("41" + body.hex())
)
client_order_ids = st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True)
prefixes = st.sampled_from(["", "/catfee", "/a/b-c"])


@st.composite
def orders(draw: st.DrawFn) -> tuple[type[Provider], dict[str, Any], str]:
    """A valid order for a random provider and the path its docs say it goes to."""
    provider_cls = draw(st.sampled_from([CatFee, Mefree]))
    target = draw(addresses)
    cid = draw(client_order_ids)
    if provider_cls is CatFee:
        energy = draw(st.integers(65_000, 10_000_000))
        path = f"/v1/order?quantity={energy}&receiver={target}&duration=1h&client_order_id={cid}"
        return provider_cls, {"target": target, "energy": energy, "client_order_id": cid}, path
    duration, period = draw(
        st.sampled_from([("fast", 0), ("1h", 1), ("1d", 2), ("3d", 3), ("7d", 7), ("30d", 30)])
    )
    if draw(st.booleans()):
        transfers = draw(st.integers(1, 150))
        amount: dict[str, Any] = {"transfers": transfers}
        wire = f"count={transfers}"
    else:
        energy = draw(st.integers(65_000, 10_000_000))
        amount, wire = {"energy": energy}, f"quantity={energy}"
    path = f"/api/order?{wire}&target_address={target}&period={period}&client_order_id={cid}"
    order = {"target": target, "duration": duration, "client_order_id": cid, **amount}
    return provider_cls, order, path


def _session(provider_cls: type[Provider], url: str) -> ProviderSession:
    provider = provider_cls(api_key="k", api_secret="s3cret", base_url=url)
    return ProviderSession(provider, limiter=RateLimiter(10_000))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=orders(), prefix=prefixes)
async def test_create_signs_exactly_the_path_and_query_the_server_received(
    order: tuple[type[Provider], dict[str, Any], str], prefix: str
) -> None:
    provider_cls, fields, documented_path = order
    async with (
        _verifying_server(provider_cls, prefix) as (url, seen),
        _session(provider_cls, url) as session,
    ):
        placed = await session.create_order(**fields)
    assert placed.client_order_id == fields["client_order_id"]
    assert seen == [_Seen("POST", prefix + documented_path, True)]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    provider_cls=st.sampled_from([CatFee, Mefree]),
    order_id=st.from_regex(r"[A-Za-z0-9_-]{1,128}", fullmatch=True),
    prefix=prefixes,
)
async def test_get_signs_exactly_the_path_the_server_received(
    provider_cls: type[Provider], order_id: str, prefix: str
) -> None:
    async with (
        _verifying_server(provider_cls, prefix) as (url, seen),
        _session(provider_cls, url) as session,
    ):
        order = await session.get_order(order_id)
    assert order.id == order_id
    assert seen == [_Seen("GET", f"{prefix}{provider_cls.order_path}{order_id}", True)]

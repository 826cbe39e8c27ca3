"""Issue 9: whatever bytes a provider sends, decoding them ends in a typed `BadResponse`.

Every adapter in `PROVIDERS` is driven through the hooks the session calls (``unwrap``, then
``parse_order`` / ``parse_account`` / ``parse_quote``), from the raw body, and finally end to
end through a `ProviderSession` against a loopback server. Nothing untyped may escape: one
order's RecursionError or UnicodeDecodeError would cancel every other order in flight. No
decode error may ride along either (as ``__cause__`` or ``__context__``): a
UnicodeDecodeError holds the body, and an account body holds the API secret.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest
from aiohttp import web

from energy_async._http import RateLimiter
from energy_async.errors import BadResponse, EnergyError
from energy_async.models import Account, Order, Quote
from energy_async.providers import PROVIDERS, Provider, Refusal
from energy_async.session import ProviderSession, RetryPolicy
from tests.loopback import serving

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
KEY, SECRET = "k-7f3a9c", "s-very-secret-91b2"
HUGE = 2**70  # beyond a journal's INTEGER (2**63 - 1)
NAMES = sorted(PROVIDERS)

DEEP_LIST = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
NOT_UTF8 = b"\xff\xfe\x00"
# Bodies that are not JSON any decoder reads: too deep, not UTF-8, a number no int holds.
GARBAGE = {
    "deep list": DEEP_LIST,
    "deep object": DEEP_OBJECT,
    "deep in data": b'{"code":0,"errno":0,"error":false,"data":' + DEEP_LIST + b"}",
    "not utf-8": NOT_UTF8,
    "utf-8 error in a string": b'{"code":0,"msg":"\xff"}',
    "truncated": b'{"code": 0, "data": {"id": "ab',
    "html": b"<html><body>Just a moment...</body></html>",
    "empty": b"",
    "float overflow": b'{"code":0,"errno":0,"data":{"balance":1e400}}',
    "5000-digit int": b'{"code":0,"errno":0,"data":{"balance":' + b"1" * 5000 + b"}}",
}
# JSON, but not the shape of any provider's success.
WRONG_SHAPES = {"list": b"[1, 2]", "string": b'"text"', "null": b"null", "number": b"3"}

Parse = Callable[[Provider, Any], Any]


def adapter(name: str, base_url: str = "") -> Provider:
    return PROVIDERS[name](api_key=KEY, api_secret=SECRET, base_url=base_url)


def success(name: str, data: Any) -> bytes:
    """``data`` wrapped as ``name`` wraps a successful reply."""
    if name in ("catfee", "mefree"):
        return msgspec.json.encode({"code": 0, "msg": "success", "data": data})
    if name == "itrx":
        return msgspec.json.encode({"errno": 0, **data})
    if name == "tronsave":
        return msgspec.json.encode({"error": False, "message": "Success", "data": data})
    return msgspec.json.encode(data)  # tenergy: the object itself


def decode(provider: Provider, body: bytes, parse: Parse, status: int = 200) -> Any:
    """What the session does with a reply: ``unwrap``, then the endpoint's parse hook."""
    data = provider.unwrap(status, body, "account")
    if isinstance(data, Refusal):
        return data
    return parse(provider, data)


def parse_account(provider: Provider, data: Any) -> Account:
    return provider.parse_account(data)


def parse_order(provider: Provider, data: Any) -> Order:
    return provider.parse_order(data)


PARSERS = pytest.mark.parametrize("parse", [parse_account, parse_order], ids=["account", "order"])


def links(error: BaseException) -> Iterator[BaseException]:
    """Every exception reachable from ``error``: causes and contexts, suppressed or not."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]


def assert_clean(error: BaseException) -> None:
    """A `BadResponse` on one line, no secret in it, and nothing untyped chained to it."""
    assert type(error) is BadResponse
    text = str(error)
    assert "\n" not in text and "\r" not in text and len(text) < 500
    assert SECRET not in text and KEY not in text
    for link in links(error):
        assert isinstance(link, EnergyError), f"{type(link).__name__} is chained to {text!r}"


def raises_bad_response(call: Callable[[], Any]) -> BadResponse:
    with pytest.raises(BadResponse) as caught:
        call()
    assert_clean(caught.value)
    return caught.value


# --- bytes that are not JSON ------------------------------------------------------------------


@PARSERS
@pytest.mark.parametrize("body", GARBAGE.values(), ids=GARBAGE.keys())
@pytest.mark.parametrize("name", NAMES)
def test_garbage_is_a_bad_response_on_every_endpoint(name: str, body: bytes, parse: Parse) -> None:
    raises_bad_response(lambda: decode(adapter(name), body, parse))


@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_OBJECT, NOT_UTF8], ids=["list", "obj", "utf8"])
@pytest.mark.parametrize("name", NAMES)
def test_garbage_with_an_error_status_is_a_refusal_not_a_crash(name: str, body: bytes) -> None:
    refusal = decode(adapter(name), body, parse_account, status=400)
    assert isinstance(refusal, Refusal)
    assert "\n" not in refusal.summary


@PARSERS
@pytest.mark.parametrize("body", WRONG_SHAPES.values(), ids=WRONG_SHAPES.keys())
@pytest.mark.parametrize("name", NAMES)
def test_json_of_the_wrong_shape_is_a_bad_response(name: str, body: bytes, parse: Parse) -> None:
    raises_bad_response(lambda: decode(adapter(name), body, parse))


# Each provider's balance, as a success wraps it, with the wrong type inside.
BALANCE_FIELD = {
    "catfee": "balance",
    "mefree": "account_balance",
    "tenergy": "balance_sun",
    "itrx": "balance",
    "tronsave": "balance",
}


@pytest.mark.parametrize("value", ["x", 1.5, True, [1], {"sun": 1}, -(2**70)])
@pytest.mark.parametrize("name", NAMES)
def test_a_balance_of_the_wrong_type_or_range_is_a_bad_response(name: str, value: Any) -> None:
    provider = adapter(name)
    body = success(name, {BALANCE_FIELD[name]: value})
    raises_bad_response(lambda: decode(provider, body, parse_account))


@pytest.mark.parametrize(
    "balance",
    ["²", "١٢", "+5", "-5", " 5", "1_000", "5.0", "", "1" * 5000, str(HUGE), str(2**63)],
)
def test_tronsave_string_balances_are_ascii_digits_in_range(balance: str) -> None:
    # "²".isdigit() is True and int("²") a ValueError; int() refuses past 4,300 digits.
    provider = adapter("tronsave")
    raises_bad_response(
        lambda: decode(provider, success("tronsave", {"balance": balance}), parse_account)
    )


def test_tronsave_string_balances_that_are_numbers_decode() -> None:
    provider = adapter("tronsave")
    for text, sun in [("0", 0), ("00012", 12), (str(2**63 - 1), 2**63 - 1)]:
        account = decode(provider, success("tronsave", {"balance": text}), parse_account)
        assert account.balance_sun == sun


# --- numbers no order has: 2**70 and -5 -------------------------------------------------------

# A valid order of each provider (as its get/create answers it) and the names of its amounts.
ORDERS: dict[str, dict[str, Any]] = {
    "catfee": {
        "id": "c-1",
        "receiver": TARGET,
        "quantity": 65_000,
        "duration": 60,
        "status": "PAYMENT_SUCCESS",
        "pay_amount_sun": 1_105_000,
        "activate_amount_sun": 0,
        "balance": 98_895_000,
    },
    "mefree": {
        "pay_hash": "m-1",
        "energy_to_address": TARGET,
        "energy_quantity": 65_000,
        "energy_period": 1,
        "status": "TRANSFER_SUCCESS",
        "amount_sun": 3_000_000,
        "balance": 5_000_000,
    },
    "tenergy": {
        "id": "t-1",
        "receiver": TARGET,
        "amount": 65_000,
        "tier": "1h",
        "status": "paid",
        "price_sun": 1_300_000,
        "balance_after_sun": 5_000_000,
    },
    "itrx": {
        "serial": "i-1",
        "out_trade_no": "c-1",
        "receive_address": TARGET,
        "energy_amount": 65_000,
        "amount": 1_300_000,
        "period": 0,
        "status": 40,
    },
    "itrx create": {"serial": "i-1", "amount": 1_300_000, "balance": 5_000_000},
    "tronsave": {
        "id": "s-1",
        "receiver": TARGET,
        "resourceAmount": 65_000,
        "remainAmount": 0,
        "durationSec": 3600,
        "fulfilledPercent": 100,
        "createdAt": 1_724_675_696,
    },
}
# (order shape, field): amounts that must lie in 0 .. 2**63 - 1.
COSTS = [
    ("catfee", "pay_amount_sun"),
    ("catfee", "activate_amount_sun"),
    ("mefree", "amount_sun"),
    ("tenergy", "price_sun"),
    ("itrx", "amount"),
    ("itrx create", "amount"),
]
ENERGIES = [
    ("catfee", "quantity"),
    ("mefree", "energy_quantity"),
    ("tenergy", "amount"),
    ("itrx", "energy_amount"),
    ("tronsave", "resourceAmount"),
]
# Balances after the order and times: any sign, but within 2**63 - 1.
SIGNED = [
    ("catfee", "balance"),
    ("catfee", "pay_timestamp"),
    ("mefree", "balance"),
    ("mefree", "timestamp"),
    ("tenergy", "balance_after_sun"),
    ("tenergy", "expires_at_ms"),
    ("itrx create", "balance"),
    ("tronsave", "createdAt"),
]


def provider_of(shape: str) -> Provider:
    return adapter(shape.split()[0])


def order_body(shape: str, **changes: Any) -> bytes:
    return success(shape.split()[0], {**ORDERS[shape], **changes})


@pytest.mark.parametrize("shape", ORDERS)
def test_each_valid_order_decodes(shape: str) -> None:
    # The baseline the cases below change one number of.
    order = decode(provider_of(shape), order_body(shape), parse_order)
    assert isinstance(order, Order) and order.id.endswith("-1")


def test_every_provider_has_an_order_to_change() -> None:
    assert {shape.split()[0] for shape in ORDERS} == set(PROVIDERS)
    assert {shape.split()[0] for shape, _ in ENERGIES} == set(PROVIDERS)


@pytest.mark.parametrize("value", [HUGE, -5, 2**63])
@pytest.mark.parametrize(("shape", "field"), COSTS + ENERGIES)
def test_costs_and_energy_out_of_range_are_bad_responses(
    shape: str, field: str, value: int
) -> None:
    body = order_body(shape, **{field: value})
    error = raises_bad_response(lambda: decode(provider_of(shape), body, parse_order))
    assert str(value) in error.message


@pytest.mark.parametrize("value", [HUGE, -HUGE])
@pytest.mark.parametrize(("shape", "field"), SIGNED)
def test_balances_and_times_out_of_range_are_bad_responses(
    shape: str, field: str, value: int
) -> None:
    body = order_body(shape, **{field: value})
    raises_bad_response(lambda: decode(provider_of(shape), body, parse_order))


@pytest.mark.parametrize("name", NAMES)
def test_an_account_balance_of_2_pow_70_is_a_bad_response(name: str) -> None:
    provider = adapter(name)
    body = success(name, {BALANCE_FIELD[name]: HUGE})
    error = raises_bad_response(lambda: decode(provider, body, parse_account))
    assert str(HUGE) in error.message
    largest = success(name, {BALANCE_FIELD[name]: 2**63 - 1})
    assert decode(provider, largest, parse_account).balance_sun == 2**63 - 1


def test_tenergy_plain_balance_is_checked_too() -> None:
    provider = adapter("tenergy")
    raises_bad_response(
        lambda: decode(provider, success("tenergy", {"balance": HUGE}), parse_account)
    )


# Each priced provider's estimate reply, as a success wraps it.
QUOTES: dict[str, Callable[[int], Any]] = {
    "catfee": lambda sun: sun,
    "itrx": lambda sun: {"total_price": sun, "addition": 0},
    "tronsave": lambda sun: {"estimateTrx": sun},
}


def test_every_priced_provider_has_a_quote_case() -> None:
    priced = {name for name, cls in PROVIDERS.items() if cls.estimate_path is not None}
    assert priced == set(QUOTES)


@pytest.mark.parametrize("value", [HUGE, -5])
@pytest.mark.parametrize("name", sorted(QUOTES))
def test_a_quote_out_of_range_is_a_bad_response(name: str, value: int) -> None:
    # The router sorts by price: a negative one would win every route.
    provider = adapter(name)

    def quote(provider: Provider, data: Any) -> Quote:
        return provider.parse_quote(data, energy=65_000, duration="1h")

    assert decode(provider, success(name, QUOTES[name](1_300_000)), quote).cost_sun == 1_300_000
    raises_bad_response(lambda: decode(provider, success(name, QUOTES[name](value)), quote))


def test_itrx_addition_cannot_make_a_price_negative() -> None:
    provider = adapter("itrx")
    body = success("itrx", {"total_price": 1_000, "addition": -2_000})
    raises_bad_response(
        lambda: decode(provider, body, lambda p, d: p.parse_quote(d, energy=65_000, duration="1h"))
    )


def test_the_request_filling_gaps_does_not_hide_a_bad_cost() -> None:
    # iTRX's create reply takes the energy from the request; its own cost is still checked.
    provider = adapter("itrx")
    request = provider.order_request(target=TARGET, energy=65_000, client_order_id="c-1")
    data = provider.unwrap(200, order_body("itrx create", amount=-5), "create")
    raises_bad_response(lambda: provider.parse_order(data, request))


# --- end to end: a ProviderSession against a loopback server -------------------------------------


@asynccontextmanager
async def serve(path: str, body: bytes) -> AsyncIterator[tuple[str, list[str]]]:
    """A server that answers ``GET path`` with ``body`` (HTTP 200) and records what it served."""
    seen: list[str] = []

    async def answer(request: web.Request) -> web.Response:
        seen.append(request.path)
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get(path, answer)
    async with serving(app, shutdown_timeout=0.1) as url:
        yield url, seen


@pytest.mark.anyio
@pytest.mark.parametrize("body", [DEEP_LIST, DEEP_OBJECT, NOT_UTF8], ids=["list", "obj", "utf8"])
@pytest.mark.parametrize("name", NAMES)
async def test_session_account_with_a_hostile_body_is_a_bad_response(
    name: str, body: bytes
) -> None:
    path = PROVIDERS[name].account_path
    async with serve(path, body) as (url, seen):
        provider = adapter(name, base_url=url)
        retry = RetryPolicy(max_attempts=3, initial_delay=0.0, max_delay=0.0)
        async with ProviderSession(provider, retry=retry, limiter=RateLimiter(10_000)) as session:
            with pytest.raises(BadResponse) as caught:
                await session.account()
    assert seen == [path]  # it reached the account endpoint, once: a bad body is not retried
    assert_clean(caught.value)
    assert caught.value.provider == name and caught.value.http_status == 200

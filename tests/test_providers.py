"""Provider adapters: credentials, validation, the wire query, decoding and error tables."""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    ConfigurationError,
    DuplicateOrder,
    InputError,
    InsufficientBalance,
    InvalidAddress,
    InvalidOrder,
    NotSupported,
    OrderNotFound,
    ProviderError,
    RequestRejected,
)
from energy_async.models import ActivateStatus, ConfirmStatus, OrderPhase, OrderStatus
from energy_async.providers import (
    CATFEE_NILE_URL,
    PROVIDERS,
    CatFee,
    Idempotency,
    Mefree,
    Provider,
    Refusal,
    Wire,
    provider_class,
)
from energy_async.providers._base import decode_envelope

TARGET = "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g"
TARGET_HEX = "41fd49eda0f23ff7ec1d03b52c3a45991c24cd440e"
KEY, SECRET = "k-7f3a9c", "s-very-secret-91b2"

catfee = CatFee(api_key=KEY, api_secret=SECRET)
mefree = Mefree(api_key=KEY, api_secret=SECRET)

# The create response logged from the real API (providers.md 1.7), with an id added.
CATFEE_LOGGED = {
    "id": "6f1c2b1e-8f0a-4a43-9a3e-2b0c7a1e5d11",
    "resource_type": "ENERGY",
    "billing_type": "API",
    "source_type": "API",
    "pay_timestamp": 1724675696789,
    "receiver": TARGET,
    "pay_amount_sun": 1105000,
    "activate_amount_sun": 0,
    "quantity": 65000,
    "staked_sun": 0,
    "duration": 60,
    "expired_timestamp": 1724679296789,
    "status": "PAYMENT_SUCCESS",
    "activate_status": "ALREADY_ACTIVATED",
    "confirm_status": "UNCONFIRMED",
    "balance": 98895000,
}
# The old real Mefree response (providers.md 2.4): no client_order_id, no energy_to_address.
MEFREE_OLD = {
    "pay_hash": "cbbd0daa-1c5e-4a53-9b1c-0f36c2d3e4f5",
    "timestamp": 0,
    "pay_address": "TXYZopYRdj2D9XRtbG411XZZ3kM5VkAeBf",
    "amount_sun": 3000000,
    "energy_quantity": 32000,
    "energy_period": 1,
    "energy_expired_timestamp": 0,
    "status": "TRANSFER_SUCCESS",
}


# --- credentials and configuration --------------------------------------------------------------


@pytest.mark.parametrize("provider", [catfee, mefree], ids=["catfee", "mefree"])
def test_secrets_never_in_repr_or_str(provider: Provider) -> None:
    for text in (repr(provider), str(provider)):
        assert KEY not in text and SECRET not in text
        assert provider.base_url in text


def test_base_urls_default_to_mainnet_and_catfee_has_nile() -> None:
    assert catfee.base_url == "https://api.catfee.io"
    assert mefree.base_url == "https://api.mefree.net"
    assert CatFee(api_key=KEY, api_secret=SECRET, base_url=CATFEE_NILE_URL).base_url == (
        "https://nile.catfee.io"
    )
    assert (catfee.name, catfee.header_prefix, mefree.name, mefree.header_prefix) == (
        "catfee",
        "CF",
        "mefree",
        "MF",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://api.catfee.io",
        "ftp://x",
        "api.catfee.io",
        "https://u:p@api.catfee.io",
        "https://h/?a",
    ],
)
def test_only_https_or_loopback_base_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        CatFee(api_key=KEY, api_secret=SECRET, base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/catfee", "http://localhost:1", "http://[::1]:2"]
)
def test_loopback_http_is_allowed(url: str) -> None:
    assert CatFee(api_key=KEY, api_secret=SECRET, base_url=url).base_url.startswith("http://")


@pytest.mark.parametrize(
    ("key", "secret"), [("", SECRET), (KEY, ""), (KEY, "a\nb"), (" k", SECRET), (None, SECRET)]
)
def test_missing_or_malformed_credentials(key: Any, secret: str) -> None:
    with pytest.raises(ConfigurationError, match=r"api_key|api_secret") as caught:
        Mefree(api_key=key, api_secret=secret)
    shown = str(caught.value)
    assert all(value not in shown for value in (key, secret) if value and value != SECRET)


def test_from_env_reads_the_documented_variables() -> None:
    env = {"CATFEE_API_KEY": KEY, "CATFEE_API_SECRET": SECRET}
    provider = CatFee.from_env(environ=env, base_url="http://127.0.0.1:9")
    assert (provider.api_key, provider.api_secret, provider.base_url) == (
        KEY,
        SECRET,
        "http://127.0.0.1:9",
    )
    mf = Mefree.from_env(environ={"MEFREE_API_KEY": KEY, "MEFREE_API_SECRET": SECRET})
    assert mf.base_url == "https://api.mefree.net"


def test_from_env_names_what_is_missing() -> None:
    with pytest.raises(ConfigurationError, match="MEFREE_API_SECRET") as caught:
        Mefree.from_env(environ={"MEFREE_API_KEY": KEY})
    assert "MEFREE_API_KEY" not in str(caught.value)
    with pytest.raises(ConfigurationError, match="CATFEE_API_KEY and CATFEE_API_SECRET"):
        CatFee.from_env(environ={})


# --- validation ----------------------------------------------------------------------------------


def test_order_request_is_canonical_and_gets_an_id() -> None:
    request = catfee.order_request(target=TARGET_HEX, energy=65_000)
    assert request.target == TARGET
    assert re.fullmatch(r"ea-[0-9a-f]{32}", request.client_order_id)
    assert catfee.order_request(target=TARGET, energy=65_000).client_order_id != (
        request.client_order_id
    )
    given = mefree.order_request(
        target=TARGET, transfers=2, duration="fast", client_order_id="x_1-"
    )
    assert (given.transfers, given.energy, given.duration, given.client_order_id) == (
        2,
        None,
        "fast",
        "x_1-",
    )


BAD_AMOUNTS: list[tuple[dict[str, Any], type[InputError]]] = [
    ({"energy": 64_999}, InvalidOrder),
    ({"energy": 10_000_001}, InvalidOrder),
    ({"energy": 0}, InvalidOrder),
    ({"energy": -65_000}, InvalidOrder),
    ({"energy": True}, InvalidOrder),
    ({"energy": 65_000.0}, InvalidOrder),
    ({"energy": "65000"}, InvalidOrder),
    ({}, InvalidOrder),
    ({"energy": 65_000, "transfers": 1}, InvalidOrder),
]


@pytest.mark.parametrize("provider", [catfee, mefree], ids=["catfee", "mefree"])
@pytest.mark.parametrize(("amount", "error"), BAD_AMOUNTS)
def test_bad_amounts(provider: Provider, amount: dict[str, Any], error: type[InputError]) -> None:
    with pytest.raises(error):
        provider.order_request(target=TARGET, **amount)


@pytest.mark.parametrize("transfers", [0, -1, 154, True, 1.0])
def test_bad_transfers(transfers: Any) -> None:
    with pytest.raises(InvalidOrder):
        mefree.order_request(target=TARGET, transfers=transfers)


def test_transfers_are_not_supported_by_catfee() -> None:
    with pytest.raises(NotSupported, match="quantity only"):
        catfee.order_request(target=TARGET, transfers=1)


@pytest.mark.parametrize(
    ("provider", "duration"),
    [
        (catfee, "1d"),
        (catfee, "fast"),
        (catfee, "24h"),
        (catfee, "1H"),
        (mefree, "2d"),
        (mefree, "31d"),
        (mefree, "1w"),
        (mefree, ""),
        (mefree, 1),
    ],
)
def test_unsupported_durations_name_the_supported_ones(provider: Provider, duration: Any) -> None:
    with pytest.raises(NotSupported, match="supported: ") as caught:
        provider.order_request(target=TARGET, energy=65_000, duration=duration)
    assert "1h" in str(caught.value)


def test_mefree_periods_follow_the_docs() -> None:
    assert mefree.durations["fast"] == "0"
    assert mefree.durations["1h"] == "1"
    assert mefree.durations["1d"] == "2"
    assert mefree.durations["3d"] == "3"
    assert mefree.durations["30d"] == "30"
    assert len(mefree.durations) == 31
    assert list(catfee.durations) == ["1h"]


@pytest.mark.parametrize(
    "client_order_id", ["", "a" * 65, "a b", "a/b", "a?b=c", "a&b", "é", "١٢", "a\n", 12, b"ab"]
)
def test_bad_client_order_ids(client_order_id: Any) -> None:
    with pytest.raises(InvalidOrder, match="client_order_id"):
        catfee.order_request(target=TARGET, energy=65_000, client_order_id=client_order_id)


def test_longest_client_order_id_is_accepted() -> None:
    assert catfee.order_request(target=TARGET, energy=65_000, client_order_id="Z" * 64)


@pytest.mark.parametrize(
    "target",
    [
        "",
        "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2h",  # checksum
        "TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2",  # length
        "0xfd49eda0f23ff7ec1d03b52c3a45991c24cd440e",
        "42fd49eda0f23ff7ec1d03b52c3a45991c24cd440e",
        " TZ4UXDV5ZhNW7fb2AMSbgfAEZ7hWsnYS2g",
        None,
    ],
)
def test_bad_addresses(target: Any) -> None:
    with pytest.raises(InvalidAddress):
        mefree.order_request(target=target, energy=65_000)


@pytest.mark.parametrize("order_id", ["", "../account", "a/b", "a?b", "a b", "x" * 129, 7])
def test_order_ids_that_would_change_the_path_are_refused(order_id: Any) -> None:
    with pytest.raises(InvalidOrder):
        catfee.order_detail_path(order_id)


# --- the wire ---------------------------------------------------------------------------------


def test_create_queries_use_each_providers_names_in_documented_order() -> None:
    request = catfee.order_request(target=TARGET, energy=70_000, client_order_id="c1")
    assert catfee.create_query(request) == [
        ("quantity", "70000"),
        ("receiver", TARGET),
        ("duration", "1h"),
        ("client_order_id", "c1"),
    ]
    by_count = mefree.order_request(target=TARGET, transfers=2, duration="3d", client_order_id="c2")
    assert mefree.create_query(by_count) == [
        ("count", "2"),
        ("target_address", TARGET),
        ("period", "3"),
        ("client_order_id", "c2"),
    ]
    by_energy = mefree.order_request(target=TARGET, energy=65_000, client_order_id="c3")
    assert mefree.create_query(by_energy)[0] == ("quantity", "65000")


def test_quotes() -> None:
    assert catfee.quote_query(energy=65_000, duration="1h") == (
        "/v1/estimate",
        [("quantity", "65000"), ("duration", "1h")],
    )
    quote = catfee.parse_quote(1105000, energy=65_000, duration="1h")
    assert (quote.cost_sun, quote.energy, quote.provider) == (1105000, 65_000, "catfee")
    with pytest.raises(BadResponse):
        catfee.parse_quote("1105000", energy=65_000, duration="1h")
    with pytest.raises(NotSupported, match="unit"):
        mefree.quote_query(energy=65_000, duration="1h")


# --- decoding ----------------------------------------------------------------------------------


def test_catfee_logged_response_decodes() -> None:
    order = catfee.parse_order(CATFEE_LOGGED)
    assert order.id == CATFEE_LOGGED["id"]
    assert (order.provider, order.target, order.energy, order.duration) == (
        "catfee",
        TARGET,
        65_000,
        "1h",
    )
    assert order.status is OrderStatus.PAYMENT_SUCCESS
    assert order.confirm_status is ConfirmStatus.UNCONFIRMED
    assert order.activate_status is ActivateStatus.ALREADY_ACTIVATED
    assert order.phase is OrderPhase.PENDING
    assert (order.cost_sun, order.activation_cost_sun, order.balance_after_sun) == (
        1105000,
        0,
        98895000,
    )
    assert (order.created_at_ms, order.expires_at_ms) == (1724675696789, 1724679296789)
    assert order.delegate_hash is None and order.client_order_id is None
    assert order.raw == CATFEE_LOGGED


def test_mefree_old_response_decodes_with_the_request_filling_gaps() -> None:
    request = mefree.order_request(target=TARGET, transfers=1, client_order_id="c9")
    order = mefree.parse_order(MEFREE_OLD, request)
    assert (order.id, order.target, order.energy, order.transfers, order.duration) == (
        MEFREE_OLD["pay_hash"],
        TARGET,
        32000,
        1,
        "1h",
    )
    assert order.status is OrderStatus.TRANSFER_SUCCESS
    assert order.confirm_status is ConfirmStatus.UNKNOWN
    assert (order.created_at_ms, order.expires_at_ms, order.cost_sun) == (None, None, 3000000)
    assert mefree.parse_order(MEFREE_OLD).target == ""


@pytest.mark.parametrize(("period", "duration"), [(0, "fast"), (2, "1d"), (30, "30d"), (99, None)])
def test_mefree_period_reads_back_as_duration(period: int, duration: str | None) -> None:
    assert mefree.parse_order({**MEFREE_OLD, "energy_period": period}).duration == duration


def test_unknown_statuses_read_as_unknown() -> None:
    data = {**CATFEE_LOGGED, "status": "NEW_THING", "confirm_status": "LATER", "delegate_hash": ""}
    order = catfee.parse_order(data)
    assert order.status is OrderStatus.UNKNOWN and order.confirm_status is ConfirmStatus.UNKNOWN
    assert order.phase is OrderPhase.UNKNOWN and order.delegate_hash is None
    assert order.raw["status"] == "NEW_THING"


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "x",
        {},
        {**CATFEE_LOGGED, "quantity": "65000"},
        {**CATFEE_LOGGED, "id": 5},
        {**CATFEE_LOGGED, "duration": 1.5},
        {**CATFEE_LOGGED, "status": 3},
    ],
)
def test_catfee_wrong_shapes_are_bad_responses(data: Any) -> None:
    with pytest.raises(BadResponse):
        catfee.parse_order(data)


@pytest.mark.parametrize("data", [None, {}, {**MEFREE_OLD, "energy_quantity": "1"}])
def test_mefree_wrong_shapes_are_bad_responses(data: Any) -> None:
    with pytest.raises(BadResponse):
        mefree.parse_order(data)


def test_accounts_never_keep_the_key_or_secret() -> None:
    data = {"api_key": KEY, "api_secret": SECRET, "balance": 5, "email": "a@b"}
    account = catfee.parse_account(data)
    assert account.balance_sun == 5 and account.raw == {"balance": 5, "email": "a@b"}
    assert SECRET not in repr(account) and KEY not in repr(account)
    mf = mefree.parse_account({"api_key": KEY, "api_secret": SECRET, "account_balance": 7})
    assert mf.balance_sun == 7 and mf.raw == {"account_balance": 7}
    with pytest.raises(BadResponse) as caught:
        catfee.parse_account({"api_secret": SECRET, "balance": "5"})
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"error code: 1010",
        b"<html><body>Just a moment...</body></html>",
        b'{"code": 0, "msg": "success", "data": {"id": "ab',
        b'{"code": "0", "data": {}}',
        b'{"msg": "no code"}',
        b"[1, 2]",
        b"\xff\xfe",
    ],
)
def test_envelope_failures_are_bad_responses_never_decode_errors(body: bytes) -> None:
    with pytest.raises(BadResponse) as caught:
        decode_envelope(body)
    assert not isinstance(caught.value, msgspec.MsgspecError)


def test_envelope_fields() -> None:
    envelope = decode_envelope(
        b'{"code": 4, "msg": "Timestamp deviation", "sub_code": "INVALID_TIMESTAMP", '
        b'"sub_msg": "server time", "data": null, "extra": 1}'
    )
    assert envelope.code == 4 and envelope.data is None
    assert envelope.message == "Timestamp deviation: INVALID_TIMESTAMP: server time"
    assert envelope.says_clock
    signature = decode_envelope(
        b'{"code": 3, "msg": "Invalid signature", "sub_code": "INVALID_SIGNATURE", '
        b'"sub_msg": "HMAC(secret, timestamp + METHOD + path)"}'
    )
    assert not signature.says_clock


# --- error tables -------------------------------------------------------------------------------

ERRORS: list[tuple[int, str | None, str, type[ProviderError]]] = [
    (200, "insufficient balance", "create", InsufficientBalance),
    (200, "Invalid API Key", "account", AuthenticationError),
    (401, None, "get", AuthenticationError),
    (403, "error code: 1010", "create", AuthenticationError),
    (200, "IP not in whitelist", "create", AuthenticationError),
    (200, "order not found", "get", OrderNotFound),
    (404, None, "get", OrderNotFound),
    (200, "order not found by estimate", "estimate", RequestRejected),
    (200, "invalid receiver address", "create", RequestRejected),
    (200, "quantity is below the minimum of 65000", "create", RequestRejected),
    (200, "unsupported rental duration", "create", RequestRejected),
    (400, None, "create", RequestRejected),
    (200, "duplicate client_order_id", "create", DuplicateOrder),
    (200, "something else", "create", ProviderError),
    (200, None, "create", ProviderError),
]


@pytest.mark.parametrize(("status", "message", "endpoint", "error"), ERRORS)
@pytest.mark.parametrize("provider", [catfee, mefree], ids=["catfee", "mefree"])
def test_error_classes(
    provider: Provider, status: int, message: str | None, endpoint: str, error: type[ProviderError]
) -> None:
    assert provider.error_class(status, message, endpoint) is error


# --- the registry and the hooks every adapter declares ------------------------------------------


def test_the_registry_names_each_adapter_by_its_own_name() -> None:
    assert {"catfee", "mefree"} <= set(PROVIDERS)
    for name, cls in PROVIDERS.items():
        assert cls.name == name and provider_class(name) is cls
        assert isinstance(cls.idempotency, Idempotency)
        assert cls.env_names()[0] == f"{cls.env_prefix}_API_KEY"
    with pytest.raises(ConfigurationError, match="known: catfee, mefree, tenergy, itrx, tronsave"):
        provider_class("nope")


def test_catfee_family_declares_a_native_key_and_a_prefixed_path_signer() -> None:
    for provider, prefix in ((catfee, "CF"), (mefree, "MF")):
        assert provider.idempotency is Idempotency.NATIVE_KEY
        headers = provider.signer.headers(KEY, SECRET, 1693053296.789, "GET", "/x", None)
        assert headers[f"{prefix}-ACCESS-KEY"] == KEY
        assert headers[f"{prefix}-ACCESS-TIMESTAMP"] == "2023-08-26T12:34:56.789Z"


def test_the_create_wire_is_a_post_with_the_query_and_no_body() -> None:
    request = catfee.order_request(target=TARGET, energy=65_000, client_order_id="c-1")
    wire = catfee.create_wire(request)
    assert (wire.method, wire.path, wire.endpoint, wire.body) == (
        "POST",
        "/v1/order",
        "create",
        None,
    )
    assert wire.query == tuple(catfee.create_query(request))
    assert catfee.detail_wire("abc") == Wire("GET", "/v1/order/abc", "get")
    assert catfee.lookup_wire("c-1") is None


@pytest.mark.parametrize(
    ("status", "confirm", "phase"),
    [
        ("PAYMENT_SUCCESS", "UNCONFIRMED", OrderPhase.PENDING),
        ("DELEGATE_SUCCESS", "UNCONFIRMED", OrderPhase.DELEGATED),
        ("DELEGATE_SUCCESS", "DELEGATION_CONFIRMED", OrderPhase.CONFIRMED),
        ("DELEGATE_FAIL", "UNCONFIRMED", OrderPhase.FAILED),
        ("SOMETHING_NEW", "UNCONFIRMED", OrderPhase.UNKNOWN),
    ],
)
def test_the_adapter_reports_the_phase_it_read(
    status: str, confirm: str, phase: OrderPhase
) -> None:
    order = catfee.parse_order(CATFEE_LOGGED | {"status": status, "confirm_status": confirm})
    assert order.reported_phase is phase and order.phase is phase


def test_a_reported_phase_wins_over_catfee_status_names() -> None:
    order = catfee.parse_order(CATFEE_LOGGED)
    assert order.phase is OrderPhase.PENDING
    stated = msgspec.structs.replace(order, reported_phase=OrderPhase.CONFIRMED)
    assert stated.phase is OrderPhase.CONFIRMED


def test_unwrap_returns_data_or_the_refusal() -> None:
    ok = catfee.unwrap(200, b'{"code":0,"data":{"a":1}}', "get")
    assert ok == {"a": 1}
    refused = catfee.unwrap(200, b'{"code":1007,"msg":"insufficient balance"}', "create")
    assert isinstance(refused, Refusal) and refused.error is InsufficientBalance
    assert (refused.code, refused.message, refused.about_clock) == (
        1007,
        "insufficient balance",
        False,
    )
    clock = catfee.unwrap(401, b'{"code":4,"msg":"Timestamp deviation exceeds 5 seconds"}', "get")
    assert isinstance(clock, Refusal) and clock.about_clock
    bare = catfee.unwrap(403, b"<html>", "get")
    assert isinstance(bare, Refusal) and bare.error is AuthenticationError
    with pytest.raises(BadResponse):
        catfee.unwrap(200, b"<html>", "get")

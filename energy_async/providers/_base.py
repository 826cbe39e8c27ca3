"""What every provider adapter shares: credentials, order validation, the envelope, error tables.

An adapter is mostly data (paths, parameter names, durations, a signer, its idempotency
capability) plus a few hooks, each with CatFee's behaviour as the default: build the wire
request of each call (`Wire`: query or JSON body), unwrap the envelope of a reply (``unwrap``),
and turn the provider's JSON into the shared models, its statuses into an `OrderPhase` and its
delegations into ``Order.delegate_hashes``. Validation lives here because what is valid depends
on the provider (its durations, whether it sells by ``transfers``), and it must run before
anything is sent.
"""

from __future__ import annotations

import abc
import enum
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Self, TypeVar

import msgspec

from energy_async._http import DECODE_ERRORS, check_base_url
from energy_async.address import validate_address
from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    ConfigurationError,
    DuplicateOrder,
    InsufficientBalance,
    InvalidOrder,
    NotSupported,
    OrderNotFound,
    ProviderError,
    RequestRejected,
)
from energy_async.models import (
    Account,
    ActivateStatus,
    ConfirmStatus,
    Order,
    OrderRequest,
    OrderStatus,
    Quote,
)
from energy_async.signing import Signer

__all__ = [
    "MAX_ENERGY",
    "MAX_TRANSFERS",
    "MIN_ENERGY",
    "Envelope",
    "Idempotency",
    "Provider",
    "Refusal",
    "Wire",
    "decode_envelope",
    "decode_json",
]

MIN_ENERGY = 65_000  # both providers: "quantity ... min 65000" (providers.md 1.6, 2.4)
# No provider documents a maximum. This cap sits 5x above the largest order seen in client code
# (2,000,000) and catches a unit slip (sun typed for energy, an extra zero) before it costs money.
MAX_ENERGY = 10_000_000
# The same guard for Mefree's ``count``: a USDT transfer needs ~65,000 energy, so this is about
# MAX_ENERGY's worth of transfers.
MAX_TRANSFERS = MAX_ENERGY // MIN_ENERGY

_CLIENT_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Provider order ids go into the URL path: UUIDs in practice. Anything else could change which
# endpoint a signed request reaches ("../account").
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
# Fields of an account response that must never reach ``Account.raw`` (and so no repr or log).
_SECRET_FIELDS = frozenset({"api_key", "api_secret"})


class Envelope(msgspec.Struct, frozen=True):
    """``{code, msg, sub_code, sub_msg, data}``; ``code == 0`` is success, whatever the HTTP."""

    code: int
    msg: str | None = None
    sub_code: str | int | None = None
    sub_msg: str | None = None
    data: Any = None

    @property
    def message(self) -> str | None:
        parts = [str(part) for part in (self.msg, self.sub_code, self.sub_msg) if part]
        return ": ".join(parts) or None

    @property
    def says_clock(self) -> bool:
        """The refusal names the timestamp (not merely mentions it while explaining a sign)."""
        return "time" in f"{self.msg} {self.sub_code}".lower()


_ENVELOPE = msgspec.json.Decoder(Envelope)
_ANY = msgspec.json.Decoder()
T = TypeVar("T")

# The decode helpers below raise `BadResponse` after their ``except`` clause, not inside it, so
# the decode error is neither its ``__cause__`` nor its ``__context__``: a UnicodeDecodeError
# holds the body, and an account body holds the API secret. Their messages never quote the body.


def decode_envelope(body: bytes) -> Envelope:
    """The envelope of a response body; `BadResponse` for anything that is not one."""
    try:
        return _ENVELOPE.decode(body)
    except msgspec.ValidationError as exc:
        problem = f"response is JSON but not the documented envelope: {exc}"
    except DECODE_ERRORS:
        problem = f"response is not JSON ({len(body)} bytes)"
    raise BadResponse(problem)


def decode_json(body: bytes) -> Any:
    """Any JSON value of a response body (adapters without CatFee's envelope); `BadResponse`
    for anything `_http.DECODE_ERRORS` lists: malformed, too deeply nested, not UTF-8, or a
    number no int or float holds."""
    try:
        return _ANY.decode(body)
    except msgspec.ValidationError as exc:  # 1e400, an integer of thousands of digits
        problem = f"response is JSON with a number out of range: {exc}"
    except DECODE_ERRORS:
        problem = f"response is not JSON ({len(body)} bytes)"
    raise BadResponse(problem)


def convert(data: Any, kind: type[T], what: str) -> T:
    """``data`` as ``kind``, strictly typed; `BadResponse` naming the field that is wrong."""
    try:
        return msgspec.convert(data, kind)
    except msgspec.ValidationError as exc:
        problem = f"{what} has an unexpected shape: {exc}"
    raise BadResponse(problem)


# Neither provider publishes an error-code table (providers.md 1.4, 2.2), so refusals are
# classified by the words of their message. Checked in order: the first match wins.
_MESSAGE_ERRORS: tuple[tuple[tuple[str, ...], type[ProviderError]], ...] = (
    (("insufficient", "not enough balance", "balance not enough"), InsufficientBalance),
    (
        (
            "api key",
            "api_key",
            "apikey",
            "signature",
            "sign error",
            "invalid sign",
            "timestamp",
            "unauthorized",
            "authentication",
        ),
        AuthenticationError,
    ),
    (("whitelist", "permission", "forbidden"), AuthenticationError),
    (("duplicate",), DuplicateOrder),
)
_REJECTION_WORDS = ("address", "quantity", "duration", "period", "count", "param", "invalid")


class Idempotency(enum.StrEnum):
    """What makes a repeated create safe at this provider, which decides how one is retried."""

    NATIVE_KEY = "NATIVE_KEY"  # the same client id returns the earlier order: replay it
    LOOKUP_KEY = "LOOKUP_KEY"  # the id finds an order, a repeat may buy again: look up first
    NONE = "NONE"  # nothing dedupes: reconcile from the order list and the chain, or UNKNOWN


class Wire(NamedTuple):
    """One request as it goes on the wire: path (after the base URL), query, body bytes."""

    method: str
    path: str
    endpoint: str  # create, get, lookup, account, estimate, list: for errors and logs
    query: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A reply that says no: the error to raise, and what the provider said."""

    error: type[ProviderError]
    summary: str
    code: int | str | None = None
    message: str | None = None
    about_clock: bool = False  # the timestamp was refused: worth one retry on the server clock


@dataclass(frozen=True, kw_only=True, repr=False)
class Provider(abc.ABC):
    """Credentials and the facts of one provider's API.

    Frozen and hashable; the key and secret never appear in ``repr``/``str``.
    """

    api_key: str
    api_secret: str = ""
    base_url: str = ""

    name: ClassVar[str]
    mainnet_url: ClassVar[str]
    header_prefix: ClassVar[str]
    env_prefix: ClassVar[str]
    create_path: ClassVar[str]
    order_path: ClassVar[str]  # the order id is appended
    account_path: ClassVar[str]
    energy_param: ClassVar[str]
    transfers_param: ClassVar[str | None]
    target_param: ClassVar[str]
    duration_param: ClassVar[str]
    durations: ClassVar[Mapping[str, str]]  # our duration name -> the value on the wire
    estimate_path: ClassVar[str | None] = None
    no_estimate_reason: ClassVar[str] = "no price estimate is documented"
    signer: ClassVar[Signer]
    idempotency: ClassVar[Idempotency] = Idempotency.NATIVE_KEY
    needs_secret: ClassVar[bool] = True  # False: an API key alone (TronSave)
    docs_url: ClassVar[str] = ""
    testnet_url: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        fields = [("api_key", self.api_key)]
        if self.needs_secret or self.api_secret:
            fields.append(("api_secret", self.api_secret))
        for field, value in fields:
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"{self.name}: {field} is missing or empty")
            if not value.isprintable() or value != value.strip():
                # A newline would split the header; say which field, never what it holds.
                raise ConfigurationError(f"{self.name}: {field} contains whitespace or control")
        url = check_base_url(self.base_url or self.mainnet_url, what=f"{self.name} base_url")
        object.__setattr__(self, "base_url", str(url))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @classmethod
    def from_env(
        cls, *, base_url: str | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        """Credentials from ``{PREFIX}_API_KEY`` / ``{PREFIX}_API_SECRET``."""
        env = os.environ if environ is None else environ
        names = cls.env_names()
        missing = [name for name in names if not env.get(name)]
        if missing:
            raise ConfigurationError(f"{cls.name}: set {' and '.join(missing)} in the environment")
        secret = env[names[1]] if len(names) > 1 else ""
        return cls(api_key=env[names[0]], api_secret=secret, base_url=base_url or "")

    @classmethod
    def env_names(cls) -> tuple[str, ...]:
        """The environment variables that hold this provider's credentials."""
        key = f"{cls.env_prefix}_API_KEY"
        return (key, f"{cls.env_prefix}_API_SECRET") if cls.needs_secret else (key,)

    @property
    def supports_transfers(self) -> bool:
        return self.transfers_param is not None

    # --- validation: nothing is sent until these pass ---------------------------------------

    def order_request(
        self,
        *,
        target: str,
        energy: int | None = None,
        transfers: int | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
    ) -> OrderRequest:
        """A validated request with its ``client_order_id`` fixed (generated when not given)."""
        self.check_amount(energy=energy, transfers=transfers)
        self.wire_duration(duration)
        if client_order_id is None:
            client_order_id = new_client_order_id()
        elif not isinstance(client_order_id, str) or not _CLIENT_ORDER_ID.fullmatch(
            client_order_id
        ):
            raise InvalidOrder(
                "client_order_id must be 1-64 characters of A-Z a-z 0-9 _ -", provider=self.name
            )
        return OrderRequest(
            target=validate_address(target),
            energy=energy,
            transfers=transfers,
            duration=duration,
            client_order_id=client_order_id,
        )

    def check_amount(self, *, energy: int | None, transfers: int | None) -> None:
        """Exactly one of ``energy`` / ``transfers``, in range, and only what the provider sells."""
        if (energy is None) == (transfers is None):
            raise InvalidOrder("give exactly one of energy= or transfers=", provider=self.name)
        if transfers is not None:
            if not self.supports_transfers:
                raise NotSupported(
                    f"{self.name} sells energy by quantity only; use energy=", provider=self.name
                )
            _check_int("transfers", transfers, 1, MAX_TRANSFERS, self.name)
        if energy is not None:
            _check_int("energy", energy, MIN_ENERGY, MAX_ENERGY, self.name)

    def wire_duration(self, duration: str) -> str:
        wire = self.durations.get(duration) if isinstance(duration, str) else None
        if wire is None:
            supported = ", ".join(self.durations)
            raise NotSupported(
                f"{self.name} does not offer duration {duration!r}; supported: {supported}",
                provider=self.name,
            )
        return wire

    def order_detail_path(self, order_id: str) -> str:
        if not isinstance(order_id, str) or not _ORDER_ID.fullmatch(order_id):
            raise InvalidOrder(
                "order id must be 1-128 characters of A-Z a-z 0-9 _ -", provider=self.name
            )
        return self.order_path + order_id

    # --- the wire -------------------------------------------------------------------------

    def create_query(self, request: OrderRequest) -> list[tuple[str, str]]:
        """Query parameters of the create, in the documented order (values are URL-safe)."""
        if request.transfers is not None and self.transfers_param is not None:
            amount = (self.transfers_param, str(request.transfers))
        else:
            amount = (self.energy_param, str(request.energy))
        return [
            amount,
            (self.target_param, request.target),
            (self.duration_param, self.wire_duration(request.duration)),
            ("client_order_id", request.client_order_id),
        ]

    def create_wire(self, request: OrderRequest) -> Wire:
        """The create as sent: CatFee's scheme is a POST with the order in the query."""
        return Wire("POST", self.create_path, "create", tuple(self.create_query(request)))

    def detail_wire(self, order_id: str) -> Wire:
        return Wire("GET", self.order_detail_path(order_id), "get")

    def lookup_wire(self, client_order_id: str) -> Wire | None:
        """The order found by our client id, where the API can look one up (``None``: no)."""
        return None

    def account_wire(self) -> Wire:
        return Wire("GET", self.account_path, "account")

    def history_wire(self, page: int) -> Wire | None:
        """One page of the account's orders, newest first (``None``: no history is documented).

        Only a provider without an idempotency key needs it: it is how a create whose answer
        was lost is found again (`energy_async.reconcile`).
        """
        return None

    def parse_history(self, data: Any, page: int) -> tuple[list[Order], bool]:
        """The orders of one history page and whether more pages follow."""
        raise NotSupported(f"{self.name} has no documented order history", provider=self.name)

    def quote_wire(self, *, energy: int, duration: str) -> Wire:
        path, query = self.quote_query(energy=energy, duration=duration)
        return Wire("GET", path, "estimate", tuple(query))

    def unwrap(self, http_status: int, body: bytes, endpoint: str) -> Any:
        """The ``data`` of a success, or the `Refusal` the reply amounts to.

        Called for every reply that is neither a redirect, a 429 nor a 5xx. The default is the
        ``{code, msg, sub_code, sub_msg, data}`` envelope, ``code == 0`` meaning success.
        """
        try:
            envelope = decode_envelope(body)
        except BadResponse:
            if http_status < 400:
                raise
            return self.refusal_without_body(http_status, endpoint)
        if envelope.code != 0 or http_status >= 400:
            message = envelope.message
            error = self.error_class(http_status, message, endpoint)
            return Refusal(
                error,
                f"{self.name} refused the request",
                envelope.code,
                message,
                about_clock=error is AuthenticationError and envelope.says_clock,
            )
        return envelope.data

    def json_object(self, http_status: int, body: bytes, endpoint: str) -> dict[str, Any] | Refusal:
        """A reply's JSON object, for adapters whose replies are plain objects (no envelope);
        an error reply that does not decode is the `Refusal` its status amounts to."""
        try:
            reply = decode_json(body)
        except BadResponse:
            if http_status < 400:
                raise
            return self.refusal_without_body(http_status, endpoint)
        if not isinstance(reply, dict):
            raise BadResponse("response is JSON but not an object")
        return reply

    def refusal_without_body(
        self, http_status: int, endpoint: str, expected: str = "a JSON body"
    ) -> Refusal:
        """An error status whose body says nothing readable: refused by its status alone."""
        error = self.error_class(http_status, None, endpoint)
        return Refusal(error, f"HTTP {http_status} without {expected}")

    @abc.abstractmethod
    def parse_order(self, data: Any, request: OrderRequest | None = None) -> Order:
        """``data`` of a create or detail response; ``request`` fills what the reply omits."""

    @abc.abstractmethod
    def parse_account(self, data: Any) -> Account: ...

    def quote_query(self, *, energy: int, duration: str) -> tuple[str, list[tuple[str, str]]]:
        """Path and query of a price estimate, or `NotSupported` with the reason."""
        if self.estimate_path is None:
            raise NotSupported(f"{self.name}: {self.no_estimate_reason}", provider=self.name)
        wire = self.wire_duration(duration)
        return self.estimate_path, [(self.energy_param, str(energy)), (self.duration_param, wire)]

    def parse_quote(self, data: Any, *, energy: int, duration: str) -> Quote:
        # ``data`` is a bare integer, the price in sun (CatFee's estimate, providers.md 1.5).
        cost = convert(data, int, f"{self.name} estimate")
        return Quote(
            provider=self.name, energy=energy, transfers=None, duration=duration, cost_sun=cost
        )

    # --- errors ---------------------------------------------------------------------------

    def error_class(
        self, http_status: int, message: str | None, endpoint: str
    ) -> type[ProviderError]:
        """The error for a refusal (``code != 0`` or a 4xx), by message first, then by status."""
        words = (message or "").lower()
        for needles, error in _MESSAGE_ERRORS:
            if any(needle in words for needle in needles):
                return error
        if "not found" in words or "not exist" in words:
            return OrderNotFound if endpoint == "get" else RequestRejected
        if http_status in (401, 403):
            return AuthenticationError
        if http_status == 404 and endpoint == "get":
            return OrderNotFound
        if http_status in (400, 422) or any(word in words for word in _REJECTION_WORDS):
            return RequestRejected
        return ProviderError

    def account_raw(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The account fields worth keeping: never the key and secret the provider echoes."""
        return {key: value for key, value in data.items() if key not in _SECRET_FIELDS}


def new_client_order_id() -> str:
    return f"ea-{uuid.uuid4().hex}"


def _check_int(name: str, value: object, low: int, high: int, provider: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidOrder(f"{name} must be an int, not {type(value).__name__}", provider=provider)
    if not low <= value <= high:
        raise InvalidOrder(
            f"{name} must be between {low:,} and {high:,}, got {value:,}", provider=provider
        )


def duration_from_minutes(minutes: int | None) -> str | None:
    """CatFee reports ``duration`` in minutes (60 for ``1h``)."""
    if minutes is None:
        return None
    if minutes and minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


_ORDER_STATUSES = {member.value: member for member in OrderStatus}
_CONFIRM_STATUSES = {member.value: member for member in ConfirmStatus}
_ACTIVATE_STATUSES = {member.value: member for member in ActivateStatus}


def statuses(
    status: str | None, confirm_status: str | None, activate_status: str | None
) -> tuple[OrderStatus, ConfirmStatus, ActivateStatus]:
    """The three status strings as enums; a value added tomorrow reads as UNKNOWN.

    The same rule as ``OrderStatus.parse``, by table lookup: it runs for every order read.
    """
    return (
        _ORDER_STATUSES.get(status or "", OrderStatus.UNKNOWN),
        _CONFIRM_STATUSES.get(confirm_status or "", ConfirmStatus.UNKNOWN),
        _ACTIVATE_STATUSES.get(activate_status or "", ActivateStatus.UNKNOWN),
    )


def ms_or_none(value: int | None) -> int | None:
    """Mefree sends ``0`` for a time it has not set yet (providers.md 2.4)."""
    return value or None

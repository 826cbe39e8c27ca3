"""Read the chain through TronGrid, so a delivery can be proven rather than taken on trust.

Three questions, each answered with typed results and only typed errors:

- `Verifier.snapshot`: an address's energy now (``/wallet/getaccountresource``);
- `Verifier.delegation`: what a delegation tx says and how final it is;
- `Verifier.delegated_resource`: the sun one account delegates to another right now.

Every call is a read, so every failure worth another try (throttling, 5xx, a busy node, a
network fault) is retried with jittered backoff; nothing can be bought twice from here.
"""

from __future__ import annotations

import email.utils
import logging
import os
import time
from typing import Annotated, Any, Final, NoReturn, Protocol, Self, TypeVar

import aiohttp
import anyio
import msgspec
from anyio.abc import AsyncResource

from energy_async import _http, authenticity
from energy_async.address import to_base58, validate_address
from energy_async.energy import (
    EnergyTotals,
    TotalsWindow,
    delivery_tolerance,
    energy_for_sun,
    sun_for_energy,
)
from energy_async.errors import (
    BadResponse,
    ConfigurationError,
    EnergyError,
    InputError,
    InvalidAddress,
    NetworkError,
    NodeError,
    RateLimited,
    ServiceUnavailable,
)
from energy_async.models import ChainHead, DelegatedResource, DelegationTx, ResourceSnapshot
from energy_async.slots import SlotClock

__all__ = [
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "DEFAULT_BASE_URL",
    "Verifier",
    "delivery_tolerance",
    "energy_for_sun",
    "sun_for_energy",
]

logger = logging.getLogger("energy_async.verifier")

DEFAULT_BASE_URL: Final = "https://api.trongrid.io"
API_KEY_ENV: Final = "TRONGRID_API_KEY"
API_KEY_HEADER: Final = "TRON-PRO-API-KEY"
RATE_WITH_KEY: Final = 15.0  # TronGrid's documented per-key QPS (older page; newer says 20)
RATE_WITHOUT_KEY: Final = 3.0  # keyless limits are dynamic and end in a 30 s block: stay low
RATE_LOOPBACK: Final = _http.LOOPBACK_RATE  # a node of your own (or the sandbox): no quota

_THROTTLE_STATUSES = frozenset({403, 429, 503})
_BUSY_MARKER = "lack of computing resources"
# TronGrid's throttle texts (tron.md §3); a body carrying one is throttling whatever the status.
_THROTTLE_MARKERS = ("exceeds the frequency limit", "Exceed the user daily usage")
_DELEGATE_TYPES = frozenset({"DelegateResourceContract", "UnDelegateResourceContract"})
_HEX_DIGITS = frozenset("0123456789abcdef")
_SHOWN_CHARS = 200

# --- wire shapes: java-tron omits zero fields, so every field has a default ------------------

Amount = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # a Java long, never negative here
Total = Annotated[int, msgspec.Meta(gt=0, le=2**63 - 1)]  # network totals are never zero


class _AccountResource(msgspec.Struct, rename="pascal"):
    energy_limit: Amount = 0
    energy_used: Amount = 0
    total_energy_limit: Total | None = None
    total_energy_weight: Total | None = None
    error: str | None = None


class _DelegateValue(msgspec.Struct):
    owner_address: str | None = None
    receiver_address: str | None = None
    resource: str = "BANDWIDTH"  # ResourceCode 0 is omitted
    balance: Amount = 0
    lock: bool = False
    lock_period: Amount = 0


class _Parameter(msgspec.Struct):
    value: msgspec.Raw = msgspec.Raw(b"{}")  # decoded only for delegation contracts


class _Contract(msgspec.Struct):
    type: str | None = None
    parameter: _Parameter = msgspec.field(default_factory=_Parameter)
    permission_id: int = msgspec.field(name="Permission_id", default=0)


class _RawData(msgspec.Struct):
    contract: list[_Contract] = []


class _Ret(msgspec.Struct, rename="camel"):
    contract_ret: str | None = None


class _Transaction(msgspec.Struct, rename={"tx_id": "txID", "error": "Error"}):
    tx_id: str | None = None
    raw_data: _RawData = msgspec.field(default_factory=_RawData)
    raw_data_hex: str | None = None
    signature: list[str] = []
    ret: list[_Ret] = []
    error: str | None = None


class _BlockRaw(msgspec.Struct):
    number: Amount = 0
    timestamp: Amount = 0


class _BlockHeader(msgspec.Struct):
    raw_data: _BlockRaw = msgspec.field(default_factory=_BlockRaw)


class _Block(msgspec.Struct, rename={"error": "Error"}):
    block_header: _BlockHeader | None = None  # the txs of a full block are never decoded
    error: str | None = None


class _TransactionInfo(
    msgspec.Struct,
    rename={
        "block_number": "blockNumber",
        "block_time_ms": "blockTimeStamp",
        "fail_message": "resMessage",
        "error": "Error",
    },
):
    id: str | None = None
    block_number: Amount | None = None
    block_time_ms: Amount | None = None
    result: str | None = None  # absent on success, "FAILED" otherwise
    fail_message: str | None = None
    error: str | None = None


class _DelegatedRecord(msgspec.Struct, rename={"from_address": "from", "to_address": "to"}):
    from_address: str | None = None
    to_address: str | None = None
    frozen_balance_for_bandwidth: Amount = 0
    frozen_balance_for_energy: Amount = 0
    expire_time_for_energy: Amount = 0


class _DelegatedResources(
    msgspec.Struct, rename={"records": "delegatedResource", "error": "Error"}
):
    records: list[_DelegatedRecord] = []
    error: str | None = None


class _ErrorOnly(msgspec.Struct, rename="pascal"):
    error: Any = None


_T = TypeVar("_T")


class NodeReply(Protocol):
    """A decoded java-tron body: whatever it holds, a node error arrives as ``Error``."""

    error: str | None


_Reply = TypeVar("_Reply", bound=NodeReply)

_ACCOUNT_RESOURCE = msgspec.json.Decoder(_AccountResource)
_TRANSACTION = msgspec.json.Decoder(_Transaction)
_TRANSACTION_INFO = msgspec.json.Decoder(_TransactionInfo)
_DELEGATED_RESOURCES = msgspec.json.Decoder(_DelegatedResources)
_BLOCK = msgspec.json.Decoder(_Block)
_DELEGATE_VALUE = msgspec.json.Decoder(_DelegateValue)
_ERROR_ONLY = msgspec.json.Decoder(_ErrorOnly)
_ANY_JSON = msgspec.json.Decoder()
_ENCODER = msgspec.json.Encoder()


def _shared_limiter(base_url: str, api_key: str | None, rate: float) -> _http.RateLimiter:
    """TronGrid limits per key: every Verifier sharing a key shares its budget."""
    return _http.shared_limiter("trongrid", base_url, api_key, rate)


def _default_rate(base_url: str, has_key: bool) -> float:
    return _http.default_rate(base_url, RATE_WITH_KEY if has_key else RATE_WITHOUT_KEY)


# How long an order waits for another order's totals read before making its own: about a few
# TronGrid round trips; a read that takes longer (throttled, retried) is not worth sharing.
_SHARED_READ_WAIT = 1.0


class Verifier(AsyncResource):
    """A TronGrid client for delivery checks; use it as ``async with Verifier() as verifier``.

    ``api_key`` defaults to the ``TRONGRID_API_KEY`` environment variable (pass ``""`` to send
    none). ``rate_limit`` is requests per second, shared by every Verifier with the same base
    URL, key and rate (default: 15 with a key, 3 without, no limit for a loopback node); it
    backs off on throttling and grows back to that ceiling (`_http.Aimd`). A ``session`` you
    pass is used as is and never closed here. ``totals`` holds the network's energy totals
    learned by every snapshot, so delegations are priced without a read of their own
    (:class:`~energy_async.energy.TotalsWindow`); pass one to share it.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        rate_limit: float | None = None,
        retry: _http.RetryPolicy | None = None,
        connect_timeout: float = _http.DEFAULT_CONNECT_TIMEOUT,
        total_timeout: float = _http.DEFAULT_TOTAL_TIMEOUT,
        max_connections: int = 100,
        session: aiohttp.ClientSession | None = None,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        totals: TotalsWindow | None = None,
    ) -> None:
        if connect_timeout <= 0 or total_timeout <= 0:
            raise ConfigurationError("timeouts must be positive")
        if max_connections < 1:
            raise ConfigurationError("max_connections must be at least 1")
        self.base_url = str(_http.check_base_url(base_url, what="TronGrid base_url"))
        key = os.environ.get(API_KEY_ENV) if api_key is None else api_key
        self._has_key = bool(key)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            self._headers[API_KEY_HEADER] = key
        rate = rate_limit if rate_limit is not None else _default_rate(self.base_url, bool(key))
        self._limiter = _shared_limiter(self.base_url, key or None, rate)
        self._retry = retry or _http.RetryPolicy()
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._max_connections = max_connections
        self._trace_configs = trace_configs
        self._user_session = session
        self._own_session: aiohttp.ClientSession | None = None
        self._closed = False
        self._calls = 0
        self.totals = totals if totals is not None else TotalsWindow()
        self._totals_read: anyio.Event | None = None  # a read `priced_after` may share
        self._snapshots_in_flight = 0
        self.slots = SlotClock()
        self._date: tuple[str, int | None] = ("", None)  # the last Date header, parsed

    def __repr__(self) -> str:
        key = "set" if self._has_key else "none"
        return f"Verifier(base_url={self.base_url!r}, api_key=<{key}>)"

    @property
    def snapshots_in_flight(self) -> int:
        """``getaccountresource`` reads under way: each will teach ``totals`` when answered."""
        return self._snapshots_in_flight

    @property
    def calls(self) -> int:
        """HTTP attempts made by this verifier so far (retries included)."""
        return self._calls

    async def __aenter__(self) -> Self:
        self._session()
        return self

    async def aclose(self) -> None:
        """Close the session this verifier opened (never one that was passed in)."""
        self._closed = True
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None

    # --- queries ------------------------------------------------------------------------------

    async def snapshot(
        self, address: str, *, meter: _http.CallMeter | None = None
    ) -> ResourceSnapshot:
        """The address's energy now; ``exists=False`` for an unknown or unactivated account.

        ``node_time_ms`` is the node's clock from its ``Date`` header (whole seconds; None
        if it sent none). The network totals it carries are kept in ``totals``.
        """
        address = validate_address(address)
        path = "/wallet/getaccountresource"
        self._snapshots_in_flight += 1
        try:
            reply, content, date = await self._post(
                path, {"address": address, "visible": True}, _ACCOUNT_RESOURCE, meter
            )
        finally:
            self._snapshots_in_flight -= 1
        snapshot = _snapshot_from(address, reply, content, path, _node_time_ms(date))
        if snapshot.exists and snapshot.node_time_ms is not None:
            self.totals.learn(
                EnergyTotals(
                    total_energy_limit=snapshot.total_energy_limit,
                    total_energy_weight=snapshot.total_energy_weight,
                    node_time_ms=snapshot.node_time_ms,
                )
            )
        return snapshot

    async def priced_after(
        self, block_time_ms: int, address: str, *, meter: _http.CallMeter | None = None
    ) -> tuple[EnergyTotals | None, ResourceSnapshot | None]:
        """Network totals read after a block stamped ``block_time_ms``, one read shared by
        every order that asks while it is in flight.

        Known totals that qualify cost nothing. Otherwise a read already in flight is awaited
        (its totals qualify when the node's clock had passed the block), and only then is
        ``address`` read here: that snapshot is returned too, and every order asking
        meanwhile shares its totals. (None, snapshot): the node's clock was still behind the
        block, so only the snapshot, read after the tx was seen in it, can price.
        """
        known = self.totals.since(block_time_ms)
        if known is not None:
            return known, None
        pending = self._totals_read
        if pending is not None:
            with anyio.move_on_after(_SHARED_READ_WAIT):  # a stuck read is not waited out
                await pending.wait()
            known = self.totals.since(block_time_ms)
            if known is not None:
                return known, None
        done = self._totals_read = anyio.Event()
        try:
            snapshot = await self.snapshot(address, meter=meter)
        finally:
            if self._totals_read is done:
                self._totals_read = None
            done.set()
        return self.totals.since(block_time_ms), snapshot

    async def head(self, *, meter: _http.CallMeter | None = None) -> ChainHead:
        """The node's head block (number and timestamp): what "after the order" is measured by.

        ``/wallet/getnowblock`` serves the whole block; only its header is decoded.
        """
        path = "/wallet/getnowblock"
        reply, _, _ = await self._post(path, {"visible": True}, _BLOCK, meter)
        if reply.block_header is None or not reply.block_header.raw_data.number:
            raise BadResponse("getnowblock answer has no block_header", path=path)
        raw = reply.block_header.raw_data
        self.slots.saw_block(raw.timestamp)
        return ChainHead(number=raw.number, timestamp_ms=raw.timestamp, taken_at=time.time())

    async def delegation(
        self, txid: str, *, check_solid: bool = True, meter: _http.CallMeter | None = None
    ) -> DelegationTx:
        """What the chain says about a delegation tx, how final it is, and if it is authentic.

        ``found=False`` is never final: a node behind TronGrid's load balancer may lag, so poll.
        Nor is a *half-found* tx (``DelegationTx.half_found``: its info shows a block, its body
        is ``{}``): java-tron serves a body only once the tx is in a block, and the two reads go
        to nodes that may be a block apart. Costs two calls side by side (one round trip),
        plus one to ``/walletsolidity/`` once the tx is in a block (unless ``check_solid`` is
        false).

        Side by side, a block can land between the two answers and leave info without body:
        that is a half-found tx, which the caller reads again; it never costs a verdict.
        """
        txid = _check_txid(txid)
        payload = {"value": txid, "visible": True}
        info_path = "/wallet/gettransactioninfobyid"
        replies: dict[str, Any] = {}

        async def read(path: str, decoder: msgspec.json.Decoder[Any]) -> None:
            replies[path], _, _ = await self._post(path, payload, decoder, meter)

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(read, info_path, _TRANSACTION_INFO)
                group.start_soon(read, "/wallet/gettransactionbyid", _TRANSACTION)
        except BaseExceptionGroup as group_error:
            error = _first_typed(group_error)
            raise error from error.__cause__
        info: _TransactionInfo = replies[info_path]
        tx: _Transaction = replies["/wallet/gettransactionbyid"]
        solid = False
        if check_solid and info.block_number is not None:
            solid_path = "/walletsolidity/gettransactioninfobyid"
            solid_info, _, _ = await self._post(solid_path, payload, _TRANSACTION_INFO, meter)
            solid = solid_info.block_number is not None
        found = _delegation_from(txid, tx, info, solid)
        if found.block_time_ms is not None:
            self.slots.saw_block(found.block_time_ms)
        if found.contract_type not in _DELEGATE_TYPES:
            return found
        checked = authenticity.check(_claimed(txid, tx, found))
        return msgspec.structs.replace(
            found, authentic=checked.authentic, authenticity=checked.reason
        )

    async def delegated_resource(
        self, from_address: str, to_address: str, *, meter: _http.CallMeter | None = None
    ) -> DelegatedResource:
        """Sun ``from_address`` delegates to ``to_address`` now, locked and unlocked summed."""
        from_address = validate_address(from_address)
        to_address = validate_address(to_address)
        path = "/wallet/getdelegatedresourcev2"
        payload = {"fromAddress": from_address, "toAddress": to_address, "visible": True}
        reply, _, _ = await self._post(path, payload, _DELEGATED_RESOURCES, meter)
        return _delegated_from(from_address, to_address, reply, path)

    async def read(
        self,
        path: str,
        payload: dict[str, Any],
        decoder: msgspec.json.Decoder[_Reply],
        *,
        meter: _http.CallMeter | None = None,
    ) -> _Reply:
        """Any other TronGrid read (readiness uses it), with the same retries and typed errors."""
        reply, _, _ = await self._post(path, payload, decoder, meter)
        return reply

    # --- transport ----------------------------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError("this Verifier is closed")
        if self._user_session is not None:
            if self._user_session.closed:
                raise ConfigurationError("the aiohttp session given to Verifier is closed")
            return self._user_session
        if self._own_session is None:
            self._own_session = _http.new_client_session(
                connect_timeout=self._timeout.sock_connect or _http.DEFAULT_CONNECT_TIMEOUT,
                total_timeout=self._timeout.total or _http.DEFAULT_TOTAL_TIMEOUT,
                max_connections=self._max_connections,
                max_connections_per_host=self._max_connections,
                trace_configs=self._trace_configs,
            )
        return self._own_session

    async def _post(
        self,
        path: str,
        payload: dict[str, Any],
        decoder: msgspec.json.Decoder[_Reply],
        meter: _http.CallMeter | None,
    ) -> tuple[_Reply, bytes, str | None]:
        """POST with retries; the decoded reply, its raw body and its ``Date`` header."""
        body = _ENCODER.encode(payload)

        async def attempt(_: int) -> tuple[_Reply, bytes, str | None]:
            status, retry_after, content, date = await self._send(path, body, meter)
            self._heard_clock(date)
            return _interpret(path, status, content, retry_after, decoder), content, date

        def on_retry(step: _http.Step, attempt: int, wait: float) -> None:
            logger.debug(
                "TronGrid %s: %s; attempt %d of %d, retrying in %.2fs",
                path,
                type(step.error).__name__,
                attempt,
                self._retry.max_attempts,
                wait,
            )

        return await _http.retry_loop(
            self._retry, attempt, _classify, _raise, on_retry, limiter=self._limiter
        )

    def _heard_clock(self, date: str | None) -> None:
        """Every answer's ``Date`` teaches `slots` whether the node's clock runs with ours
        (parsed once per second: the header changes no more often)."""
        if not date:
            return
        if date != self._date[0]:
            self._date = (date, _node_time_ms(date))
        node_ms = self._date[1]
        if node_ms is not None:
            self.slots.saw_node_clock(node_ms, time.time() * 1000)

    async def _send(
        self, path: str, body: bytes, meter: _http.CallMeter | None
    ) -> tuple[int, float | None, bytes, str | None]:
        """One attempt: status, Retry-After, the capped body and the ``Date`` header;
        transport faults typed."""
        session = self._session()
        await self._limiter.acquire()
        self._calls += 1
        if meter is not None:
            meter.calls += 1
        try:
            async with session.post(
                self.base_url + path,
                data=body,
                headers=self._headers,
                allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                headers = response.headers
                retry_after = _http.parse_retry_after(headers.get("Retry-After"))
                content = await _http.read_capped(response)
                return response.status, retry_after, content, headers.get("Date")
        except BadResponse as error:
            error.path = path
            raise
        except (aiohttp.ClientError, TimeoutError) as error:
            kind = "timed out" if isinstance(error, TimeoutError) else type(error).__name__
            cause = _http.safe_cause(error)  # aiohttp's error holds every header sent
        # Raised outside the handler, so not even __context__ keeps aiohttp's error.
        raise NetworkError(f"TronGrid request failed: {kind}", path=path) from cause


def _first_typed(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """One typed error out of side-by-side reads (callers catch EnergyError, not groups)."""
    typed, _ = group.split(EnergyError)
    if typed is None:
        return group
    first: BaseException = typed
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first


def _classify(error: Exception, attempt: int) -> _http.Step | None:
    """Typed errors count their attempts; the retryable ones are worth another."""
    if not isinstance(error, EnergyError):
        return None
    error.attempts = attempt
    retry_after = error.retry_after if isinstance(error, RateLimited) else None
    return _http.Step(error, again=error.retryable, retry_after=retry_after)


def _raise(error: BaseException) -> NoReturn:
    raise error


# --- pure interpretation of one response (kept apart so tests can feed it any bytes) ---------


def _interpret(
    path: str,
    status: int,
    content: bytes,
    retry_after: float | None,
    decoder: msgspec.json.Decoder[_Reply],
) -> _Reply:
    """Map one HTTP answer to a decoded reply or the typed error it amounts to."""
    if status in _THROTTLE_STATUSES:
        raise RateLimited(
            f"TronGrid throttled the request (HTTP {status})",
            retry_after=retry_after,
            http_status=status,
            provider_message=_error_text(content),
            path=path,
        )
    if status >= 500:
        raise ServiceUnavailable(f"TronGrid answered HTTP {status}", http_status=status, path=path)
    if status != 200:
        message = _error_text(content)
        if message is not None:  # a disabled API: 404 {"Error": "this API is unavailable ..."}
            raise _node_error(message, path, http_status=status)
        raise BadResponse(f"TronGrid answered HTTP {status}", http_status=status, path=path)
    reply = _decode(decoder, content, path)
    if reply.error is not None:
        raise _node_error(reply.error, path, http_status=status)
    return reply


def _decode(decoder: msgspec.json.Decoder[_T], content: bytes, path: str) -> _T:
    try:
        return decoder.decode(content)
    except _http.DECODE_ERRORS as error:
        problem = _shown(str(error))
    # Raised outside the handler: the decode error (a UnicodeDecodeError holds the whole
    # body) is neither the cause nor the hidden context of what callers see.
    raise BadResponse(
        f"TronGrid body is not the documented JSON: {problem}", http_status=200, path=path
    )


def _node_error(message: str, path: str, *, http_status: int) -> NodeError | RateLimited:
    if any(marker in message for marker in _THROTTLE_MARKERS):
        return RateLimited(
            "TronGrid throttled the request",
            http_status=http_status,
            provider_message=_shown(message),
            path=path,
        )
    busy = _BUSY_MARKER in message
    return NodeError(
        "TronGrid node is busy" if busy else "TronGrid node answered an error",
        retryable=busy,
        http_status=http_status,
        provider_message=_shown(message),
        path=path,
    )


def _error_text(content: bytes) -> str | None:
    """The ``Error`` text of a body, if it is a JSON object that has one."""
    try:
        error = _ERROR_ONLY.decode(content).error
    except _http.DECODE_ERRORS:
        return None
    return None if error is None else _shown(str(error))


def _node_time_ms(date: str | None) -> int | None:
    """The node's clock from an HTTP ``Date`` header (RFC 9110: whole seconds, GMT)."""
    if not date:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000": no zone given, so no moment to trust
        return None
    return int(moment.timestamp()) * 1000


def _snapshot_from(
    address: str,
    reply: _AccountResource,
    content: bytes,
    path: str,
    node_time_ms: int | None = None,
) -> ResourceSnapshot:
    taken_at = time.time()
    if reply.total_energy_limit is None or reply.total_energy_weight is None:
        # Totals are network-wide and never zero, so only `{}` (unknown or unactivated
        # account) lacks them; any other body without them is not java-tron's.
        if _decode(_ANY_JSON, content, path) == {}:
            return ResourceSnapshot(
                address=address, exists=False, taken_at=taken_at, node_time_ms=node_time_ms
            )
        raise BadResponse(
            "getaccountresource answer lacks TotalEnergyLimit/TotalEnergyWeight",
            http_status=200,
            path=path,
        )
    return ResourceSnapshot(
        address=address,
        exists=True,
        energy_limit=reply.energy_limit,
        energy_used=reply.energy_used,
        total_energy_limit=reply.total_energy_limit,
        total_energy_weight=reply.total_energy_weight,
        taken_at=taken_at,
        node_time_ms=node_time_ms,
    )


def _delegation_from(
    txid: str, tx: _Transaction, info: _TransactionInfo, solid: bool
) -> DelegationTx:
    path = "/wallet/gettransactionbyid"
    for seen in (tx.tx_id, info.id):
        if seen is not None and seen.lower() != txid:
            raise BadResponse(f"TronGrid answered for another tx: {_shown(seen)}", path=path)
    contract = tx.raw_data.contract[0] if tx.raw_data.contract else None
    contract_type = contract.type if contract else None
    value = (
        _decode(_DELEGATE_VALUE, contract.parameter.value, path)
        if contract is not None and contract_type in _DELEGATE_TYPES
        else None
    )
    contract_ret = tx.ret[0].contract_ret if tx.ret else None
    bad_ret = contract_ret not in (None, "SUCCESS")
    failed = info.result == "FAILED" or bad_ret
    fail_message = info.fail_message or (f"contractRet {contract_ret}" if bad_ret else None)
    return DelegationTx(
        txid=txid,
        found=tx.tx_id is not None or info.block_number is not None,
        contract_type=contract_type,
        owner=_node_address(value.owner_address, path) if value else None,
        receiver=_node_address(value.receiver_address, path) if value else None,
        resource=value.resource if value else None,
        balance_sun=value.balance if value else 0,
        lock=value.lock if value else False,
        lock_period=value.lock_period if value else 0,
        contract_ret=contract_ret,
        in_block=info.block_number is not None,
        block_number=info.block_number,
        block_time_ms=info.block_time_ms,
        solid=solid,
        failed=failed,
        fail_message=_shown(fail_message) if fail_message else None,
    )


def _claimed(txid: str, tx: _Transaction, found: DelegationTx) -> authenticity.Claimed:
    return authenticity.Claimed(
        txid=txid,
        tx_id=tx.tx_id,
        raw_data_hex=tx.raw_data_hex,
        signatures=tuple(tx.signature),
        contract_type=found.contract_type,
        owner=found.owner,
        receiver=found.receiver,
        resource=found.resource,
        balance=found.balance_sun,
        lock=found.lock,
        lock_period=found.lock_period,
    )


def _delegated_from(
    from_address: str, to_address: str, reply: _DelegatedResources, path: str
) -> DelegatedResource:
    for record in reply.records:
        pair = (
            _node_address(record.from_address, path) or from_address,
            _node_address(record.to_address, path) or to_address,
        )
        if pair != (from_address, to_address):
            raise BadResponse("getdelegatedresourcev2 answered for another pair", path=path)
    expiries = [r.expire_time_for_energy for r in reply.records if r.expire_time_for_energy]
    return DelegatedResource(
        from_address=from_address,
        to_address=to_address,
        energy_sun=sum(r.frozen_balance_for_energy for r in reply.records),
        bandwidth_sun=sum(r.frozen_balance_for_bandwidth for r in reply.records),
        records=len(reply.records),
        energy_expires_at_ms=max(expiries, default=None),
    )


def _node_address(value: str | None, path: str) -> str | None:
    """An address from the node, as base58 (nodes that ignore ``visible`` answer 41-hex)."""
    if value is None:
        return None
    try:
        return to_base58(value)
    except InvalidAddress:
        raise BadResponse(
            f"TronGrid returned a malformed address: {_shown(value)}", path=path
        ) from None


def _check_txid(txid: object) -> str:
    if not isinstance(txid, str) or len(txid) != 64 or not set(txid.lower()) <= _HEX_DIGITS:
        shown = _shown(txid) if isinstance(txid, str) else type(txid).__name__
        raise InputError(f"txid must be 64 hex characters, got {shown}")
    return txid.lower()


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "..."

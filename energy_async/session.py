"""The signed, retrying, never-buy-twice session with one energy provider.

Every request is built once (path and query), signed on exactly those bytes with a fresh
timestamp per attempt, and sent unchanged. Reads retry what is worth retrying. A create is
replayed only with the ``client_order_id`` fixed before its first attempt, which both providers
answer with the earlier order instead of a second purchase; when no attempt settles it the
caller gets `OutcomeUnknown` with that id, never a silent second order.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, NoReturn, Self, TypeVar

import aiohttp
import msgspec
from anyio.abc import AsyncResource
from yarl import URL

from energy_async._http import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_TOTAL_TIMEOUT,
    CallMeter,
    RateLimiter,
    RetryPolicy,
    Step,
    default_rate,
    new_client_session,
    parse_retry_after,
    read_capped,
    retry_loop,
    safe_cause,
    shared_limiter,
)
from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    ConfigurationError,
    DuplicateOrder,
    EnergyError,
    ErrorContext,
    InvalidOrder,
    NetworkError,
    NotSupported,
    OrderNotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    ServiceUnavailable,
)
from energy_async.models import Account, Order, OrderRequest, Quote
from energy_async.providers._base import Idempotency, Provider, Refusal, Wire
from energy_async.reconcile import (
    QUIET_S,
    Decision,
    Finding,
    decide,
    echoed_address,
    history_covers,
)

__all__ = ["DEFAULT_RATE_LIMIT", "REPLAY_MISMATCH", "ProviderSession", "RetryPolicy"]

log = logging.getLogger("energy_async.session")

# ``DuplicateOrder.code`` when a replay returned an order for another request: the id belongs
# to that order, so this create bought nothing (unlike a provider's own "duplicate" refusal,
# which says an order exists for this id: possibly ours).
REPLAY_MISMATCH = "REPLAY_MISMATCH"

# Neither provider publishes a number ("429 ... count all instances together"); 10 requests a
# second per key is far above what one buyer needs and far below what would look like abuse.
# A loopback base URL (the sandbox) has no such quota.
DEFAULT_RATE_LIMIT = 10.0

# The connection failed before a byte of the request left: nothing can have been bought.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# The request may have reached the provider and taken effect before the answer was lost.
_MAYBE_SENT = (aiohttp.ClientError, TimeoutError)

T = TypeVar("T")

# Pages of order history read to reconcile one create (TronSave: 50 orders a page): an intent
# older than this many orders cannot be placed in the history, and stays UNKNOWN.
_MAX_HISTORY_PAGES = 20


def _shared_limiter(provider: Provider) -> RateLimiter:
    """One limiter per provider, URL and API key for the whole process."""
    rate = default_rate(provider.base_url, DEFAULT_RATE_LIMIT)
    return shared_limiter(provider.name, provider.base_url, provider.api_key, rate)


class _ServerClock:
    """Our estimate of the provider's clock, from the ``Date`` header of its responses.

    Providers reject timestamps more than 5 s off theirs. ``Date`` has 1 s resolution, so an
    offset is applied only when it is clearly more than that.
    """

    __slots__ = ("_date", "_date_ts", "offset")

    def __init__(self) -> None:
        self.offset = 0.0
        self._date: str | None = None
        self._date_ts = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def observe(self, date: str | None, received_at: float) -> None:
        if date is None:
            return
        if date != self._date:  # parse once per second of server time, not per response
            try:
                moment = parsedate_to_datetime(date)
            except (TypeError, ValueError, IndexError):
                return
            if moment.tzinfo is None:
                return
            self._date, self._date_ts = date, moment.timestamp()
        # The server read its clock somewhere in [Date, Date + 1 s).
        estimate = self._date_ts + 0.5 - received_at
        self.offset = estimate if abs(estimate) > 1.0 else 0.0


class _Sent(NamedTuple):
    """When a create may first have left: on the provider's clock (this session measured its
    offset when sending), or on ours (a journal's wall time, shifted when reconciled)."""

    at: float
    on_provider_clock: bool


class _Call(NamedTuple):
    """One logical request: built and signed on these exact bytes, however many attempts."""

    method: str
    signed_path: str
    url: URL
    endpoint: str
    body: bytes | None = None


class _Attempts:
    """What the attempts at one request have shown so far."""

    __slots__ = ("maybe_sent", "resynced")

    def __init__(self) -> None:
        self.resynced = False  # the clock was corrected after a refused timestamp
        self.maybe_sent = False  # an attempt may have reached the provider and taken effect


class ProviderSession(AsyncResource):
    """An async session with one provider: ``async with ProviderSession(CatFee(...)) as s:``.

    Owns one pooled aiohttp session unless you pass ``session=`` (which it never closes). All
    sessions of a process that use the same provider and key share one rate limiter, unless
    ``limiter=`` says otherwise. A closed session cannot be reopened. ``reconcile_quiet``: how
    long after a create with no idempotency key an empty order history starts to prove that
    nothing was bought (`energy_async.reconcile.QUIET_S`; a simulated provider that lists an
    order as it accepts it may be given less).
    """

    def __init__(
        self,
        provider: Provider,
        *,
        retry: RetryPolicy | None = None,
        limiter: RateLimiter | None = None,
        session: aiohttp.ClientSession | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        max_connections: int = 100,
        trace_configs: list[aiohttp.TraceConfig] | None = None,
        reconcile_quiet: float = QUIET_S,
    ) -> None:
        if not isinstance(provider, Provider):
            raise ConfigurationError(
                "provider must be a Provider such as CatFee(...) or Mefree(...)"
            )
        if session is not None and trace_configs:
            raise ConfigurationError(
                "trace_configs apply to a session we create; set them on yours"
            )
        if min(connect_timeout, total_timeout) <= 0:
            raise ConfigurationError("timeouts must be positive (seconds)")
        if not reconcile_quiet >= 0:
            raise ConfigurationError("reconcile_quiet must be zero or more seconds")
        self._reconcile_quiet = reconcile_quiet
        self._provider = provider
        self._retry = retry or RetryPolicy()
        self._limiter = limiter or _shared_limiter(provider)
        self._client = session
        self._owns_client = session is None
        self._new_client = functools.partial(
            new_client_session,
            connect_timeout=connect_timeout,
            total_timeout=total_timeout,
            max_connections=max_connections,
            trace_configs=trace_configs,
        )
        self._closed = False
        # NONE capability: when each create may first have been sent, and which intent each
        # order already belongs to (so reconciliation never adopts it twice).
        self._sent_once: dict[str, _Sent] = {}
        self._claimed: dict[str, str] = {}
        # ``await chain_probe(receiver)`` is True when the chain shows no delegation to it:
        # the second witness reconciliation needs before it may send a create again.
        self.chain_probe: Callable[[str], Awaitable[bool]] | None = None
        self._clock = _ServerClock()
        base = URL(provider.base_url)
        self._origin = str(base.origin())
        self._base_path = base.raw_path.rstrip("/")

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<ProviderSession {self._provider!r} {state}>"

    @property
    def provider(self) -> Provider:
        return self._provider

    @property
    def clock_offset(self) -> float:
        """Seconds added to our clock to match the provider's (0 when within 1 s)."""
        return self._clock.offset

    @property
    def closed(self) -> bool:
        return self._closed

    async def __aenter__(self) -> Self:
        self._http()
        return self

    async def aclose(self) -> None:
        """Close the connection pool we own; a session passed in is left to its owner."""
        self._closed = True
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ConfigurationError("this ProviderSession is closed; create a new one")
        if self._client is None:
            self._client = self._new_client()
        return self._client

    # --- the public calls ---------------------------------------------------------------------

    def prepare(
        self,
        *,
        target: str,
        energy: int | None = None,
        transfers: int | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
    ) -> OrderRequest:
        """Validate an order and fix its ``client_order_id``; nothing is sent."""
        return self._provider.order_request(
            target=target,
            energy=energy,
            transfers=transfers,
            duration=duration,
            client_order_id=client_order_id,
        )

    async def place(self, request: OrderRequest, *, meter: CallMeter | None = None) -> Order:
        """Send a prepared order so that it is bought once, by the provider's capability.

        - NATIVE_KEY: replays carry its ``client_order_id``; the provider answers a repeat
          with the earlier order.
        - LOOKUP_KEY: the key is looked up first, and a create is sent only when the provider
          answers that no such order exists; a create whose answer was lost is never resent
          blindly, only after another lookup proves it bought nothing.
        - NONE: one create per intent. After an unknown outcome (in this session, or one noted
          by `note_sent_before` from a journal) nothing is sent until the order history and
          the chain are reconciled (`energy_async.reconcile`): the order found is returned;
          only a proof that nothing was bought lets a create go again; else `OutcomeUnknown`.

        Raises `OutcomeUnknown` when an attempt may have reached the provider and none
        settled; resolve it by calling ``place`` again with the same request.
        """
        if not request.client_order_id:
            raise InvalidOrder("place() needs a request from prepare() (no client_order_id)")
        # A request from a journal or a caller is checked like a new one.
        request = self.prepare(**msgspec.structs.asdict(request))
        capability = self._provider.idempotency
        if capability is Idempotency.NATIVE_KEY:
            return await self._create(request, meter, replay=True)
        if capability is Idempotency.LOOKUP_KEY:
            return await self._place_by_lookup(request, meter)
        return await self._place_once(request, meter)

    async def _create(
        self, request: OrderRequest, meter: CallMeter | None, *, replay: bool
    ) -> Order:
        """The create; with ``replay`` an attempt that may have been sent is sent again."""
        call = self._build(self._provider.create_wire(request))
        return await self._send(
            call,
            lambda data: self._check_replay(self._provider.parse_order(data, request), request),
            meter=meter,
            client_order_id=request.client_order_id,
            replay=replay,
        )

    async def lookup(self, client_order_id: str, *, meter: CallMeter | None = None) -> Order | None:
        """The order the provider holds under our ``client_order_id``; ``None`` when it says it
        has none. `NotSupported` where the API cannot look an order up by our id."""
        wire = self._provider.lookup_wire(client_order_id)
        if wire is None:
            raise NotSupported(
                f"{self._provider.name} cannot look an order up by client_order_id",
                provider=self._provider.name,
            )
        try:
            return await self._send(self._build(wire), self._provider.parse_order, meter=meter)
        except OrderNotFound:
            return None

    async def _place_by_lookup(self, request: OrderRequest, meter: CallMeter | None) -> Order:
        cid = request.client_order_id
        unknown: OutcomeUnknown | None = None
        for _ in range(self._retry.max_attempts):
            try:
                found = await self.lookup(cid, meter=meter)
            except EnergyError as exc:
                if unknown is None:
                    raise  # nothing was sent yet: a failed read bought nothing
                raise unknown from exc
            if found is not None:
                return self._check_replay(found, request)
            try:
                return await self._create(request, meter, replay=False)
            except OutcomeUnknown as exc:
                unknown = exc  # look it up again before anything else is sent
        assert unknown is not None
        raise unknown

    def note_sent_before(self, client_order_id: str, at: float) -> None:
        """A create for ``client_order_id`` may have left at ``at`` (Unix seconds), in this
        process or an earlier one (a resumed journal). For a provider without an idempotency
        key, ``place`` then reconciles before it sends anything."""
        if self._provider.idempotency is Idempotency.NONE:
            self._sent_once.setdefault(client_order_id, _Sent(at, on_provider_clock=False))

    def note_order(self, order_id: str, client_order_id: str) -> None:
        """``order_id`` belongs to ``client_order_id`` (known from a journal): reconciliation of
        any other intent never adopts it."""
        if self._provider.idempotency is Idempotency.NONE:
            self._claimed[order_id] = client_order_id

    async def _place_once(self, request: OrderRequest, meter: CallMeter | None) -> Order:
        cid = request.client_order_id
        sent = self._sent_once.get(cid)
        if sent is not None:
            decision = await self._reconcile(request, sent, meter)
            if decision.finding is Finding.ADOPT:
                assert decision.order is not None
                return self._claim(decision.order, cid)
            if decision.finding is Finding.UNPROVEN:
                raise OutcomeUnknown(
                    f"{self._provider.name} has no idempotency key and an earlier create of "
                    f"{cid!r} may have bought energy; nothing proves it did not "
                    f"({decision.reason}), so none is sent again",
                    client_order_id=cid,
                    provider=self._provider.name,
                )
            log.info(
                "%s %s: %s; sending the create again", self._provider.name, cid, decision.reason
            )
        self._sent_once[cid] = _Sent(self._clock.now(), on_provider_clock=True)
        try:
            order = await self._create(request, meter, replay=False)
        except OutcomeUnknown:
            raise
        except EnergyError:
            # Refused, or never sent (a connection refused, throttled): nothing was bought.
            del self._sent_once[cid]
            raise
        return self._claim(order, cid)

    def _claim(self, order: Order, client_order_id: str) -> Order:
        self._claimed[order.id] = client_order_id
        return order

    async def _reconcile(
        self, request: OrderRequest, sent: _Sent, meter: CallMeter | None
    ) -> Decision:
        """Read the order history back past the send and decide (`energy_async.reconcile`)."""
        provider = self._provider

        def since() -> float:  # on the provider's clock, as best known now
            return sent.at if sent.on_provider_clock else sent.at + self._clock.offset

        history: list[Order] = []
        complete = False
        try:
            for page in range(_MAX_HISTORY_PAGES):
                wire = provider.history_wire(page)
                if wire is None:
                    return Decision(Finding.UNPROVEN, "the provider documents no order history")
                orders, more = await self._send(
                    self._build(wire),
                    functools.partial(provider.parse_history, page=page),
                    meter=meter,
                )
                history.extend(orders)
                if not more:
                    complete = True
                    break
                if history_covers(history, since()):
                    break
        except EnergyError as exc:
            return Decision(Finding.UNPROVEN, f"the order history could not be read: {exc}")
        facts = functools.partial(
            decide,
            request,
            history,
            since=since(),
            now=self._clock.now(),
            complete=complete,
            claimed=self._claimed,
            quiet=self._reconcile_quiet,
        )
        decision = facts(chain_clear=None)
        if decision.needs_chain and self.chain_probe is not None:
            try:
                clear = await self.chain_probe(request.target)
            except EnergyError as exc:
                return Decision(Finding.UNPROVEN, f"the chain could not be read: {exc}")
            decision = facts(chain_clear=clear)
        return decision

    async def create_order(
        self,
        *,
        target: str,
        energy: int | None = None,
        transfers: int | None = None,
        duration: str = "1h",
        client_order_id: str | None = None,
        meter: CallMeter | None = None,
    ) -> Order:
        """Buy energy for ``target``: ``prepare`` then ``place``."""
        request = self.prepare(
            target=target,
            energy=energy,
            transfers=transfers,
            duration=duration,
            client_order_id=client_order_id,
        )
        return await self.place(request, meter=meter)

    async def get_order(self, order_id: str, *, meter: CallMeter | None = None) -> Order:
        """The order as the provider sees it now (``order.id`` from create)."""
        call = self._build(self._provider.detail_wire(order_id))
        return await self._send(call, self._provider.parse_order, meter=meter)

    async def account(self, *, meter: CallMeter | None = None) -> Account:
        call = self._build(self._provider.account_wire())
        return await self._send(call, self._provider.parse_account, meter=meter)

    async def quote(
        self,
        *,
        energy: int,
        duration: str = "1h",
        meter: CallMeter | None = None,
    ) -> Quote:
        """What ``energy`` for ``duration`` costs; `NotSupported` where no price is published."""
        self._provider.check_amount(energy=energy, transfers=None)
        call = self._build(self._provider.quote_wire(energy=energy, duration=duration))
        return await self._send(
            call,
            lambda data: self._provider.parse_quote(data, energy=energy, duration=duration),
            meter=meter,
        )

    # --- one request, many attempts ------------------------------------------------------------

    def _build(self, wire: Wire) -> _Call:
        # Values are URL-safe by validation (digits, base58, [A-Za-z0-9_-]), so no encoding
        # step can make the bytes sent differ from the bytes signed.
        signed_path = self._base_path + wire.path
        if wire.query:
            signed_path += "?" + "&".join(f"{name}={value}" for name, value in wire.query)
        url = URL(self._origin + signed_path, encoded=True)
        return _Call(wire.method, signed_path, url, wire.endpoint, wire.body)

    def _context(
        self,
        call: _Call,
        attempts: int,
        http_status: int | None = None,
        code: int | str | None = None,
        provider_message: str | None = None,
    ) -> ErrorContext:
        return {
            "provider": self._provider.name,
            "path": call.signed_path,
            "attempts": attempts,
            "http_status": http_status,
            "code": code,
            "provider_message": provider_message,
        }

    async def _send(
        self,
        call: _Call,
        parse: Callable[[Any], T],
        *,
        meter: CallMeter | None,
        client_order_id: str | None = None,
        replay: bool = True,
    ) -> T:
        """Attempts until one settles. For a create (``client_order_id`` given) every attempt
        after one that may have reached the provider is a replay of the same order."""
        seen = _Attempts()

        def attempt(attempts: int) -> Awaitable[T]:
            return self._attempt(call, parse, meter, attempts)

        def classify(exc: Exception, attempts: int) -> Step | None:
            step = self._classify(exc, call, attempts, seen, client_order_id)
            if step is not None and seen.maybe_sent and not replay:
                return Step(step.error)  # never resend blindly: the caller looks it up
            return step

        def give_up(error: BaseException) -> NoReturn:
            self._give_up(error, call, client_order_id, seen.maybe_sent)

        def on_retry(step: Step, attempts: int, delay: float) -> None:
            log.info(
                "%s %s attempt %d failed (%s); retrying in %.2f s%s",
                self._provider.name,
                call.endpoint,
                attempts,
                type(step.error).__name__,
                delay,
                " with the same client_order_id" if client_order_id else "",
            )

        return await retry_loop(
            self._retry, attempt, classify, give_up, on_retry, limiter=self._limiter
        )

    def _classify(
        self,
        exc: Exception,
        call: _Call,
        attempts: int,
        seen: _Attempts,
        client_order_id: str | None,
    ) -> Step | None:
        """What one failed attempt means: retry, give up, or (``None``) raise it as it is."""
        if isinstance(exc, _ClockRejected):
            if seen.resynced:
                refused = AuthenticationError(exc.message, **exc.context())
                refused.__suppress_context__ = True  # the private class is no news
                return Step(refused)
            # A 401 charged nothing, and its Date has just corrected our clock: once more.
            seen.resynced = True
            log.info(
                "%s %s: timestamp refused; retrying on the server's clock (offset %+.1f s)",
                self._provider.name,
                call.endpoint,
                self._clock.offset,
            )
            return Step(exc, now=True)
        if isinstance(exc, AuthenticationError):
            # Refused before the provider looked the id up: an earlier attempt may stand.
            return Step(exc)
        if isinstance(exc, ProviderError):
            if isinstance(exc, DuplicateOrder) and exc.code == REPLAY_MISMATCH:
                return None  # the id belongs to another order: nothing new was bought, ever
            # After an attempt that may have been taken, a refusal ("insufficient balance",
            # "duplicate") does not prove nothing was bought: it may be the first attempt's
            # charge speaking. Only a refusal with nothing sent before it is final.
            return Step(exc) if seen.maybe_sent else None
        if isinstance(exc, RateLimited):
            return Step(exc, again=True, retry_after=exc.retry_after)
        if isinstance(exc, ServiceUnavailable):
            seen.maybe_sent = True
            return Step(exc, again=True)
        if isinstance(exc, BadResponse):
            redirect = exc.http_status is not None and 300 <= exc.http_status < 400
            if client_order_id is None or redirect:
                return Step(exc)
            # A garbled answer to a create may hide a charge: replaying the same id reads it.
            seen.maybe_sent = True
            return Step(exc, again=True)
        if isinstance(exc, _NOT_SENT):
            error = NetworkError(
                f"could not connect: {_describe(exc)}", **self._context(call, attempts)
            )
            # No byte left this host: a create that only ever failed so bought nothing.
            error.not_sent = True
            error.__cause__ = safe_cause(exc)
            return Step(error, again=True)
        if isinstance(exc, _MAYBE_SENT):
            error = NetworkError(f"no answer: {_describe(exc)}", **self._context(call, attempts))
            error.__cause__ = safe_cause(exc)
            seen.maybe_sent = True
            return Step(error, again=True)
        return None

    def _give_up(
        self, error: BaseException, call: _Call, client_order_id: str | None, maybe_sent: bool
    ) -> NoReturn:
        """Stop with ``error``; but for a create that may have reached the provider, the last
        error does not say whether an earlier attempt bought it: the outcome is unknown."""
        if client_order_id is None or not maybe_sent or not isinstance(error, EnergyError):
            raise error
        raise OutcomeUnknown(
            f"the order may or may not have been placed (last: {error.message}); "
            "place it again with the same client_order_id to settle it",
            client_order_id=client_order_id,
            **self._context(call, error.attempts),
        ) from error

    async def _attempt(
        self, call: _Call, parse: Callable[[Any], T], meter: CallMeter | None, attempts: int
    ) -> T:
        """One signed HTTP exchange (the exact bytes of ``call``, a fresh timestamp), decoded."""
        client = self._http()
        await self._limiter.acquire()
        if meter is not None:
            meter.calls += 1
        provider = self._provider
        headers = provider.signer.headers(
            provider.api_key,
            provider.api_secret,
            self._clock.now(),
            call.method,
            call.signed_path,
            call.body,
        )
        async with client.request(
            call.method, call.url, headers=headers, data=call.body, allow_redirects=False
        ) as response:
            status = response.status
            self._clock.observe(response.headers.get("Date"), time.time())
            try:
                body = await read_capped(response)
            except BadResponse as exc:
                raise BadResponse(exc.message, **self._context(call, attempts, status)) from None
            retry_after = response.headers.get("Retry-After")
            location = response.headers.get("Location")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s -> %d (%d bytes)", call.method, call.signed_path, status, len(body))
        data = self._interpret(call, attempts, status, body, retry_after, location)
        try:
            return parse(data)
        except (BadResponse, DuplicateOrder) as exc:  # decodes, but does not add up
            context = self._context(call, attempts, status, exc.code)
            raise type(exc)(exc.message, **context) from None

    def _interpret(
        self,
        call: _Call,
        attempts: int,
        status: int,
        body: bytes,
        retry_after: str | None,
        location: str | None,
    ) -> Any:
        """The ``data`` of a success, or the typed error this reply amounts to."""
        if 300 <= status < 400:
            raise BadResponse(
                f"refused to follow a redirect to {location!r}: it would carry the signed "
                "headers elsewhere; check the base_url",
                **self._context(call, attempts, status),
            )
        if status == 429:
            raise RateLimited(
                "rate limited",
                retry_after=parse_retry_after(retry_after),
                **self._context(call, attempts, status),
            )
        if status >= 500:
            raise ServiceUnavailable(
                "provider unavailable", **self._context(call, attempts, status)
            )
        try:
            result = self._provider.unwrap(status, body, call.endpoint)
        except BadResponse as exc:
            raise BadResponse(exc.message, **self._context(call, attempts, status)) from None
        if isinstance(result, Refusal):
            error = _ClockRejected if result.about_clock else result.error
            raise error(
                result.summary,
                **self._context(call, attempts, status, result.code, result.message),
            )
        return result

    def _check_replay(self, order: Order, request: OrderRequest) -> Order:
        """A repeated ``client_order_id`` returns the earlier order, whatever was asked now."""
        if order.client_order_id and order.client_order_id != request.client_order_id:
            raise BadResponse(
                f"the provider answered with another client_order_id ({order.client_order_id!r})"
            )
        if echoed_address(order.target) != request.target or (
            request.energy is not None and order.energy not in (None, request.energy)
        ):
            raise DuplicateOrder(
                f"client_order_id {request.client_order_id!r} was already used for order "
                f"{order.id} ({order.energy} energy to {order.target}), not for "
                f"{request.energy} energy to {request.target}; nothing new was bought",
                code=REPLAY_MISMATCH,
            )
        return order


class _ClockRejected(AuthenticationError):
    """A 401 for the timestamp: worth one retry once the reply's ``Date`` reset our clock."""

    def context(self) -> ErrorContext:
        return {
            "provider": self.provider,
            "http_status": self.http_status,
            "code": self.code,
            "provider_message": self.provider_message,
            "attempts": self.attempts,
            "path": self.path,
        }


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

"""HTTP plumbing shared by the provider session and the verifier.

One place decides what a safe base URL is, how long to wait between attempts, how fast to send,
and how much of a body to read, so that both clients behave the same under faults.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import NamedTuple, NoReturn, TypeVar

import aiohttp
import anyio
import msgspec
from yarl import URL

from energy_async.errors import (
    BadResponse,
    ConfigurationError,
    NodeError,
    RateLimited,
    ServiceUnavailable,
)

__all__ = [
    "DECODE_ERRORS",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TOTAL_TIMEOUT",
    "LOOPBACK_RATE",
    "MAX_BODY_BYTES",
    "Aimd",
    "CallMeter",
    "Outcome",
    "RateLimiter",
    "RetryPolicy",
    "Step",
    "TransportFault",
    "adapt",
    "check_base_url",
    "default_rate",
    "is_loopback_host",
    "is_throttle",
    "new_client_session",
    "parse_retry_after",
    "read_capped",
    "redact_url",
    "retry_loop",
    "safe_cause",
    "shared_limiter",
]

# A node of your own or the sandbox has no remote quota: in effect no limit (the limiter's
# fast path makes it free), while the code path stays the same as against a real service.
LOOPBACK_RATE = 1_000_000.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_TOTAL_TIMEOUT = 15.0
MAX_BODY_BYTES = 1 << 20  # no documented response comes near 1 MiB


def is_loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_rate(base_url: str | URL, remote_rate: float) -> float:
    """Requests per second to allow by default: the service's quota, or none on loopback."""
    host = (URL(base_url) if isinstance(base_url, str) else base_url).host or ""
    return LOOPBACK_RATE if is_loopback_host(host) else remote_rate


def redact_url(url: str | URL) -> str:
    """A URL as it may be shown: scheme, host, port and path; never userinfo, query or fragment
    (where keys end up), and never the raw text of something that does not parse."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        shown = parsed.with_user(None).with_query(None).with_fragment(None)
        if not parsed.host:
            return "<not a URL>"
        return str(shown)
    except (ValueError, TypeError):
        return "<not a URL>"


def check_base_url(url: str | URL, *, what: str) -> URL:
    """``https://`` only, except loopback hosts (the sandbox): signed headers must never travel
    in clear text or to a host the user did not name. Errors show the URL redacted."""
    try:
        parsed = URL(url) if isinstance(url, str) else url
        host = parsed.host or ""
    except (ValueError, TypeError):
        raise ConfigurationError(f"{what} is not a valid URL") from None
    shown = redact_url(parsed)
    if not parsed.is_absolute() or not host:
        raise ConfigurationError(f"{what} must be an absolute URL, got {shown!r}")
    if parsed.user or parsed.password:
        raise ConfigurationError(f"{what} must not carry credentials in the URL: {shown!r}")
    if parsed.query_string or parsed.fragment:
        raise ConfigurationError(f"{what} must not have a query or fragment: {shown!r}")
    if parsed.scheme == "https" or (parsed.scheme == "http" and is_loopback_host(host)):
        return parsed.with_path(parsed.path.rstrip("/"))
    raise ConfigurationError(
        f"{what} must use https:// (plain http is allowed only for loopback hosts), got {shown!r}"
    )


# What decoding a body can raise besides msgspec's own errors: deep nesting (RecursionError) and
# text that is not UTF-8. Every decode of a network body maps these to `BadResponse` too.
DECODE_ERRORS: tuple[type[Exception], ...] = (msgspec.DecodeError, RecursionError, UnicodeError)


class TransportFault(Exception):
    """A network failure, described without the request it failed on.

    aiohttp's errors carry the request (``ClientResponseError.request_info`` holds every header,
    keys and signatures included), so they are never chained as they are: `safe_cause` keeps
    their kind and a redacted description instead.
    """


def safe_cause(error: BaseException) -> TransportFault:
    """A stand-in for ``error`` to chain (``raise NetworkError(...) from safe_cause(exc)``)."""
    if isinstance(error, aiohttp.ClientResponseError):
        text = f"HTTP {error.status} {error.message}".strip()
    elif isinstance(error, aiohttp.ClientConnectorError):
        text = f"{error.host}:{error.port}: {error.os_error.strerror or error.os_error}"
    else:
        text = " ".join(str(error).split())
        for marker in ("http://", "https://"):  # a URL in a message may carry a query
            if marker in text:
                text = text.split(marker, 1)[0] + "<url>"
    fault = TransportFault(
        f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
    )
    fault.__suppress_context__ = True
    return fault


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts a request gets and how long to wait between them.

    Backoff is ``initial_delay * 2**n`` capped at ``max_delay``, minus up to ``jitter`` of
    itself at random, so that many clients throttled together do not retry together. A server's
    ``Retry-After`` wins when it is longer, up to ``max_retry_after``; beyond that we give up
    rather than hang.
    """

    max_attempts: int = 4
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("RetryPolicy.max_attempts must be at least 1")
        if min(self.initial_delay, self.max_delay, self.max_retry_after) < 0:
            raise ConfigurationError("RetryPolicy delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("RetryPolicy.jitter must be between 0 and 1")

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1)."""
        base: float = min(self.initial_delay * 2.0 ** (attempt - 1), self.max_delay)
        return base * (1 - self.jitter * rng())

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[], float] = random.random
    ) -> float | None:
        """The wait before the next attempt, or ``None`` when the server asks for too long."""
        backoff = self.backoff(attempt, rng)
        if retry_after is None:
            return backoff
        if retry_after > self.max_retry_after:
            return None
        return max(backoff, retry_after)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; ``None`` when absent or bad."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            return None
        seconds = moment.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


class Outcome(enum.Enum):
    """What one answer says about the pace: served, or throttled (slow down)."""

    SERVED = "served"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Aimd:
    """How a limiter's rate adapts: additive increase, multiplicative decrease.

    A throttled answer cuts the rate to ``decrease`` times itself, at most once per
    ``cooldown`` seconds (the answers to requests already sent at the old pace say nothing new;
    quotas are counted per second), and never below ``floor``. Every served answer adds
    ``increase / rate``, so the rate regains ``increase`` requests/s per second of traffic at
    full pace, up to ``ceiling``.
    """

    ceiling: float
    floor: float
    increase: float
    decrease: float = 0.5
    cooldown: float = 1.0

    @classmethod
    def for_ceiling(cls, ceiling: float, floor: float | None = None) -> Aimd:
        """The default policy: never below a quarter of the ceiling (a key shared by more
        clients than that needs a lower ``rate_limit``; Retry-After still paces retries), and
        back from the floor to the ceiling in about 12 seconds of traffic."""
        floor = ceiling / 4 if floor is None else floor
        if not 0 < floor <= ceiling:
            raise ConfigurationError("the rate floor must be positive and at most the rate")
        return cls(ceiling=ceiling, floor=floor, increase=ceiling / 16)


def adapt(rate: float, outcome: Outcome, since_cut: float, policy: Aimd) -> float:
    """The next rate after one answer (pure: the limiter keeps the state)."""
    if outcome is Outcome.THROTTLED:
        if since_cut < policy.cooldown:
            return rate
        return max(policy.floor, rate * policy.decrease)
    return min(policy.ceiling, rate + policy.increase / rate)


def is_throttle(error: BaseException) -> bool:
    """Whether a failed attempt means "slower, please": a 429 or TronGrid's 403/503 throttling
    (`RateLimited`), a provider's 503, or TronGrid's in-band "lack of computing resources"
    (the one `NodeError` the verifier marks retryable)."""
    if isinstance(error, RateLimited):
        return True
    if isinstance(error, ServiceUnavailable):
        return error.http_status == 503
    return isinstance(error, NodeError) and error.retryable


class RateLimiter:
    """A rate limit shared by every task that talks to one service, adapting to its answers.

    It starts at ``rate`` requests per second (the ceiling), with bursts of up to ``burst``
    after a pause (never more than one second at the current rate). `observe` adapts the rate
    (`Aimd`): throttled answers halve it, down to ``floor`` (default a quarter of ``rate``);
    served ones grow it back. ``floor=rate`` makes a fixed limiter. ``clock`` and ``sleep`` are
    injectable for tests.

    A token bucket kept as the time the next request is due (GCRA): each `acquire` books the
    next slot without waiting for anyone, so tasks are paced in arrival order and none starves,
    and a task woken late by a busy event loop delays nobody else (a queue behind one lock
    drains one task per loop turn, far below the rate). A cancelled wait keeps its slot.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        floor: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ConfigurationError("rate limit must be positive")
        self.policy = Aimd.for_ceiling(rate, floor)
        self.rate = rate
        self.burst = burst if burst is not None else max(1, math.ceil(rate))
        self._clock = clock
        self._sleep = sleep
        # When the next request is due at an even pace; it may go up to the burst's slack
        # earlier.
        self._due = clock()
        self._last_cut = -math.inf

    @property
    def ceiling(self) -> float:
        return self.policy.ceiling

    async def acquire(self) -> None:
        now = self._clock()
        interval = 1.0 / self.rate
        due = max(self._due, now)  # a pause saves up no more than the burst
        self._due = due + interval
        start = due - self._slack(self.rate)
        if start > now:
            await self._sleep(start - now)

    def observe(self, outcome: Outcome) -> None:
        """Adapt the rate to one answer (see `Aimd`)."""
        now = self._clock()
        rate = adapt(self.rate, outcome, now - self._last_cut, self.policy)
        if rate == self.rate:
            return
        if rate < self.rate:
            self._last_cut = now
            # No saved-up burst into a throttled key: the next request waits one interval.
            self._due = max(self._due, now + 1.0 / rate + self._slack(rate))
        self.rate = rate

    def _slack(self, rate: float) -> float:
        """How much earlier than due a request may go: the burst less one, at ``rate``."""
        return (max(1.0, min(float(self.burst), rate)) - 1) / rate


# One limiter per (service, base URL, key, rate) in the process: services limit per key, so
# every client sharing a key must share its budget (and what it learns about the key's real
# limit). The key is hashed: no secret is kept here. Tests pass a registry of their own.
_LIMITERS: dict[tuple[str, str, str | None, float], RateLimiter] = {}


def shared_limiter(
    service: str,
    base_url: str,
    api_key: str | None,
    rate: float,
    registry: dict[tuple[str, str, str | None, float], RateLimiter] | None = None,
) -> RateLimiter:
    """The process-wide limiter for this service, URL, key and ceiling (made on first use)."""
    limiters = _LIMITERS if registry is None else registry
    key_id = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
    slot = (service, base_url, key_id, rate)
    limiter = limiters.get(slot)
    if limiter is None:
        limiter = limiters[slot] = RateLimiter(rate)
    return limiter


class Step(NamedTuple):
    """What one failed attempt amounts to: give up with ``error``, or try again.

    ``again`` asks for another attempt after the policy's backoff (or ``retry_after`` when
    longer); ``now`` for one right away that the attempt budget does not limit (the clock was
    just corrected, nothing can have been charged).
    """

    error: BaseException
    again: bool = False
    retry_after: float | None = None
    now: bool = False


T = TypeVar("T")


async def retry_loop(
    policy: RetryPolicy,
    attempt: Callable[[int], Awaitable[T]],
    classify: Callable[[Exception, int], Step | None],
    give_up: Callable[[BaseException], NoReturn],
    on_retry: Callable[[Step, int, float], None] | None = None,
    *,
    limiter: RateLimiter | None = None,
) -> T:
    """Call ``attempt(n)`` until it returns; every failure goes through ``classify``.

    ``classify`` returns ``None`` for an error to raise as it is, else a `Step`. When a step does
    not ask for another try, or the policy is out of attempts or will not wait that long,
    ``give_up(step.error)`` raises. One loop for every client, so that they behave alike.
    ``limiter`` (the one ``attempt`` acquires) learns from every answer: served or throttled.
    """
    attempts = 0
    while True:
        attempts += 1
        try:
            result = await attempt(attempts)
        except Exception as exc:
            step = classify(exc, attempts)
            if step is None:
                raise
        else:
            if limiter is not None:
                limiter.observe(Outcome.SERVED)
            return result
        if limiter is not None and is_throttle(step.error):
            limiter.observe(Outcome.THROTTLED)
        if step.now:
            continue
        delay = (
            policy.delay(attempts, step.retry_after)
            if step.again and attempts < policy.max_attempts
            else None
        )
        if delay is None:
            give_up(step.error)
        if on_retry is not None:
            on_retry(step, attempts, delay)
        await anyio.sleep(delay)


class CallMeter:
    """Counts the HTTP requests made on behalf of one caller (one order, one verification)."""

    __slots__ = ("calls",)

    def __init__(self) -> None:
        self.calls = 0


def new_client_session(
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
    max_connections: int = 100,
    max_connections_per_host: int = 32,
    headers: Mapping[str, str] | None = None,
    trace_configs: list[aiohttp.TraceConfig] | None = None,
) -> aiohttp.ClientSession:
    """One pooled, bounded client session; never ``limit=0`` (unbounded sockets)."""
    if max_connections < 1 or max_connections_per_host < 1:
        raise ConfigurationError("connection limits must be at least 1")
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=max_connections_per_host)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout),
        headers=headers,
        trace_configs=trace_configs,
        auto_decompress=True,
        # Cookies are not part of either API; do not carry state between requests.
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    """The body, or ``BadResponse`` as soon as it exceeds ``limit`` (a hostile or broken peer)."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BadResponse(f"response body of {declared} bytes exceeds the {limit}-byte cap")
    chunks: list[bytes] = []
    size = 0
    while chunk := await response.content.read(65536):
        size += len(chunk)
        if size > limit:
            raise BadResponse(f"response body exceeds the {limit}-byte cap")
        chunks.append(chunk)
    return b"".join(chunks)

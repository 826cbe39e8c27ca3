"""Switchable faults and request bookkeeping for every sandbox service.

A test either injects a fault for the next N matching requests (deterministic), sets a rate
(seeded random, for soak runs), or sets a quota (requests per second above which the service
throttles, as a real key's limit does). Each service app asks ``control.faults.draw(endpoint)``
once per request and applies what it gets in its own way (a TronGrid throttle body differs
from a provider's 429), so this module only decides *whether* and *which*.
"""

from __future__ import annotations

import enum
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ActiveFault", "Fault", "FaultPlan", "RequestRecord", "ServiceControl"]


class Fault(enum.StrEnum):
    # any service
    LATENCY = "LATENCY"  # params: delay (seconds, default 0.2)
    SERVER_ERROR = "SERVER_ERROR"  # HTTP 500
    BAD_GATEWAY = "BAD_GATEWAY"  # HTTP 502 with an HTML page, as a proxy sends it
    LOST_RESPONSE = "LOST_RESPONSE"  # the request takes full effect, then the connection drops
    HTML_BODY = "HTML_BODY"  # HTTP 200 text/html
    NON_JSON = "NON_JSON"  # HTTP 200 text/plain ("error code: 1010", a WAF answer)
    TRUNCATED_JSON = "TRUNCATED_JSON"  # the real body cut in half
    HUGE_BODY = "HUGE_BODY"  # params: size (bytes, default 5 MiB)
    WRONG_TYPES = "WRONG_TYPES"  # valid JSON, wrong field types
    # providers
    RATE_LIMIT = "RATE_LIMIT"  # HTTP 429 + Retry-After; params: retry_after (seconds, default 1)
    # TronGrid
    THROTTLE_403 = "THROTTLE_403"
    THROTTLE_429 = "THROTTLE_429"
    THROTTLE_503 = "THROTTLE_503"
    NODE_BUSY = "NODE_BUSY"  # 200 {"Error": "... lack of computing resources"}
    NODE_ERROR = "NODE_ERROR"  # 200 {"Error": "..."} that is not retryable
    STALE = "STALE"  # a lagging node behind the load balancer: tx queries answer {}


@dataclass(frozen=True, slots=True)
class ActiveFault:
    fault: Fault
    params: dict[str, Any]

    def param(self, name: str, default: Any) -> Any:
        return self.params.get(name, default)


@dataclass(slots=True)
class _Injected:
    fault: Fault
    endpoint: str
    remaining: int
    params: dict[str, Any]


@dataclass(slots=True)
class _Rate:
    fault: Fault
    endpoint: str
    rate: float
    params: dict[str, Any]


@dataclass(slots=True)
class _Quota:
    """At most ``per_second`` requests in any one-second window (a sliding window, the
    strictest reading of a "requests per second" limit); the rest are throttled."""

    per_second: int
    clock: Callable[[], float]
    params: dict[str, Any]
    served: deque[float] = field(default_factory=deque)
    refused: int = 0

    def over(self) -> bool:
        now = self.clock()
        while self.served and self.served[0] <= now - 1.0:
            self.served.popleft()
        if len(self.served) >= self.per_second:
            self.refused += 1
            return True
        self.served.append(now)
        return False


class FaultPlan:
    """Which faults the next requests get. ``endpoint="any"`` matches every endpoint."""

    def __init__(self, seed: int = 0) -> None:
        self._injected: list[_Injected] = []
        self._rates: list[_Rate] = []
        self._quota: _Quota | None = None
        self._rng = random.Random(seed)

    def inject(self, fault: Fault, *, times: int = 1, endpoint: str = "any", **params: Any) -> None:
        """The next ``times`` requests to ``endpoint`` get ``fault`` (queued in order)."""
        self._injected.append(_Injected(Fault(fault), endpoint, times, params))

    def set_rate(self, fault: Fault, rate: float, *, endpoint: str = "any", **params: Any) -> None:
        """Each request to ``endpoint`` gets ``fault`` with probability ``rate``."""
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._rates = [r for r in self._rates if (r.fault, r.endpoint) != (fault, endpoint)]
        if rate:
            self._rates.append(_Rate(Fault(fault), endpoint, rate, params))

    def pending(self) -> int:
        """Injected faults not yet drawn (a test waits on this to know a request arrived)."""
        return sum(item.remaining for item in self._injected)

    def set_quota(
        self,
        per_second: int | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        **params: Any,
    ) -> None:
        """Throttle every request beyond ``per_second`` in any one-second window of ``clock``
        (``None`` lifts the quota): a provider answers 429 (`Fault.RATE_LIMIT`), TronGrid its
        429 throttle body, both with ``params`` (``retry_after``)."""
        if per_second is not None and per_second < 1:
            raise ValueError("a quota must allow at least one request per second")
        self._quota = None if per_second is None else _Quota(per_second, clock, params)

    @property
    def quota_refused(self) -> int:
        """Requests the quota has throttled so far."""
        return 0 if self._quota is None else self._quota.refused

    def clear(self) -> None:
        self._injected.clear()
        self._rates.clear()
        self._quota = None

    def draw(self, endpoint: str, allowed: frozenset[Fault] | None = None) -> ActiveFault | None:
        """The fault for one request to ``endpoint``, if any (consumes an injected one)."""
        if self._quota is not None and self._quota.over():
            kind = Fault.THROTTLE_429
            if allowed is None or Fault.RATE_LIMIT in allowed:
                kind = Fault.RATE_LIMIT
            return ActiveFault(kind, self._quota.params)
        for item in self._injected:
            if item.remaining > 0 and item.endpoint in ("any", endpoint):
                if allowed is not None and item.fault not in allowed:
                    continue
                item.remaining -= 1
                if item.remaining == 0:
                    self._injected.remove(item)
                return ActiveFault(item.fault, item.params)
        for rate in self._rates:
            if rate.endpoint not in ("any", endpoint):
                continue
            if allowed is not None and rate.fault not in allowed:
                continue
            if self._rng.random() < rate.rate:
                return ActiveFault(rate.fault, rate.params)
        return None


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    raw_path: str
    endpoint: str
    status: int  # 0 when the connection was dropped


@dataclass(slots=True)
class ServiceControl:
    """The switches and the request log of one sandbox service."""

    faults: FaultPlan = field(default_factory=FaultPlan)
    unreachable: bool = False  # drop every connection: the service is down
    requests: list[RequestRecord] = field(default_factory=list)
    keep_log: bool = True  # soak runs switch the log off to keep memory flat

    def record(self, method: str, raw_path: str, endpoint: str, status: int) -> None:
        self._counts[endpoint] += 1
        if self.keep_log:
            self.requests.append(RequestRecord(method, raw_path, endpoint, status))

    def count(self, endpoint: str | None = None) -> int:
        """Requests that reached this service (all, or to one endpoint)."""
        if endpoint is None:
            return sum(self._counts.values())
        return self._counts[endpoint]

    _counts: Counter[str] = field(default_factory=Counter)

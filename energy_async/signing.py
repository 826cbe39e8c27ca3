"""Request signing: pure functions and three signer strategies, no I/O, no clock of their own.

- CatFee, Mefree and TEnergy sign ``timestamp + METHOD + requestPath + body`` with HMAC-SHA256
  and Base64, where requestPath is the path *and query exactly as sent on the wire* and body the
  exact bytes sent (empty for the first two, which send none). Timestamp: ISO-8601 UTC with ms.
- iTRX signs POSTs only: lowercase hex HMAC-SHA256 of ``unix_seconds + "&" + body``, the body
  being the JSON with sorted keys and no spaces (``json.dumps(sort_keys=True,
  separators=(",", ":"))``). Its GETs carry the key alone.
- TronSave signs nothing: an ``apikey`` header.

Callers build the request once, sign those exact bytes, and send them unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

__all__ = [
    "ApiKeySigner",
    "HexBodySigner",
    "PathSigner",
    "Signer",
    "format_timestamp",
    "sign",
    "signed_headers",
    "string_to_sign",
]

_JSON = "application/json"


def format_timestamp(unix_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds: ``2023-08-26T12:34:56.789Z``."""
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def string_to_sign(timestamp: str, method: str, request_path: str, body: str = "") -> str:
    return f"{timestamp}{method.upper()}{request_path}{body}"


def sign(secret: str, timestamp: str, method: str, request_path: str, body: str = "") -> str:
    message = string_to_sign(timestamp, method, request_path, body).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    prefix: str, key: str, secret: str, timestamp: str, method: str, request_path: str
) -> dict[str, str]:
    """The four headers CatFee and Mefree require; ``prefix`` is ``CF`` or ``MF``."""
    return {
        "Content-Type": _JSON,
        f"{prefix}-ACCESS-KEY": key,
        f"{prefix}-ACCESS-SIGN": sign(secret, timestamp, method, request_path),
        f"{prefix}-ACCESS-TIMESTAMP": timestamp,
    }


class Signer(Protocol):
    """How one provider authenticates a request: the headers for these exact bytes."""

    def headers(
        self,
        key: str,
        secret: str,
        now: float,
        method: str,
        signed_path: str,
        body: bytes | None,
    ) -> dict[str, str]:
        """``now`` is the provider's clock as we estimate it (Unix seconds)."""
        ...


@dataclass(frozen=True, slots=True)
class PathSigner:
    """Base64 HMAC of timestamp + METHOD + path?query + body (CatFee, Mefree, TEnergy)."""

    key_header: str
    sign_header: str
    timestamp_header: str

    @classmethod
    def prefixed(cls, prefix: str) -> PathSigner:
        """CatFee's ``CF-ACCESS-*`` family of names (Mefree: ``MF``)."""
        return cls(f"{prefix}-ACCESS-KEY", f"{prefix}-ACCESS-SIGN", f"{prefix}-ACCESS-TIMESTAMP")

    def headers(
        self, key: str, secret: str, now: float, method: str, signed_path: str, body: bytes | None
    ) -> dict[str, str]:
        stamp = format_timestamp(now)
        text = body.decode() if body else ""
        return {
            "Content-Type": _JSON,
            self.key_header: key,
            self.sign_header: sign(secret, stamp, method, signed_path, text),
            self.timestamp_header: stamp,
        }


@dataclass(frozen=True, slots=True)
class HexBodySigner:
    """iTRX: POSTs carry ``TIMESTAMP`` (Unix seconds) and ``SIGNATURE`` = hex HMAC of
    ``ts & body``; GETs carry ``API-KEY`` only (develop.itrx.io general/sign.html)."""

    def headers(
        self, key: str, secret: str, now: float, method: str, signed_path: str, body: bytes | None
    ) -> dict[str, str]:
        if method.upper() != "POST":
            return {"API-KEY": key}
        stamp = str(int(now))
        message = stamp.encode() + b"&" + (body or b"")
        signature = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        return {
            "Content-Type": _JSON,
            "API-KEY": key,
            "TIMESTAMP": stamp,
            "SIGNATURE": signature,
        }


@dataclass(frozen=True, slots=True)
class ApiKeySigner:
    """TronSave: the key in one header, nothing signed, no timestamp."""

    header: str = "apikey"

    def headers(
        self, key: str, secret: str, now: float, method: str, signed_path: str, body: bytes | None
    ) -> dict[str, str]:
        return {"Content-Type": _JSON, self.header: key}

"""Request signing for CatFee and Mefree: pure functions, no I/O, no clock of their own.

Both providers sign ``timestamp + METHOD + requestPath`` with HMAC-SHA256 and Base64, where
requestPath is the path *and query exactly as sent on the wire*. Callers build the URL once,
sign those bytes, and send them unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

__all__ = ["format_timestamp", "sign", "signed_headers", "string_to_sign"]


def format_timestamp(unix_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds: ``2023-08-26T12:34:56.789Z``."""
    moment = datetime.fromtimestamp(unix_seconds, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def string_to_sign(timestamp: str, method: str, request_path: str) -> str:
    return f"{timestamp}{method.upper()}{request_path}"


def sign(secret: str, timestamp: str, method: str, request_path: str) -> str:
    message = string_to_sign(timestamp, method, request_path).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    prefix: str, key: str, secret: str, timestamp: str, method: str, request_path: str
) -> dict[str, str]:
    """The four headers both providers require; ``prefix`` is ``CF`` or ``MF``."""
    return {
        "Content-Type": "application/json",
        f"{prefix}-ACCESS-KEY": key,
        f"{prefix}-ACCESS-SIGN": sign(secret, timestamp, method, request_path),
        f"{prefix}-ACCESS-TIMESTAMP": timestamp,
    }

"""One error tree for the whole library.

The branches answer the question a caller has to decide on: was anything sent or spent
(`InputError`: no), did the provider say no (`ProviderError`: retrying will not help), is it
worth trying again (`TransientError`), or is the outcome of a purchase unknown (`OutcomeUnknown`:
reconcile by ``client_order_id``, never buy again blindly).
"""

from __future__ import annotations

from typing import TypedDict, Unpack

__all__ = [
    "AuthenticationError",
    "BadResponse",
    "ConfigurationError",
    "DuplicateOrder",
    "EnergyError",
    "ErrorContext",
    "InputError",
    "InsufficientBalance",
    "InvalidAddress",
    "InvalidOrder",
    "JournalBusy",
    "JournalError",
    "JournalUnavailable",
    "NetworkError",
    "NodeError",
    "NotSupported",
    "NothingBought",
    "OrderNotFound",
    "OutcomeUnknown",
    "ProviderError",
    "RateLimited",
    "RequestRejected",
    "ServiceUnavailable",
    "TokenNotFound",
    "TransientError",
    "error_leaves",
    "most_telling",
]


class ErrorContext(TypedDict, total=False):
    """Where an error happened; the keyword arguments every error accepts."""

    provider: str | None
    http_status: int | None
    code: int | str | None
    provider_message: str | None
    attempts: int
    path: str | None


class EnergyError(Exception):
    """Root of every error this library raises.

    Every error carries where it happened and how far the request got, never a secret:
    ``path`` is the request path (and query, which holds no credentials); signatures and keys
    are not kept anywhere on the error.
    """

    retryable: bool = False
    # The request is known to have bought nothing: no byte of it left this host, or the
    # provider refused it before any charge and no earlier attempt of it may have bought.
    not_sent: bool = False

    def __init__(self, message: str, **context: Unpack[ErrorContext]) -> None:
        super().__init__(message)
        self.message = message
        self.provider = context.get("provider")
        self.http_status = context.get("http_status")
        self.code = context.get("code")
        self.provider_message = context.get("provider_message")
        self.attempts = context.get("attempts", 0)
        self.path = context.get("path")

    def __str__(self) -> str:
        details = [
            f"{name}={value}"
            for name, value in (
                ("provider", self.provider),
                ("http_status", self.http_status),
                ("code", self.code),
                ("provider_message", self.provider_message),
                ("path", self.path),
                ("attempts", self.attempts or None),
            )
            if value is not None
        ]
        return f"{self.message} ({', '.join(details)})" if details else self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


# --- raised before anything is sent: nothing spent --------------------------------------------


class InputError(EnergyError, ValueError):
    """Bad input or configuration, detected locally; no request was sent."""


class ConfigurationError(InputError):
    """Missing credentials, a non-https base URL, an impossible setting."""


class InvalidAddress(InputError):
    """Not a TRON mainnet address (base58check, 21 bytes, prefix 0x41)."""


class InvalidOrder(InputError):
    """An order the library refuses to send: quantity, duration, client_order_id ..."""


class NotSupported(InvalidOrder):
    """The provider cannot do this (a duration or ``transfers`` it does not offer)."""


class TokenNotFound(InputError):
    """No TRC20 contract at the token address (the node says so); nothing was bought."""


# --- the provider answered and said no: retrying will not help ---------------------------------


class ProviderError(EnergyError):
    """The provider refused the request (``code != 0`` or a 4xx that is not throttling)."""


class AuthenticationError(ProviderError):
    """Key, signature or timestamp rejected (HTTP 401 or an auth error code)."""


class InsufficientBalance(ProviderError):
    """The provider account cannot pay for the order."""


class RequestRejected(ProviderError):
    """The provider rejected a parameter (address, quantity, duration ...)."""


class OrderNotFound(ProviderError):
    """No order with that id at the provider."""


class DuplicateOrder(ProviderError):
    """The provider reports the ``client_order_id`` as already used for a different order."""


# --- worth another try --------------------------------------------------------------------------


class TransientError(EnergyError):
    """Throttling, an outage or a network fault; the request may be retried."""

    retryable = True


class RateLimited(TransientError):
    """HTTP 429 (or TronGrid's 403/503 throttling)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kw: Unpack[ErrorContext]
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServiceUnavailable(TransientError):
    """HTTP 5xx from the provider or node."""


class NetworkError(TransientError):
    """Connection refused or reset, DNS failure, timeout."""


# --- the purchase may or may not have happened -------------------------------------------------


class OutcomeUnknown(EnergyError):
    """A create was sent but its outcome could not be settled.

    Resolve it by replaying the create with the same ``client_order_id``
    (``session.place(request)`` again): both providers document that a repeated id returns the
    earlier order without charging. Never by buying again with a new id.
    """

    def __init__(self, message: str, *, client_order_id: str, **kw: Unpack[ErrorContext]) -> None:
        super().__init__(message, **kw)
        self.client_order_id = client_order_id

    def __str__(self) -> str:
        return f"{super().__str__()} [client_order_id={self.client_order_id}]"


class NothingBought(EnergyError):
    """A service was unavailable before anything could be bought: nothing was spent.

    Raised when the target could not be read before ordering (so the order could never be
    verified) or a create provably never left this host (connection refused, DNS failure).
    Safe to retry as it is; the CLI answers with exit code 4. ``service`` names what was down
    (a provider's name or ``"trongrid"``) and ``host`` the URL's host, never a full URL.
    """

    def __init__(
        self, message: str, *, service: str, host: str | None = None, **kw: Unpack[ErrorContext]
    ) -> None:
        super().__init__(message, **kw)
        self.service = service
        self.host = host


# --- the other side answered something we cannot trust ------------------------------------------


class BadResponse(EnergyError):
    """A body that is not the documented JSON: HTML, truncated, wrong types, too large."""


class NodeError(EnergyError):
    """TronGrid / java-tron answered ``{"Error": ...}`` (HTTP 200 or 404)."""

    def __init__(
        self, message: str, *, retryable: bool = False, **kw: Unpack[ErrorContext]
    ) -> None:
        super().__init__(message, **kw)
        self.retryable = retryable


class JournalError(EnergyError):
    """The journal file is corrupt, foreign, or from a newer version; it was not modified."""


class JournalBusy(JournalError):
    """Another process or `Journal` holds the journal (a batch still running holds its file
    alone, for writing and reading); it was not modified."""


class JournalUnavailable(JournalError):
    """The journal's database could not be reached again before this worker's leases expired.

    Orders this worker held (``held``, their client_order_ids) may have been bought; another
    worker takes them over by replaying each id once the leases expire, so nothing is bought
    twice. The CLI answers with exit code 4 and names them.
    """

    def __init__(
        self, message: str, *, held: tuple[str, ...] = (), **kw: Unpack[ErrorContext]
    ) -> None:
        super().__init__(message, **kw)
        self.held = held


# --- errors raised from task groups -----------------------------------------------------------


def error_leaves(exc: BaseException) -> list[BaseException]:
    """The errors inside (nested) exception groups, in order; ``[exc]`` for any other."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in error_leaves(inner)]
    return [exc]


def most_telling(errors: list[BaseException]) -> BaseException:
    """The one error to report out of a group's: a typed error over a bare cancellation."""
    for kinds in (
        (KeyboardInterrupt,),
        (OutcomeUnknown,),
        (InputError, AuthenticationError, JournalError, JournalUnavailable, NothingBought),
        (EnergyError,),
        (Exception,),
    ):
        for error in errors:
            if isinstance(error, kinds):
                return error
    return errors[0]

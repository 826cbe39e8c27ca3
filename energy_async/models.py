"""The data every module shares: orders, chain snapshots, evidence and verdicts.

All are frozen msgspec Structs: cheap to build and decode, safe to hand between tasks, and
encodable to JSON as they are (``msgspec.json.encode(result)``). Amounts are ``int`` (sun,
energy units); times are Unix seconds as ``float`` unless a name says ``_ms``.
"""

from __future__ import annotations

import enum
import functools
from typing import Any, NoReturn, Self

import msgspec

__all__ = [
    "ENERGY_PER_TRANSFER",
    "Account",
    "ActivateStatus",
    "Basis",
    "ChainHead",
    "ConfirmStatus",
    "DelegatedResource",
    "DelegationTx",
    "DeliveryResult",
    "Evidence",
    "Order",
    "OrderPhase",
    "OrderRequest",
    "OrderStatus",
    "Quote",
    "ResourceSnapshot",
    "StatusChange",
    "Term",
    "TxFinding",
    "Verdict",
]


class _Tolerant(enum.StrEnum):
    """A provider enum: a value the provider adds tomorrow reads as UNKNOWN, never a crash."""

    @classmethod
    def parse(cls, value: object) -> Self:
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        return cls("UNKNOWN")


class OrderStatus(_Tolerant):
    """``status`` of a CatFee / Mefree order (samples from docs and client code; not exhaustive)."""

    PAYMENT_SUCCESS = "PAYMENT_SUCCESS"
    TRANSFER_SUCCESS = "TRANSFER_SUCCESS"
    DELEGATE_SUCCESS = "DELEGATE_SUCCESS"
    DELEGATE_FAIL = "DELEGATE_FAIL"
    INSUFFICIENT_BALANCE = "INSUFFICIENT_BALANCE"
    QUANTITY_TOO_HIGH = "QUANTITY_TOO_HIGH"
    QUANTITY_TOO_LOW = "QUANTITY_TOO_LOW"
    ADDRESS_NOT_ACTIVATED = "ADDRESS_NOT_ACTIVATED"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    UNKNOWN = "UNKNOWN"


class ConfirmStatus(_Tolerant):
    UNCONFIRMED = "UNCONFIRMED"
    DELEGATION_CONFIRMED = "DELEGATION_CONFIRMED"
    DELEGATION_CONFIRMED_FAIL = "DELEGATION_CONFIRMED_FAIL"
    RECLAIM_CONFIRMED = "RECLAIM_CONFIRMED"
    RECLAIM_CONFIRMED_FAIL = "RECLAIM_CONFIRMED_FAIL"
    UNKNOWN = "UNKNOWN"


class ActivateStatus(_Tolerant):
    DEACTIVATE = "DEACTIVATE"
    ACTIVATE = "ACTIVATE"
    ACTIVATED = "ACTIVATED"
    ALREADY_ACTIVATED = "ALREADY_ACTIVATED"
    UNKNOWN = "UNKNOWN"


class OrderPhase(enum.StrEnum):
    """What the provider's word amounts to, whatever its status strings are called."""

    PENDING = "PENDING"  # paid, not yet delegated
    DELEGATED = "DELEGATED"  # delegation broadcast, not confirmed
    CONFIRMED = "CONFIRMED"  # the provider says it is delivered
    FAILED = "FAILED"  # refused or failed
    UNKNOWN = "UNKNOWN"  # a status we do not know


_FAILED_STATUSES = frozenset(
    {
        OrderStatus.DELEGATE_FAIL,
        OrderStatus.INSUFFICIENT_BALANCE,
        OrderStatus.QUANTITY_TOO_HIGH,
        OrderStatus.QUANTITY_TOO_LOW,
        OrderStatus.ADDRESS_NOT_ACTIVATED,
        OrderStatus.INVALID_ADDRESS,
    }
)
_CONFIRMED = frozenset(
    {
        ConfirmStatus.DELEGATION_CONFIRMED,
        ConfirmStatus.RECLAIM_CONFIRMED,
        ConfirmStatus.RECLAIM_CONFIRMED_FAIL,
    }
)


class Verdict(enum.StrEnum):
    """The coordinator's answer; see "How verification works" in the README."""

    DELIVERED = "DELIVERED"
    UNDER_DELIVERED = "UNDER_DELIVERED"
    NOT_DELIVERED = "NOT_DELIVERED"
    PROVIDER_MISMATCH = "PROVIDER_MISMATCH"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


ENERGY_PER_TRANSFER = 65_000  # Mefree `count` mode: energy for one USDT transfer (providers.md 2.4)


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One intent to buy, validated before anything is sent.

    ``client_order_id`` is fixed when the request is built, so every retry, replay and resume
    of this intent carries the same id.
    """

    target: str
    energy: int | None = None
    transfers: int | None = None
    duration: str = "1h"
    client_order_id: str = ""

    @property
    def expected_energy(self) -> int:
        """The energy this order buys: what spend limits count and delivery is judged by."""
        if self.energy is not None:
            return self.energy
        return (self.transfers or 0) * ENERGY_PER_TRANSFER


class Order(msgspec.Struct, frozen=True, kw_only=True):
    """One provider order, the same shape for every provider; ``raw`` keeps what it sent."""

    provider: str
    id: str
    client_order_id: str | None
    target: str
    energy: int | None
    transfers: int | None = None
    duration: str | None = None
    status: OrderStatus = OrderStatus.UNKNOWN
    confirm_status: ConfirmStatus = ConfirmStatus.UNKNOWN
    activate_status: ActivateStatus = ActivateStatus.UNKNOWN
    delegate_hash: str | None = None  # the first of ``delegate_hashes``, kept for compatibility
    delegate_hashes: tuple[str, ...] = ()  # every delegation tx the provider names for the order
    cost_sun: int | None = None
    activation_cost_sun: int | None = None
    created_at_ms: int | None = None
    expires_at_ms: int | None = None
    balance_after_sun: int | None = None
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    # The phase the adapter read from the provider's own statuses (``None``: CatFee's scheme).
    reported_phase: OrderPhase | None = None

    def __post_init__(self) -> None:
        _check_amounts(self)
        if any(_is_credential(key) for key in self.raw):
            # Stored, printed and journalled: a key the provider echoes must not ride along.
            msgspec.structs.force_setattr(self, "raw", _without_credentials(self.raw))
        # One truth for both names: an adapter may set either, the other follows.
        if self.delegate_hash and not self.delegate_hashes:
            msgspec.structs.force_setattr(self, "delegate_hashes", (self.delegate_hash,))
        elif self.delegate_hashes and self.delegate_hash != self.delegate_hashes[0]:
            msgspec.structs.force_setattr(self, "delegate_hash", self.delegate_hashes[0])

    @property
    def phase(self) -> OrderPhase:
        """The adapter's reading of the provider's statuses (CatFee's scheme when it gave none)."""
        if self.reported_phase is not None:
            return self.reported_phase
        return status_phase(self.status, self.confirm_status)


def status_phase(status: OrderStatus, confirm_status: ConfirmStatus) -> OrderPhase:
    """CatFee's and Mefree's ``status`` / ``confirm_status`` pair as a phase."""
    if confirm_status in _CONFIRMED:
        return OrderPhase.CONFIRMED
    if status in _FAILED_STATUSES or confirm_status is ConfirmStatus.DELEGATION_CONFIRMED_FAIL:
        return OrderPhase.FAILED
    if status is OrderStatus.DELEGATE_SUCCESS:
        return OrderPhase.DELEGATED
    if status in (OrderStatus.PAYMENT_SUCCESS, OrderStatus.TRANSFER_SUCCESS):
        return OrderPhase.PENDING
    return OrderPhase.UNKNOWN


# Keys of a provider's raw order that may hold a credential (matched as parts of the key).
_CREDENTIAL_WORDS = ("key", "secret", "sign", "token", "password", "auth", "credential")
_MAX_AMOUNT = 2**63 - 1  # a journal's INTEGER; any real amount of sun or energy is far below


@functools.lru_cache(maxsize=1024)
def _is_credential(key: object) -> bool:
    # Cached: every order read scans its raw keys, and a provider's keys are a small fixed set.
    name = str(key).lower().replace("-", "_")
    return any(word in name for word in _CREDENTIAL_WORDS) and name not in _RAW_KEEP


# Order fields that contain one of the words but hold no secret.
_RAW_KEEP = frozenset({"sign_type"})


def _without_credentials(raw: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in raw.items() if not _is_credential(key)}


def _check_amounts(order: Order) -> None:
    """Amounts a provider reported that no real order has: a bad response, not a crash later
    (a journal's OverflowError) or a negative price that defeats a spend limit."""
    from energy_async.errors import BadResponse

    for name in ("energy", "transfers", "cost_sun", "activation_cost_sun"):
        value = getattr(order, name)
        if value is not None and not 0 <= value <= _MAX_AMOUNT:
            raise BadResponse(f"{order.provider} reported {name} {value}, which no order has")
    for name in ("created_at_ms", "expires_at_ms", "balance_after_sun"):
        value = getattr(order, name)
        if value is not None and abs(value) > _MAX_AMOUNT:
            raise BadResponse(f"{order.provider} reported {name} {value}, out of range")


class Account(msgspec.Struct, frozen=True, kw_only=True):
    """The provider account: what is left to spend."""

    provider: str
    balance_sun: int | None
    raw: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        # The same bound as an order's ``balance_after_sun``: any sign, within an INTEGER.
        if self.balance_sun is not None and abs(self.balance_sun) > _MAX_AMOUNT:
            _out_of_range(self.provider, "balance_sun", self.balance_sun)


class Quote(msgspec.Struct, frozen=True, kw_only=True):
    """What an order would cost, as the provider prices it now."""

    provider: str
    energy: int | None
    transfers: int | None
    duration: str
    cost_sun: int

    def __post_init__(self) -> None:
        # The router takes the cheapest quote: a negative price would win every route.
        if not 0 <= self.cost_sun <= _MAX_AMOUNT:
            _out_of_range(self.provider, "cost_sun", self.cost_sun)


def _out_of_range(provider: str, name: str, value: int) -> NoReturn:
    from energy_async.errors import BadResponse

    raise BadResponse(f"{provider} reported {name} {value}, out of range")


class ResourceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """``getaccountresource`` for one address at one moment (missing keys read as 0)."""

    address: str
    exists: bool
    energy_limit: int = 0
    energy_used: int = 0
    total_energy_limit: int = 0
    total_energy_weight: int = 0
    taken_at: float = 0.0
    node_time_ms: int | None = None  # the node's clock (its HTTP ``Date``) when it answered

    @property
    def energy_available(self) -> int:
        return max(self.energy_limit - self.energy_used, 0)


class DelegationTx(msgspec.Struct, frozen=True, kw_only=True):
    """What the chain says about one delegation transaction (``delegate_hash``)."""

    txid: str
    found: bool
    contract_type: str | None = None
    owner: str | None = None
    receiver: str | None = None
    resource: str | None = None  # "ENERGY" / "BANDWIDTH" (a missing key on chain is BANDWIDTH)
    balance_sun: int = 0
    lock: bool = False
    lock_period: int = 0
    contract_ret: str | None = None
    in_block: bool = False
    block_number: int | None = None
    block_time_ms: int | None = None
    solid: bool = False
    failed: bool = False
    fail_message: str | None = None
    # Whether the tx is what the node says it is: txID = sha256(raw_data_hex), the signature
    # recovers to the owner, the fields decoded from raw_data_hex equal the JSON ones.
    # None: not checked (no body, or a Permission_id the owner's keys cannot be told from).
    authentic: bool | None = None
    authenticity: str | None = None  # why it is not authentic (or why it was not checked)

    @property
    def half_found(self) -> bool:
        """In a block by its info, yet its body was not served: one node lags the other."""
        return self.in_block and self.contract_type is None


class DelegatedResource(msgspec.Struct, frozen=True, kw_only=True):
    """``getdelegatedresourcev2`` for one delegator -> receiver pair, records summed."""

    from_address: str
    to_address: str
    energy_sun: int = 0
    bandwidth_sun: int = 0
    records: int = 0
    energy_expires_at_ms: int | None = None


class ChainHead(msgspec.Struct, frozen=True, kw_only=True):
    """The node's head block at one moment: the causality anchor read before ordering."""

    number: int
    timestamp_ms: int
    taken_at: float  # our clock (Unix seconds) when the answer arrived


class Basis(enum.StrEnum):
    """What the energy attributed to an order rests on."""

    TX = "TX"  # the order's own delegation txs, priced at the snapshot of the same look
    RECORD_CAPPED = "RECORD_CAPPED"  # the txs, capped by the delegator's record (part reclaimed)
    DELTA = "DELTA"  # the EnergyLimit delta only: no tx named, no other order of ours around
    NONE = "NONE"  # nothing attributable


class Term(msgspec.Struct, frozen=True, kw_only=True):
    """How long the delivered energy is guaranteed, from the chain and from the provider."""

    locked: bool
    lock_period_blocks: int = 0
    locked_until_ms: int | None = None  # block time + lock_period * 3 s, when locked
    record_expires_at_ms: int | None = None  # the delegator's locked record's expiry
    provider_expires_at_ms: int | None = None  # when the provider says the rental ends
    summary: str = ""  # "locked until 14:05 UTC" / "revocable at any time"


class TxFinding(msgspec.Struct, frozen=True, kw_only=True):
    """One named delegation tx: whether it counts for the order, how much, and why."""

    txid: str
    counted: bool
    energy: int = 0
    sun: int = 0
    basis: Basis = Basis.NONE
    reasons: list[str] = msgspec.field(default_factory=list)
    consistent_reads: int = 0  # reads in a row that agreed on what the chain says
    tx: DelegationTx | None = None
    term: Term | None = None


class StatusChange(msgspec.Struct, frozen=True, kw_only=True):
    """One provider status seen by the coordinator, and when."""

    at: float
    status: str
    confirm_status: str
    delegate_hash: str | None = None


class Evidence(msgspec.Struct, kw_only=True):
    """Everything the verdict rests on, so a user can check it without trusting us."""

    energy_before: int | None = None
    energy_after: int | None = None
    energy_delta: int | None = None
    expected_energy: int | None = None
    attributed_energy: int | None = None
    tolerance: int | None = None
    total_energy_limit: int | None = None
    total_energy_weight: int | None = None
    delegation: DelegationTx | None = None
    delegated_resource: DelegatedResource | None = None
    basis: Basis = Basis.NONE
    delegations: list[TxFinding] = msgspec.field(default_factory=list)  # every named tx
    term: Term | None = None
    head_before: ChainHead | None = None  # the causality anchor: the head before ordering
    # ... or, when the node dates its answers, its clock at the read before ordering.
    node_time_before_ms: int | None = None
    status_history: list[StatusChange] = msgspec.field(default_factory=list)
    provider_calls: int = 0
    trongrid_calls: int = 0
    notes: list[str] = msgspec.field(default_factory=list)
    # The router's steps: who quoted what, who was skipped or refused, who was chosen.
    route: list[str] = msgspec.field(default_factory=list)
    started_at: float = 0.0
    ordered_at: float | None = None
    included_at: float | None = None
    settled_at: float | None = None


class DeliveryResult(msgspec.Struct, frozen=True, kw_only=True):
    """The coordinator's verdict on one order, with the order and the evidence behind it."""

    verdict: Verdict
    provider: str
    client_order_id: str
    request: OrderRequest
    order: Order | None
    evidence: Evidence
    error: str | None = None
    # The kind of ``error`` when the provider refused (``"InsufficientBalance"``,
    # ``"AuthenticationError"``, ``"RequestRejected"`` ...): a batch stops when the money does.
    error_kind: str | None = None

    @property
    def delivered(self) -> bool:
        return self.verdict is Verdict.DELIVERED

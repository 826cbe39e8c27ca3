"""One simulated rental provider's books: balance, orders, charges, and how each order is served.

The delegator broadcasts as it takes the order (the transaction goes into the next block, B+1);
the provider shows ``DELEGATE_SUCCESS`` and the hash from B+1 and ``DELEGATION_CONFIRMED`` a
block after the transaction is in one. Statuses are computed when read, from the order and the
chain; nothing runs in the background. The one later action, undelegating at expiry, is done by
``catch_up()``, which the sandbox calls before every request it serves.

Refusals share one code table for both providers (they run the same backend template, and
neither publishes its codes, so these are the sandbox's own); see ``Refusal``.
"""

from __future__ import annotations

import enum
import heapq
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from energy_async.sandbox.base58 import decode_address
from energy_async.sandbox.chain import BLOCK_TIME, SUN_PER_TRX, Chain
from energy_async.sandbox.faults import FaultPlan, ServiceControl

__all__ = [
    "LAG_BLOCKS",
    "MAX_QUANTITY",
    "MIN_QUANTITY",
    "POOL_STAKE_SUN",
    "Delivery",
    "DeliveryPlan",
    "Progress",
    "ProviderSim",
    "Refusal",
    "SimOrder",
]

MIN_QUANTITY = 65_000  # documented minimum
MAX_QUANTITY = 5_000_000  # undocumented; a sane cap
LAG_BLOCKS = 200  # how long a PROVIDER_LAG order keeps its first status
POOL_STAKE_SUN = 1_000_000_000 * SUN_PER_TRX  # the delegator's stake: room for ~146k orders


class Delivery(enum.StrEnum):
    """How the provider serves one order, so tests can stage every way a delivery goes wrong."""

    NORMAL = "NORMAL"
    NEVER_LANDS = "NEVER_LANDS"  # broadcast, never in a block; stays DELEGATE_SUCCESS/UNCONFIRMED
    CLAIM_WITHOUT_DELEGATING = "CLAIM_WITHOUT_DELEGATING"  # confirms a made-up delegate_hash
    PARTIAL = "PARTIAL"  # delegates half the TRX, claims confirmation
    WRONG_RECEIVER = "WRONG_RECEIVER"  # delegates everything to another address, claims it
    REFUSE = "REFUSE"  # the create is refused as INSUFFICIENT_BALANCE, nothing charged
    FAIL_BUT_DELEGATED = "FAIL_BUT_DELEGATED"  # delegates fully, reports DELEGATE_FAIL
    PROVIDER_LAG = "PROVIDER_LAG"  # delegates normally, statuses frozen for LAG_BLOCKS
    # Hostile but plausible: what a verdict must not be fooled by.
    REUSE_EARLIER_TX = "REUSE_EARLIER_TX"  # names the latest earlier delegation to the receiver
    # (its own for an earlier order, or one ``known_delegation`` recorded), delegates nothing
    REFUSE_REPLAY = "REFUSE_REPLAY"  # takes the order; a replay of its id: insufficient balance
    REFUSE_REPLAY_DUPLICATE = "REFUSE_REPLAY_DUPLICATE"  # ... a replay: "order already exists"
    HEX_RECEIVER = "HEX_RECEIVER"  # delegates normally, echoes the receiver as 41-hex


class Refusal(enum.Enum):
    """Business refusals: HTTP 200, ``code != 0``, nothing charged. Value: (code, message)."""

    INVALID_PARAMETER = (1001, "invalid parameter")
    QUANTITY_TOO_LOW = (1002, "quantity is below the minimum of 65000")
    QUANTITY_TOO_HIGH = (1003, "quantity is above the maximum of 5000000")
    INVALID_ADDRESS = (1004, "invalid receiver address")
    ADDRESS_NOT_ACTIVATED = (1005, "receiver address is not activated")
    INVALID_DURATION = (1006, "unsupported rental duration")
    INSUFFICIENT_BALANCE = (1007, "insufficient balance")
    ORDER_NOT_FOUND = (1008, "order not found")
    ORDER_EXISTS = (1009, "order already exists")

    @property
    def code(self) -> int:
        return self.value[0]

    @property
    def message(self) -> str:
        return self.value[1]


class DeliveryPlan:
    """Which ``Delivery`` the next order gets: per target, else a seeded draw, else ``default``."""

    def __init__(self, seed: int = 0) -> None:
        self.default = Delivery.NORMAL
        self._targets: dict[str, Delivery] = {}
        self._rates: dict[Delivery, float] = {}
        self._rng = random.Random(f"delivery:{seed}")

    def for_target(self, address: str, delivery: Delivery) -> None:
        self._targets[address] = Delivery(delivery)

    def set_rate(self, delivery: Delivery, rate: float) -> None:
        """Each order (to a target without its own setting) gets ``delivery`` with ``rate``."""
        if not 0 <= rate <= 1:
            raise ValueError("rate must be between 0 and 1")
        self._rates.pop(Delivery(delivery), None)
        if rate:
            self._rates[Delivery(delivery)] = rate

    def clear(self) -> None:
        self.default = Delivery.NORMAL
        self._targets.clear()
        self._rates.clear()

    def choose(self, target: str) -> Delivery:
        chosen = self._targets.get(target)
        if chosen is not None:
            return chosen
        for delivery, rate in self._rates.items():
            if self._rng.random() < rate:
                return delivery
        return self.default


@dataclass(slots=True)
class SimOrder:
    """What the provider keeps per order; statuses are derived, not stored."""

    key: str  # CatFee ``id`` / Mefree ``pay_hash``
    client_order_id: str | None
    receiver: str
    quantity: int  # energy ordered
    term: int  # the provider's own unit, echoed back: CatFee minutes, Mefree period
    delivery: Delivery
    created_block: int
    created_ms: int
    expires_block: int
    expires_ms: int
    price_sun: int
    activation_sun: int
    balance_after: int
    staked_sun: int  # what an honest delegation of ``quantity`` takes at order time
    delegate_hash: str | None = None  # real, or made up by a liar
    reclaim_hash: str | None = None
    reclaimed_ms: int | None = None

    @property
    def activated_receiver(self) -> bool:
        return self.activation_sun > 0

    @property
    def echoed_receiver(self) -> str:
        """The receiver as the provider writes it back (41-hex for a HEX_RECEIVER order)."""
        if self.delivery is not Delivery.HEX_RECEIVER:
            return self.receiver
        raw = decode_address(self.receiver)
        return raw.hex() if raw is not None else self.receiver


@dataclass(frozen=True, slots=True)
class Progress:
    """An order's statuses as the provider reports them right now."""

    status: str
    confirm_status: str
    delegate_hash: str | None = None
    delegated_ms: int | None = None
    reclaim_hash: str | None = None
    reclaimed_ms: int | None = None


class ProviderSim:
    """A provider account with its delegator pool on the shared chain."""

    def __init__(
        self,
        chain: Chain,
        *,
        name: str,
        api_key: str,
        api_secret: str,
        paid_status: str,
        activation_sun: int,
        balance_sun: int = 100_000 * SUN_PER_TRX,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.chain = chain
        self.api_key = api_key
        self.api_secret = api_secret
        self.paid_status = paid_status  # CatFee PAYMENT_SUCCESS, Mefree TRANSFER_SUCCESS
        self.activation_sun = activation_sun
        self.balance_sun = balance_sun
        self.total_charged_sun = 0
        self.clock_offset = 0.0  # seconds the provider's clock runs ahead of this host's
        self.control = ServiceControl(faults=FaultPlan(seed))
        self.delivery = DeliveryPlan(seed)
        # The pool's stake is part of the network total from the start, as on mainnet.
        weight = chain.total_energy_weight
        self.pool_address = chain.new_account(energy_stake_sun=POOL_STAKE_SUN)
        chain.set_total_energy_weight(weight)
        self.recharge_address = chain.new_address()  # where the account would be topped up
        self._decoy: str | None = None
        self._delegations_to: dict[str, list[str]] = {}  # receiver -> delegation txids
        self._orders: dict[str, SimOrder] = {}
        self._by_client_id: dict[str, SimOrder] = {}
        self._charges: Counter[str | None] = Counter()
        self._consumed: Counter[str] = Counter()
        self._due: list[tuple[int, int, str]] = []  # (expiry block, seq, order key), a heap
        self._seq = 0
        self._rng = random.Random(f"orders:{name}:{seed}")

    def __repr__(self) -> str:
        return f"<ProviderSim {self.name} orders={len(self._orders)}>"

    # -- reading --------------------------------------------------------------------------------

    def now(self) -> float:
        """The provider's clock (Unix seconds): what it checks timestamps against."""
        return time.time() + self.clock_offset

    @property
    def orders(self) -> Mapping[str, SimOrder]:
        return self._orders

    def charges(self, client_order_id: str | None) -> int:
        """How many times orders with this id were charged (``None``: orders without one)."""
        return self._charges[client_order_id]

    def charge_counts(self) -> dict[str | None, int]:
        return dict(self._charges)

    def consumed(self, category: str) -> int:
        """Sun spent per account-page category (``hour``, ``activate``, ...)."""
        return self._consumed[category]

    def progress(self, order: SimOrder) -> Progress:
        self.catch_up()
        head = self.chain.head()
        lagging = (
            order.delivery is Delivery.PROVIDER_LAG and head < order.created_block + LAG_BLOCKS
        )
        if head <= order.created_block or lagging:
            return Progress(self.paid_status, "UNCONFIRMED")
        if order.delivery is Delivery.FAIL_BUT_DELEGATED:
            status, confirm = "DELEGATE_FAIL", "UNCONFIRMED"
        elif self._seen_on_chain(order, order.reclaim_hash, head):
            status, confirm = "DELEGATE_SUCCESS", "RECLAIM_CONFIRMED"
        elif self._seen_on_chain(order, order.delegate_hash, head):
            status, confirm = "DELEGATE_SUCCESS", "DELEGATION_CONFIRMED"
        else:
            status, confirm = "DELEGATE_SUCCESS", "UNCONFIRMED"
        return Progress(
            status,
            confirm,
            order.delegate_hash,
            order.created_ms,
            order.reclaim_hash,
            order.reclaimed_ms,
        )

    def _seen_on_chain(self, order: SimOrder, txid: str | None, head: int) -> bool:
        """Whether the provider believes ``txid`` is in a block (a liar believes its own hashes).

        It notices a block after the fact, like a provider polling its node.
        """
        if txid is None:
            return False
        if order.delivery is Delivery.CLAIM_WITHOUT_DELEGATING:
            return txid == order.reclaim_hash or head >= order.created_block + 2
        block = self.chain.tx_block(txid)
        return block is not None and head > block

    # -- ordering -------------------------------------------------------------------------------

    def place(
        self,
        *,
        client_order_id: str | None,
        receiver: str,
        quantity: int,
        term: int,
        seconds: int,
        price_sun: int,
        category: str,
        activate: bool = True,
    ) -> SimOrder | Refusal:
        """Charge for and record an order, or refuse it; a known ``client_order_id`` replays."""
        self.catch_up()
        if client_order_id is not None:
            earlier = self._by_client_id.get(client_order_id)
            if earlier is not None:
                if earlier.delivery is Delivery.REFUSE_REPLAY:
                    return Refusal.INSUFFICIENT_BALANCE
                if earlier.delivery is Delivery.REFUSE_REPLAY_DUPLICATE:
                    return Refusal.ORDER_EXISTS
                return earlier
        delivery = self.delivery.choose(receiver)
        if delivery is Delivery.REFUSE:
            return Refusal.INSUFFICIENT_BALANCE
        activation = 0
        if not self.chain.is_activated(receiver):
            if not activate:
                return Refusal.ADDRESS_NOT_ACTIVATED
            activation = self.activation_sun
        if price_sun + activation > self.balance_sun:
            return Refusal.INSUFFICIENT_BALANCE
        if activation:
            self.chain.activate(receiver)
        cost = price_sun + activation
        head = self.chain.head()
        now_ms = int(self.chain.clock.now() * 1000)
        order = SimOrder(
            key=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            client_order_id=client_order_id,
            receiver=receiver,
            quantity=quantity,
            term=term,
            delivery=delivery,
            created_block=head,
            created_ms=now_ms,
            expires_block=head + math.ceil(seconds / BLOCK_TIME),
            expires_ms=now_ms + seconds * 1000,
            price_sun=price_sun,
            activation_sun=activation,
            balance_after=self.balance_sun - cost,
            staked_sun=self.sun_for(quantity),
        )
        # Broadcast before charging: should the chain reject it, nothing was bought.
        order.delegate_hash = self._delegate(order)
        self.balance_sun -= cost
        self.total_charged_sun += cost
        self._charges[client_order_id] += 1
        self._consumed[category] += price_sun
        self._consumed["activate"] += activation
        self._orders[order.key] = order
        if client_order_id is not None:
            self._by_client_id[client_order_id] = order
        self._schedule_reclaim(order.expires_block, order.key)
        return order

    def known_delegation(self, receiver: str, txid: str) -> None:
        """Record a delegation to ``receiver`` (anyone's) a REUSE_EARLIER_TX order may name."""
        self._delegations_to.setdefault(receiver, []).append(txid)

    def sun_for(self, energy: int) -> int:
        """Whole TRX, rounded up, whose stake gives at least ``energy`` at the current totals."""
        ratio = self.chain.total_energy_limit / self.chain.total_energy_weight
        trx = max(1, math.ceil(energy / ratio))
        while int(trx * ratio) < energy:  # EnergyProcessor's double arithmetic, then truncation
            trx += 1
        return trx * SUN_PER_TRX

    # -- the delegator ----------------------------------------------------------------------------

    def next_due_block(self) -> int | None:
        return self._due[0][0] if self._due else None

    def catch_up(self) -> None:
        """Undelegate every order that expired at or before the head block."""
        if not self._due:
            return
        head = self.chain.head()
        while self._due and self._due[0][0] <= head:
            _, _, key = heapq.heappop(self._due)
            self._reclaim(self._orders[key], head)

    def _schedule_reclaim(self, block: int, key: str) -> None:
        self._seq += 1
        heapq.heappush(self._due, (block, self._seq, key))

    def _delegate(self, order: SimOrder) -> str:
        """Broadcast the order's delegation as its ``delivery`` says; the hash to report."""
        delivery = order.delivery
        if delivery is Delivery.CLAIM_WITHOUT_DELEGATING:
            return self._rng.randbytes(32).hex()
        earlier = self._delegations_to.get(order.receiver)
        if delivery is Delivery.REUSE_EARLIER_TX and earlier:
            return earlier[-1]
        receiver, amount = order.receiver, order.staked_sun
        if delivery is Delivery.PARTIAL:
            amount = max(SUN_PER_TRX, amount // SUN_PER_TRX // 2 * SUN_PER_TRX)
        elif delivery is Delivery.WRONG_RECEIVER:
            receiver = self._decoy_address()
        lands = delivery is not Delivery.NEVER_LANDS
        txid = self.chain.delegate(self.pool_address, receiver, amount, lands=lands)
        self.known_delegation(receiver, txid)
        return txid

    def _reclaim(self, order: SimOrder, head: int) -> None:
        reused = order.delivery is Delivery.REUSE_EARLIER_TX
        if order.delivery is Delivery.NEVER_LANDS or order.delegate_hash is None or reused:
            return
        if order.delivery is Delivery.CLAIM_WITHOUT_DELEGATING:
            order.reclaim_hash = self._rng.randbytes(32).hex()
        else:
            tx = self.chain.transaction(order.delegate_hash)
            if tx is None or self.chain.tx_block(order.delegate_hash) is None:
                self._schedule_reclaim(head + 1, order.key)  # not in a block yet
                return
            order.reclaim_hash = self.chain.undelegate(tx.owner, tx.receiver, tx.balance)
        order.reclaimed_ms = int(self.chain.clock.now() * 1000)

    def _decoy_address(self) -> str:
        if self._decoy is None:
            self._decoy = self.chain.new_account()
        return self._decoy

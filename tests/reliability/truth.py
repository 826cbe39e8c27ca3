"""Ground truth for the reliability tests: the sandbox's own books, never the library's word.

What the provider charged, how it chose to serve each order, and what the chain really
included are read straight from the sandbox's memory. The verdict every order *should* get
follows from those books alone, so a test compares the library's verdicts against them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from energy_async import OrderRequest, Verdict
from energy_async.sandbox import Delivery, Fault, Sandbox
from energy_async.sandbox.chain import ResourceStake, resource_limit
from energy_async.sandbox.faults import ActiveFault, FaultPlan
from energy_async.sandbox.provider_core import ProviderSim, SimOrder

__all__ = ["Audit", "CountingFaultPlan", "StagedFaults", "audit", "stage_faults"]

PROVIDER_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.BAD_GATEWAY, Fault.LATENCY)
TRONGRID_FAULTS = (
    Fault.THROTTLE_429,
    Fault.THROTTLE_503,
    Fault.THROTTLE_403,
    Fault.NODE_BUSY,
    Fault.LATENCY,
)


class CountingFaultPlan(FaultPlan):
    """A fault plan that also counts what it dealt, so a test can show the faults really hit."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.dealt: Counter[Fault] = Counter()

    def draw(self, endpoint: str, allowed: frozenset[Fault] | None = None) -> ActiveFault | None:
        fault = super().draw(endpoint, allowed)
        if fault is not None:
            self.dealt[fault.fault] += 1
        return fault


@dataclass(frozen=True, slots=True)
class StagedFaults:
    provider: CountingFaultPlan
    trongrid: CountingFaultPlan
    staged: tuple[str, ...]  # what was switched on, named as in ``dealt``

    name: str = "catfee"  # the provider the faults were staged on

    def dealt(self) -> Counter[str]:
        """Faults dealt so far, named by service (``catfee:RATE_LIMIT``, ...)."""
        tally: Counter[str] = Counter()
        for service, plan in ((self.name, self.provider), ("trongrid", self.trongrid)):
            tally.update({f"{service}:{fault}": n for fault, n in plan.dealt.items()})
        return tally


def stage_faults(
    sandbox: Sandbox,
    rate: float,
    *,
    delay: float,
    retry_after: float,
    seed: int,
    trongrid_endpoints: tuple[str, ...] = ("any",),
    provider_name: str = "catfee",
) -> StagedFaults:
    """Switch on every fault of the issue at ``rate`` each, on one provider and TronGrid.

    429 (tiny ``Retry-After``), 500, 502 and slow answers on every provider endpoint, lost
    responses on creates; TronGrid throttling (403/429/503), busy nodes and slow answers; and
    broadcasts that never land. ``trongrid_endpoints`` narrows where TronGrid misbehaves.
    Request logs are switched off so memory stays flat.
    """
    provider = CountingFaultPlan(seed)
    trongrid = CountingFaultPlan(seed + 1)
    for fault in PROVIDER_FAULTS:
        provider.set_rate(fault, rate, delay=delay, retry_after=retry_after)
    provider.set_rate(Fault.LOST_RESPONSE, rate, endpoint="create")
    for fault in TRONGRID_FAULTS:
        for endpoint in trongrid_endpoints:
            trongrid.set_rate(fault, rate, endpoint=endpoint, delay=delay, retry_after=retry_after)
    sim = sandbox.providers[provider_name]
    sim.control.faults = provider
    sim.control.keep_log = False
    sandbox.trongrid.faults = trongrid
    sandbox.trongrid.keep_log = False
    sim.delivery.set_rate(Delivery.NEVER_LANDS, rate)
    staged = (
        *(f"{provider_name}:{fault}" for fault in (*PROVIDER_FAULTS, Fault.LOST_RESPONSE)),
        *(f"trongrid:{fault}" for fault in TRONGRID_FAULTS),
    )
    return StagedFaults(provider, trongrid, staged, provider_name)


@dataclass(slots=True)
class Audit:
    """Every way the library's verdicts disagree with the sandbox's books (empty lists: none)."""

    verdicts: Counter[Verdict] = field(default_factory=Counter)
    charged: int = 0
    duplicate_charges: dict[str, int] = field(default_factory=dict)
    foreign_charges: list[str | None] = field(default_factory=list)  # charged, never asked for
    unsettled: list[str] = field(default_factory=list)  # asked for, no verdict (or UNKNOWN)
    false_delivered: list[str] = field(default_factory=list)
    wrong_verdicts: list[tuple[str, Verdict, Verdict]] = field(default_factory=list)
    never_lands: int = 0

    def summary(self) -> str:
        mix = " ".join(f"{verdict}={n}" for verdict, n in sorted(self.verdicts.items()))
        return f"{mix} charged={self.charged} never_lands={self.never_lands}"


def audit(
    sandbox: Sandbox,
    sim: ProviderSim,
    requests: Mapping[str, OrderRequest],
    verdicts: Mapping[str, Verdict],
    named_hashes: Mapping[str, str | None] | None = None,
    *,
    by_receiver: bool = False,
) -> Audit:
    """Judge ``verdicts`` (client_order_id -> verdict) for ``requests`` by the sandbox's books.

    The verdict an order should get: charged and served normally -> DELIVERED (the chain
    included its delegation); charged but the broadcast never landed -> NOT_DELIVERED; never
    charged -> REJECTED (nothing was bought, e.g. the target could not be read before ordering).
    ``named_hashes`` (client_order_id -> the delegation tx the library's evidence names, if any)
    must name the order's own tx wherever a DELIVERED names one (a delivery seen before the
    provider named its tx is proven by the EnergyLimit delta instead).

    ``by_receiver``: the provider keeps no client id (TronSave), so each request must have a
    target of its own, and the orders to that target are its charges.
    """
    result = Audit(verdicts=Counter(verdicts.values()))
    if by_receiver:
        charges, books = _books_by_receiver(sim, requests)
    else:
        charges = sim.charge_counts()
        books = {order.client_order_id: order for order in sim.orders.values()}
    result.charged = len(charges)
    result.duplicate_charges = {str(cid): n for cid, n in charges.items() if n > 1}
    result.foreign_charges = [cid for cid in charges if cid not in requests]
    result.unsettled = [
        cid for cid in requests if verdicts.get(cid, Verdict.UNKNOWN) is Verdict.UNKNOWN
    ]
    for cid, verdict in verdicts.items():
        order = books.get(cid)
        if verdict is Verdict.DELIVERED and (
            order is None
            or not _landed(sandbox, sim, order)
            or (
                named_hashes is not None
                and named_hashes.get(cid) not in (None, order.delegate_hash)
            )
        ):
            result.false_delivered.append(cid)
        if order is not None and order.delivery is Delivery.NEVER_LANDS:
            result.never_lands += 1
        expected = _deserved(order)
        if verdict is not expected:
            result.wrong_verdicts.append((cid, verdict, expected))
    return result


def _books_by_receiver(
    sim: ProviderSim, requests: Mapping[str, OrderRequest]
) -> tuple[dict[str | None, int], dict[str | None, SimOrder]]:
    by_target = {request.target: cid for cid, request in requests.items()}
    assert len(by_target) == len(requests), "by_receiver needs a target per request"
    charges: Counter[str | None] = Counter()
    books: dict[str | None, SimOrder] = {}
    for order in sim.orders.values():
        cid = by_target.get(order.receiver)  # None: an order nobody asked for
        charges[cid] += 1
        books.setdefault(cid, order)
    return dict(charges), books


def _deserved(order: SimOrder | None) -> Verdict:
    if order is None:
        return Verdict.REJECTED
    if order.delivery is Delivery.NEVER_LANDS:
        return Verdict.NOT_DELIVERED
    if order.delivery is Delivery.NORMAL:
        return Verdict.DELIVERED
    raise AssertionError(f"delivery {order.delivery} was not staged")


def _landed(sandbox: Sandbox, sim: ProviderSim, order: SimOrder) -> bool:
    """The chain included this order's delegation: energy, to its receiver, the full amount."""
    chain = sandbox.chain
    txid = order.delegate_hash
    if txid is None or chain.tx_state(txid) not in ("included", "solid"):
        return False
    tx = chain.transaction(txid)
    if tx is None or tx.contract_type != "DelegateResourceContract" or tx.resource != "ENERGY":
        return False
    if tx.owner != sim.pool_address or tx.receiver != order.receiver:
        return False
    # What the node makes of that stake (no drift is staged, so the totals are those of the
    # order's block too).
    stake = ResourceStake(frozen=tx.balance)
    energy = resource_limit(stake, chain.total_energy_limit, chain.total_energy_weight)
    return tx.balance == order.staked_sun and energy >= order.quantity

"""A provider that may fill one order from two delegators (TEnergy, iTRX, TronSave split fills).

`SplitSim` is a `ProviderSim` with a second delegator pool. An order to a target marked with
``split_for`` is delegated in two transactions, about half from each pool; both hashes are the
order's (``hashes``), both are reclaimed at expiry. Every other order is served as usual.
"""

from __future__ import annotations

from typing import Any

from energy_async.sandbox.chain import SUN_PER_TRX, Chain
from energy_async.sandbox.provider_core import (
    POOL_STAKE_SUN,
    Delivery,
    ProviderSim,
    Refusal,
    SimOrder,
)

__all__ = ["SplitSim"]


class SplitSim(ProviderSim):
    """A provider account with two delegator pools on the shared chain."""

    def __init__(
        self,
        chain: Chain,
        *,
        name: str,
        api_key: str,
        api_secret: str,
        paid_status: str,
        activation_sun: int,
        seed: int = 0,
    ) -> None:
        super().__init__(
            chain,
            name=name,
            api_key=api_key,
            api_secret=api_secret,
            paid_status=paid_status,
            activation_sun=activation_sun,
            seed=seed,
        )
        weight = chain.total_energy_weight
        self.second_pool = chain.new_account(energy_stake_sun=POOL_STAKE_SUN)
        chain.set_total_energy_weight(weight)
        self._split_targets: set[str] = set()
        self._extra: dict[str, list[str]] = {}  # order key -> the second pool's delegation

    def split_for(self, target: str) -> None:
        """Fill every later order to ``target`` from both pools."""
        self._split_targets.add(target)

    def place_again(self, *, client_order_id: str | None, **order: Any) -> SimOrder | Refusal:
        """Place an order that a repeated ``client_order_id`` does **not** de-duplicate: the
        id is only a label (iTRX ``out_trade_no``), and a repeat charges again."""
        placed = self.place(client_order_id=None, **order)
        if isinstance(placed, SimOrder) and client_order_id is not None:
            placed.client_order_id = client_order_id
            self._charges[None] -= 1
            if not self._charges[None]:
                del self._charges[None]
            self._charges[client_order_id] += 1
        return placed

    def hashes(self, order: SimOrder) -> list[str]:
        """Every delegation the order was filled with, in order."""
        first = [order.delegate_hash] if order.delegate_hash else []
        return first + self._extra.get(order.key, [])

    def _delegate(self, order: SimOrder) -> str:
        if order.receiver not in self._split_targets or order.delivery is not Delivery.NORMAL:
            return super()._delegate(order)
        whole_trx = order.staked_sun // SUN_PER_TRX
        first = max(1, whole_trx // 2) * SUN_PER_TRX
        second = order.staked_sun - first
        txid = self.chain.delegate(self.pool_address, order.receiver, first)
        if second >= SUN_PER_TRX:
            self._extra[order.key] = [self.chain.delegate(self.second_pool, order.receiver, second)]
        return txid

    def _reclaim(self, order: SimOrder, head: int) -> None:
        extras = self._extra.get(order.key, [])
        pending = [txid for txid in extras if self.chain.tx_block(txid) is None]
        if pending:
            self._schedule_reclaim(head + 1, order.key)
            return
        already = order.reclaim_hash is not None
        super()._reclaim(order, head)
        if already or order.reclaim_hash is None:
            return
        for txid in extras:
            tx = self.chain.transaction(txid)
            if tx is not None:
                self.chain.undelegate(tx.owner, tx.receiver, tx.balance)

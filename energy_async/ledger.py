"""Our own orders per target: who watched which address when, and which txs each was credited.

A delegation counts for an order only if no other order of ours has it (exclusivity), and a
raw EnergyLimit delta may speak for an order only if no other order of ours touched the address
in its window. Both questions need a memory of *every* order's window, not only of those in
flight now: an order that settled a second ago still owns its delegation, and one that ended
without a proven delegation may still see it land.

One process-wide default (:data:`DEFAULT_LEDGER`) serves every Coordinator that is given none;
tests and batches pass their own. A resumed batch rebuilds the ledger from its journal
(:meth:`OrderLedger.remember`), so exclusivity holds across every resume. A worker sharing a
PostgreSQL journal also learns the windows of the other workers' orders to the targets it
claims (:meth:`OrderLedger.learn`); exclusivity across workers is the journal's (``credits``).
The ledger is plain in-memory state and every method is synchronous: under anyio's
single-threaded scheduling a claim is atomic.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from energy_async.models import DeliveryResult, Verdict

__all__ = ["DEFAULT_LEDGER", "OrderLedger", "Window", "lingers"]

# How long a settled window is remembered: far beyond any order's watch, so a delta seen by a
# later order is never taken for its own while an earlier one could still explain it.
_RETENTION = 24 * 3600.0


@dataclass(slots=True)
class Window:
    """One order's watch over its target, in Unix seconds (``end`` is None while watched)."""

    key: str  # the order's client_order_id
    target: str
    start: float
    end: float | None = None
    credited: set[str] = field(default_factory=set)
    # Ended without its delegation proven (nor proven never bought): it may still land at
    # any time, so the order keeps touching its target.
    lingers: bool = False


@dataclass(slots=True)
class OrderLedger:
    """Windows and credited txs of our orders, per target address."""

    _windows: dict[str, dict[str, Window]] = field(default_factory=dict)  # target -> key -> w
    _by_key: dict[str, Window] = field(default_factory=dict)
    _owners: dict[str, str] = field(default_factory=dict)  # txid -> client_order_id
    _learnt: dict[str, set[str]] = field(default_factory=dict)  # target -> keys (`learn`)

    def open(self, key: str, target: str, start: float | None = None) -> Window:
        """Start (or re-open, on resume) the window of order ``key`` to ``target``."""
        windows = self._windows.setdefault(target, {})
        self._learnt.get(target, set()).discard(key)  # watched here from now on
        window = windows.get(key)
        if window is None:
            window = Window(key, target, time.time() if start is None else start)
            windows[key] = self._by_key[key] = window
        else:
            window.end = None
        return window

    def close(self, window: Window, *, lingers: bool, end: float | None = None) -> None:
        window.end = time.time() if end is None else end
        window.lingers = lingers
        self._prune(window.target, window.end)

    def claim(self, txid: str, key: str) -> str:
        """Credit ``txid`` to order ``key`` unless another order has it; returns its owner."""
        owner = self._owners.setdefault(txid, key)
        window = self._by_key.get(key)
        if owner == key and window is not None:
            window.credited.add(txid)
        return owner

    def owner(self, txid: str) -> str | None:
        return self._owners.get(txid)

    def cede(self, txid: str, key: str, holder: str) -> None:
        """``txid`` belongs to ``holder`` (the shared journal says so), not to order ``key``.

        Another worker's order claimed it first: this process learns the owner, so every
        later look of ours sees the tx as taken.
        """
        self._owners[txid] = holder
        window = self._by_key.get(key)
        if window is not None:
            window.credited.discard(txid)
        other = self._by_key.get(holder)
        if other is not None:
            other.credited.add(txid)

    def others_touched(self, key: str, target: str, start: float, end: float) -> list[str]:
        """Other orders of ours to ``target`` whose window meets ``[start, end]``.

        An order that ended without a delivery proven by its own txs is treated as still
        touching the address: its delegation may land at any time.
        """
        touched = []
        for other in self._windows.get(target, {}).values():
            if other.key == key or other.start > end:
                continue
            other_end = other.end if other.end is not None and not other.lingers else math.inf
            if other_end >= start:
                touched.append(other.key)
        return touched

    def learn(self, target: str, windows: Sequence[Window], *, own: Collection[str] = ()) -> None:
        """Replace what this process knows of other workers' orders to ``target``.

        ``windows``: the shared journal's orders to ``target`` that may touch it (in flight
        elsewhere, or ended without a proven delivery), read just now; learnt windows no
        longer among them are forgotten. Orders this process watches (``own``, or any window
        it opened itself) keep their own window.
        """
        here = self._windows.setdefault(target, {})
        learnt = self._learnt.get(target, set())
        fresh = {window.key: window for window in windows if window.key not in own}
        for key in learnt - fresh.keys():
            here.pop(key, None)
            self._by_key.pop(key, None)
        kept = set()
        for key, window in fresh.items():
            if key in here and key not in learnt:
                continue  # this process's own window
            here[key] = self._by_key[key] = window
            kept.add(key)
        self._learnt[target] = kept

    def remember(self, result: DeliveryResult) -> None:
        """Rebuild one settled order from its journaled result (window and credited txs)."""
        evidence = result.evidence
        window = self.open(result.client_order_id, result.request.target, evidence.started_at)
        for finding in evidence.delegations:
            if finding.counted:
                self.claim(finding.txid, result.client_order_id)
        self.close(
            window,
            lingers=lingers(result),
            end=evidence.settled_at or evidence.started_at,
        )

    def _prune(self, target: str, now: float) -> None:
        windows = self._windows.get(target)
        if not windows:
            return
        stale = [
            key
            for key, window in windows.items()
            if window.end is not None and window.end < now - _RETENTION
        ]
        for key in stale:
            self._by_key.pop(key, None)
            for txid in windows.pop(key).credited:
                self._owners.pop(txid, None)


def lingers(result: DeliveryResult) -> bool:
    """Whether a settled order may still touch its target: neither its delegation was proven
    nor was it proven that nothing was bought."""
    if result.verdict is Verdict.REJECTED and result.order is None:
        return False
    return not any(finding.counted for finding in result.evidence.delegations)


DEFAULT_LEDGER = OrderLedger()

"""What a person reads: one result as a short report, a batch's progress line and summary.

Everything here writes to a text stream given by the caller (stderr in the CLI), so stdout stays
clean for ``--json``.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TextIO

from energy_async.energy import SUN_PER_TRX
from energy_async.models import DeliveryResult, Order, ResourceSnapshot, Verdict

__all__ = ["Progress", "render_order", "render_result", "render_snapshot", "render_summary"]


def _trx(sun: int | None) -> str:
    return "?" if sun is None else f"{sun / SUN_PER_TRX:,.6f}".rstrip("0").rstrip(".") + " TRX"


def _num(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def render_result(result: DeliveryResult) -> str:
    """A verdict and the evidence behind it, in a dozen lines."""
    evidence = result.evidence
    order = result.order
    request = result.request
    amount = f"{request.energy:,} energy" if request.energy else f"{request.transfers} transfer(s)"
    lines = [
        f"{result.provider} order {order.id if order else '(none)'} -> {result.verdict}",
        f"  client_order_id {result.client_order_id}",
        f"  target          {request.target}",
        f"  ordered         {amount} for {request.duration}"
        + (f", cost {_trx(order.cost_sun)}" if order and order.cost_sun is not None else ""),
    ]
    delta = evidence.energy_delta
    lines.append(
        f"  energy          before {_num(evidence.energy_before)} -> after "
        f"{_num(evidence.energy_after)}"
        + (f" ({delta:+,})" if delta is not None else "")
        + f"; expected {_num(evidence.expected_energy)} (tolerance {_num(evidence.tolerance)})"
        + "; this order's "
        + (_num(evidence.attributed_energy) if evidence.attributed_energy else "none")
    )
    tx = evidence.delegation
    if tx is not None:
        if not tx.found:
            lines.append(f"  delegation tx   {tx.txid}: not found on chain")
        else:
            where = (
                f"in block {tx.block_number}" + (" (solid)" if tx.solid else "")
                if tx.in_block
                else "not in a block"
            )
            lines.append(
                f"  delegation tx   {tx.txid} {where}: {_trx(tx.balance_sun)} of "
                f"{tx.resource} from {tx.owner} to {tx.receiver}"
            )
    record = evidence.delegated_resource
    if record is not None:
        lines.append(
            f"  delegated now   {_trx(record.energy_sun)} for energy "
            f"({record.records} record(s)) {record.from_address} -> {record.to_address}"
        )
    if evidence.status_history:
        start = evidence.started_at
        steps = " -> ".join(
            f"{change.status}/{change.confirm_status} (+{change.at - start:.1f} s)"
            for change in evidence.status_history
        )
        lines.append(f"  provider said   {steps}")
    lines.append(
        f"  calls           provider {evidence.provider_calls}, TronGrid {evidence.trongrid_calls}"
    )
    lines.append("  timings         " + _timings(result))
    if result.error:
        lines.append(f"  error           {result.error}")
    lines.extend(f"  note            {note}" for note in evidence.notes)
    return "\n".join(lines)


def _timings(result: DeliveryResult) -> str:
    evidence = result.evidence
    start = evidence.started_at
    parts = []
    for label, moment in (
        ("ordered", evidence.ordered_at),
        ("on chain", evidence.included_at),
        ("verdict", evidence.settled_at),
    ):
        if moment is not None:
            parts.append(f"{label} +{moment - start:.2f} s")
    return ", ".join(parts) or "-"


def render_order(order: Order) -> str:
    return "\n".join(
        [
            f"{order.provider} order {order.id}",
            f"  client_order_id {order.client_order_id}",
            f"  target          {order.target}",
            f"  energy          {_num(order.energy)} for {order.duration}",
            f"  status          {order.status} / {order.confirm_status} ({order.phase})",
            f"  delegate_hash   {order.delegate_hash or '-'}",
            f"  cost            {_trx(order.cost_sun)}",
        ]
    )


def render_snapshot(snapshot: ResourceSnapshot) -> str:
    if not snapshot.exists:
        return f"{snapshot.address}: no account on chain (not activated)"
    return (
        f"{snapshot.address}: energy {snapshot.energy_available:,} available "
        f"(limit {snapshot.energy_limit:,}, used {snapshot.energy_used:,}); network "
        f"TotalEnergyLimit {snapshot.total_energy_limit:,}, "
        f"TotalEnergyWeight {snapshot.total_energy_weight:,}"
    )


class Progress:
    """A one-line progress display: done of total, delivered, failed, rate, ETA.

    On a terminal it redraws in place; elsewhere (logs, CI) it prints a line now and then.
    """

    def __init__(self, total: int, stream: TextIO, *, every: float | None = None) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every if every is not None else (0.2 if self.tty else 5.0)
        self.started = time.monotonic()
        self.verdicts: Counter[Verdict] = Counter()
        self.energy = 0
        self.cost_sun = 0
        self._shown = 0.0

    @property
    def done(self) -> int:
        return sum(self.verdicts.values())

    def add(self, result: DeliveryResult) -> None:
        self.verdicts[result.verdict] += 1
        if result.verdict is Verdict.DELIVERED:
            self.energy += result.evidence.attributed_energy or 0
        if result.order is not None and result.order.cost_sun:
            self.cost_sun += result.order.cost_sun
        now = time.monotonic()
        if now - self._shown >= self.every or self.done == self.total:
            self._shown = now
            self.show()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.done
        rate = done / elapsed
        left = max(self.total - done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 and left else "-"
        failed = done - self.verdicts[Verdict.DELIVERED]
        width = 24
        filled = int(width * done / self.total) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        return (
            f"[{bar}] {done}/{self.total} delivered {self.verdicts[Verdict.DELIVERED]} "
            f"failed {failed} {rate:.1f}/s ETA {eta}"
        )

    def show(self) -> None:
        if self.tty:
            self.stream.write("\r" + self.line() + "\x1b[K")
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def render_summary(progress: Progress, stop_reason: str | None = None) -> str:
    elapsed = time.monotonic() - progress.started
    rows = [(str(verdict), count) for verdict, count in sorted(progress.verdicts.items())]
    width = max([len(name) for name, _ in rows] + [7])
    lines = ["", f"{'verdict':<{width}}  orders", f"{'-' * width}  ------"]
    lines += [f"{name:<{width}}  {count:>6}" for name, count in rows]
    lines.append(f"{'total':<{width}}  {progress.done:>6}")
    lines.append(
        f"energy delivered {progress.energy:,}; cost {_trx(progress.cost_sun)}; "
        f"{elapsed:.1f} s ({progress.done / max(elapsed, 1e-9):.1f} orders/s)"
    )
    if stop_reason:
        lines.append(f"stopped sending new orders: {stop_reason}")
    return "\n".join(lines)

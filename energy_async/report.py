"""What a person reads: one result as a short report, a batch's progress line and summary.

Everything here writes to a text stream given by the caller (stderr in the CLI), so stdout stays
clean for ``--json``.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TextIO

from energy_async.energy import SUN_PER_TRX
from energy_async.models import DeliveryResult, Order, ResourceSnapshot, Verdict

__all__ = [
    "BatchSummary",
    "Progress",
    "ReportWriter",
    "render_order",
    "render_result",
    "render_snapshot",
    "render_summary",
    "trx",
]


def trx(sun: int | None) -> str:
    """Sun as TRX for people: ``1.105 TRX``; ``?`` when unknown."""
    return "?" if sun is None else f"{sun / SUN_PER_TRX:,.6f}".rstrip("0").rstrip(".") + " TRX"


_trx = trx


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

    def __init__(
        self,
        total: int,
        stream: TextIO,
        *,
        every: float | None = None,
        on_gone: Callable[[], None] | None = None,
    ) -> None:
        self.total = total
        self.stream = stream
        try:
            self.tty = stream.isatty()
        except (OSError, ValueError):  # a closed stream: nothing will be drawn on it
            self.tty = False
        # Set once the stream cannot be written (``2>&1 | head``, a closed file): drawing stops
        # for good, the batch never does. ``on_gone`` is told once, to silence the stream.
        self.gone = False
        self._on_gone = on_gone
        self.every = every if every is not None else (0.2 if self.tty else 5.0)
        self.started = time.monotonic()
        self.verdicts: Counter[Verdict] = Counter()
        self.energy = 0
        self.cost_sun = 0
        self.skipped = 0  # not sent
        self.unsettled = 0  # sent, left unsettled by a stop: --resume finishes them
        self.in_flight = 0
        self._shown = 0.0

    @property
    def done(self) -> int:
        return sum(self.verdicts.values())

    def skip(self, *, sent: bool = False) -> None:
        """A row the batch did not settle: not sent, or (``sent``) left unsettled by a stop."""
        if sent:
            self.unsettled += 1
        else:
            self.skipped += 1
        self._maybe_show()

    def add(self, result: DeliveryResult) -> None:
        self.verdicts[result.verdict] += 1
        if result.verdict is Verdict.DELIVERED:
            self.energy += result.evidence.attributed_energy or 0
        if result.order is not None and result.order.cost_sun:
            self.cost_sun += result.order.cost_sun
        self._maybe_show()

    def _maybe_show(self) -> None:
        now = time.monotonic()
        if now - self._shown >= self.every or self._finished:
            self.show()

    @property
    def _finished(self) -> bool:
        return self.done + self.skipped + self.unsettled >= self.total

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        done = self.done + self.skipped + self.unsettled
        in_flight = 0 if self._finished else self.in_flight  # the last count may be stale
        rate = self.done / elapsed
        left = max(self.total - done, 0)
        eta = f"{left / rate:.0f} s" if rate > 0 and left else "-"
        width = 24
        filled = min(int(width * done / self.total), width) if self.total else width
        bar = "#" * filled + "." * (width - filled)
        others = " ".join(
            f"{verdict.lower()} {count}"
            for verdict, count in sorted(self.verdicts.items())
            if verdict is not Verdict.DELIVERED and count
        )
        return (
            f"[{bar}] {done}/{self.total} in flight {in_flight} delivered "
            f"{self.verdicts[Verdict.DELIVERED]}"
            + (f" {others}" if others else "")
            + (f" not sent {self.skipped}" if self.skipped else "")
            + (f" unsettled {self.unsettled}" if self.unsettled else "")
            + f" {rate:.1f}/s ETA {eta}"
        )

    def show(self) -> None:
        self._shown = time.monotonic()
        if self.tty:
            self._write("\r" + self.line() + "\x1b[K")
        else:
            self._write(self.line() + "\n")

    def finish(self) -> None:
        if self.tty:
            self._write("\n")

    def _write(self, text: str) -> None:
        """Draw, unless nobody reads any more: a failed write (EPIPE, a closed file, a full
        disk) is a display that went away, never a reason to stop the orders in flight."""
        if self.gone:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.gone = True
            if self._on_gone is not None:
                self._on_gone()


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


# Verdicts for which money was paid and energy did not (fully) arrive.
_PAID_FOR_NOTHING = (Verdict.PROVIDER_MISMATCH, Verdict.NOT_DELIVERED)
_MAX_ROWS_NAMED = 1_000  # rows named in the summary; the --report file names every one


class BatchSummary:
    """What a treasurer needs after a batch: counts, every row that went wrong and why, the
    money paid for energy that did not arrive, and the rows not sent."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []  # id, target, verdict, reason
        self.more_rows = 0
        self.unsettled_ids: list[str] = []
        self.not_sent: dict[str, list[str]] = {}  # reason: the client_order_ids not sent
        self.service_down = 0
        self.credentials_refused = False
        self.unknown = 0
        self.unsettled = 0
        self.other = 0
        self.paid_for_nothing_sun = 0

    def add(self, outcome: object) -> None:
        from energy_async.batch import Skipped

        if isinstance(outcome, Skipped):
            if outcome.sent:
                self.unsettled += 1
                self.unsettled_ids.append(outcome.client_order_id)
                self._name(
                    outcome.client_order_id, outcome.request.target, "UNSETTLED", outcome.reason
                )
            else:
                self.not_sent.setdefault(outcome.reason, []).append(outcome.client_order_id)
                self.service_down += outcome.service_down
            self.credentials_refused |= outcome.reason.startswith("credentials refused")
            return
        assert isinstance(outcome, DeliveryResult)
        verdict = outcome.verdict
        if verdict is Verdict.DELIVERED:
            return
        if verdict is Verdict.UNKNOWN:
            self.unknown += 1
            self.unsettled_ids.append(outcome.client_order_id)
        else:
            self.other += 1
        self.paid_for_nothing_sun += _paid_for_nothing(outcome)
        self._name(outcome.client_order_id, outcome.request.target, verdict, _reason(outcome))

    def _name(self, cid: str, target: str, verdict: str, reason: str) -> None:
        if len(self.rows) < _MAX_ROWS_NAMED:
            self.rows.append((cid, target, str(verdict), reason))
        else:
            self.more_rows += 1

    def named_ids(self) -> set[str]:
        """Every client_order_id the summary names: rows not DELIVERED, and rows not sent."""
        named = {row[0] for row in self.rows}
        for ids in self.not_sent.values():
            named.update(ids)
        return named

    def exit_code(self) -> int:
        """3 if anything is UNKNOWN or unsettled, else 2 if the credentials were refused, else
        4 if rows were not sent because a service was down, else 1 if anything is not DELIVERED
        or not sent, else 0."""
        if self.unknown or self.unsettled:
            return 3
        if self.credentials_refused:
            return 2
        if self.service_down:
            return 4
        if self.other or self.not_sent:
            return 1
        return 0

    def render(
        self,
        progress: Progress,
        stop_reason: str | None = None,
        lines: dict[str, int] | None = None,
    ) -> str:
        text = [render_summary(progress, stop_reason)]
        lines = lines or {}
        if self.rows:
            text.append("")
            text.append("rows not DELIVERED (line, address, client_order_id, verdict: why):")
            for cid, target, verdict, reason in self.rows:
                line = lines.get(cid)
                where = f"line {line}" if line is not None else "line ?"
                text.append(f"  {where}  {target}  {cid}  {verdict}: {reason}")
            if self.more_rows:
                text.append(f"  ... and {self.more_rows} more (see --report or --json)")
        if self.paid_for_nothing_sun:
            text.append(
                f"paid for energy that did not arrive: {trx(self.paid_for_nothing_sun)}"
                " (PROVIDER_MISMATCH, NOT_DELIVERED, UNDER_DELIVERED shortfall)"
            )
        for reason, ids in self.not_sent.items():
            text.append(f"not sent: {len(ids)} row(s): {reason}")
            text.append(f"  {_rows_named(ids, lines)}")
        return "\n".join(text)


def _rows_named(ids: list[str], lines: dict[str, int]) -> str:
    """Rows as the file's line numbers in runs ("lines 5-7, 12"); ids where a line is not
    known (a file changed since it was read)."""
    runs: list[list[int]] = []
    for number in sorted(lines[cid] for cid in ids if cid in lines):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    spans = [str(a) if a == b else f"{a}-{b}" for a, b in runs]
    parts = [f"lines {', '.join(spans)}"] if spans else []
    unknown = [cid for cid in ids if cid not in lines]
    if unknown:
        parts.append(f"client_order_ids {shown_ids(unknown)}")
    return "; ".join(parts)


def shown_ids(ids: list[str], limit: int = 20) -> str:
    """The first ``limit`` ids, and how many more."""
    more = f" ... and {len(ids) - limit} more" if len(ids) > limit else ""
    return " ".join(ids[:limit]) + more


def _paid_for_nothing(result: DeliveryResult) -> int:
    order = result.order
    if order is None or not order.cost_sun or order.cost_sun < 0:
        return 0
    if result.verdict in _PAID_FOR_NOTHING:
        return order.cost_sun
    if result.verdict is Verdict.UNDER_DELIVERED:
        expected = result.evidence.expected_energy or result.request.expected_energy
        got = result.evidence.attributed_energy or 0
        if expected > 0 and got < expected:
            return order.cost_sun * (expected - got) // expected
    return 0


def _reason(result: DeliveryResult) -> str:
    """One line on why a row is not DELIVERED."""
    text = result.error or (result.evidence.notes[-1] if result.evidence.notes else "")
    if not text and result.verdict is Verdict.UNDER_DELIVERED:
        text = (
            f"{result.evidence.attributed_energy or 0:,} of "
            f"{result.request.expected_energy:,} energy arrived"
        )
    return " ".join(text.split())[:200] or str(result.verdict)


class ReportWriter:
    """``--report FILE``: one CSV row per input row, the same facts as ``--json``."""

    FIELDS = (
        "client_order_id",
        "to",
        "energy",
        "verdict",
        "not_sent",
        "unsettled",
        "order_id",
        "cost_sun",
        "attributed_energy",
        "reason",
    )

    def __init__(self, stream: TextIO) -> None:
        import csv

        self._stream = stream
        self._writer = csv.writer(stream)
        # Why the file could not be written (a full disk): the batch goes on, its orders in
        # flight settle and are journalled; the caller says so once at the end.
        self.failed: str | None = None
        self._row(self.FIELDS)

    def _row(self, row: Sequence[object]) -> None:
        if self.failed is not None:
            return
        try:
            self._writer.writerow(row)
        except OSError as exc:
            self.failed = exc.strerror or type(exc).__name__

    def write(self, outcome: object) -> None:
        from energy_async.batch import Skipped

        if isinstance(outcome, Skipped):
            request = outcome.request
            row = [
                outcome.client_order_id,
                request.target,
                request.expected_energy,
                "",
                "" if outcome.sent else outcome.reason,
                outcome.reason if outcome.sent else "",
                "",
                "",
                "",
                outcome.reason,
            ]
        else:
            assert isinstance(outcome, DeliveryResult)
            order = outcome.order
            row = [
                outcome.client_order_id,
                outcome.request.target,
                outcome.request.expected_energy,
                str(outcome.verdict),
                "",
                "",
                order.id if order else "",
                order.cost_sun if order and order.cost_sun is not None else "",
                outcome.evidence.attributed_energy or "",
                "" if outcome.verdict is Verdict.DELIVERED else _reason(outcome),
            ]
        self._row(row)

    def close(self) -> None:
        try:
            self._stream.close()
        except OSError as exc:
            self.failed = self.failed or exc.strerror or type(exc).__name__

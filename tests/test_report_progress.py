"""The batch's progress line and summary (report.Progress, report.BatchSummary)."""

from __future__ import annotations

import io

from energy_async.batch import Skipped
from energy_async.models import OrderRequest
from energy_async.report import BatchSummary, Progress

TARGET = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"


def test_the_last_line_has_nothing_in_flight_and_tells_unsent_from_unsettled() -> None:
    stream = io.StringIO()
    progress = Progress(3, stream, every=3600.0)
    progress.in_flight = 2  # the last count the ticker saw, a moment before the end
    progress.skip()  # never sent: a rerun sends it
    progress.skip(sent=True)  # sent, then the batch stopped: --resume finishes it
    assert "in flight 2" in progress.line()  # not finished: the count stands
    progress.skip(sent=True)
    last = stream.getvalue().splitlines()[-1]  # drawn once every row is accounted for
    assert last.startswith("[########################] 3/3 in flight 0 ")
    assert "not sent 1" in last and "unsettled 2" in last


def test_the_summary_names_the_rows_not_sent_as_line_runs() -> None:
    summary = BatchSummary()
    for cid in ("ea-run-5", "ea-run-6", "ea-run-7", "ea-run-12", "mine-1"):
        request = OrderRequest(target=TARGET, energy=65_000, client_order_id=cid)
        summary.add(Skipped(request, "sun limit reached"))
    lines = {f"ea-run-{n}": n for n in (5, 6, 7, 12)}  # mine-1: the file changed since
    assert summary.named_ids() >= {"ea-run-5", "mine-1"}
    text = summary.render(Progress(5, io.StringIO()), lines=lines)
    assert "not sent: 5 row(s): sun limit reached" in text
    assert "  lines 5-7, 12; client_order_ids mine-1" in text.splitlines()
    assert summary.exit_code() == 1

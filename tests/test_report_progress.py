"""The batch's progress line (report.Progress): what it counts, and its last line."""

from __future__ import annotations

import io

from energy_async.report import Progress


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

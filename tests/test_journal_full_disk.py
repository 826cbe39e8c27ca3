"""A journal whose disk filled up mid-run still opens for ``--resume``, with every entry it
recorded; never refused as "a copy made without its -wal" (journal.Journal._close)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from energy_async.journal import Journal

pytestmark = pytest.mark.anyio

# A child process writes intents under a file-size limit (RLIMIT_FSIZE: writes past it fail
# with EFBIG, which SQLite reports as a disk I/O error, as on a full disk) until the journal
# refuses, closes it, and says how many it recorded.
_CHILD = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from energy_async.errors import JournalError
    from energy_async.journal import Journal
    from energy_async.models import OrderRequest

    path, limit = sys.argv[1], int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    async def main() -> None:
        journal = await Journal.open(path)
        recorded = 0
        try:
            for n in range(100_000):
                await journal.record_intents("catfee", [OrderRequest(
                    target="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", energy=65_000,
                    client_order_id=f"order-{n:06d}-" + "x" * 40)])
                recorded += 1
        except JournalError:
            pass
        finally:
            await journal.aclose()
        print(json.dumps(recorded))

    asyncio.run(main())
    """
)


@pytest.mark.slow  # a dozen child interpreters, about 4 s
async def test_a_journal_whose_disk_filled_reopens_with_every_recorded_entry(
    tmp_path: Path,
) -> None:
    for limit in range(40_960, 90_112, 4_096):  # page by page, so each close meets the limit
        path = tmp_path / f"limit-{limit}.sqlite"
        child = await anyio.run_process(
            [sys.executable, "-c", _CHILD, str(path), str(limit)], check=False
        )
        assert child.returncode == 0, child.stderr.decode()
        recorded = json.loads(child.stdout)
        assert recorded > 0
        async with await Journal.open(path, create=False) as journal:  # the resume's open
            counts = await journal.counts()
        assert sum(counts.values()) >= recorded, (limit, counts, recorded)


async def test_a_journal_that_cannot_be_written_on_open_says_why_not_damaged(
    tmp_path: Path,
) -> None:
    path = tmp_path / "j.sqlite"
    async with await Journal.open(path):
        pass
    opener = (
        "import asyncio, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # no write can succeed\n"
        "from energy_async.errors import JournalError\n"
        "from energy_async.journal import Journal\n"
        "try:\n"
        "    asyncio.run(Journal.open(sys.argv[1], create=False))\n"
        "except JournalError as error:\n"
        "    print(error)\n"
    )
    child = await anyio.run_process([sys.executable, "-c", opener, str(path)], check=False)
    said = child.stdout.decode()
    assert "disk full" in said and "left as is" in said, said + child.stderr.decode()
    assert "not an energy_async journal" not in said  # it is one; the disk is the problem

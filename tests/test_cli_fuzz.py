"""Fuzzing the CLI's front door: any batch file or ``buy`` argument that is not a valid order is
exit 2, one line on stderr, nothing on stdout, and nothing sent (the sandbox's books say so).

The CLI runs in-process (``cli.main``) against a sandbox served from a background thread, so a
hypothesis example costs milliseconds rather than an interpreter start.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from energy_async import cli
from energy_async.providers import CatFee
from energy_async.sandbox import Sandbox, SandboxURLs
from tests.test_cli import ENV

VALID_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class Served:
    def __init__(self, sandbox: Sandbox, urls: SandboxURLs) -> None:
        self.sandbox = sandbox
        self.urls = urls

    def requests_seen(self) -> int:
        return (
            self.sandbox.catfee.control.count()
            + self.sandbox.mefree.control.count()
            + self.sandbox.trongrid.count()
        )


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    sandbox = Sandbox(seed=3, speed=10.0)
    with start_blocking_portal() as portal:
        serving = sandbox.serve()
        urls = portal.call(serving.__aenter__)
        try:
            yield Served(sandbox, urls)
        finally:
            portal.call(serving.__aexit__, None, None, None)


@pytest.fixture(scope="module")
def environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in ENV.items():
            if name.endswith(("_API_KEY", "_API_SECRET")):
                patch.setenv(name, value)
        yield


def run_main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_refused(code: int, out: str, err: str, served: Served, before: int) -> None:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert served.requests_seen() == before


# --- batch files ---------------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(
        ["to", "To", "ENERGY", "energy", "transfers", "duration", "client_order_id", "1h", "30d"]
    ),
    st.sampled_from(["65000", "-1", "0", "1e5", "99999999999", "TBad", '"', '""', "T" * 34]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)
LINES = st.lists(st.lists(CELLS, max_size=5), max_size=6)


def csv_text(lines: list[list[str]], separator: str) -> str:
    return "".join(separator.join(cells) + "\n" for cells in lines)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    lines=LINES,
    separator=st.sampled_from([",", ";", "\t"]),
    bom=st.booleans(),
    suffix=st.sampled_from([".csv", ".jsonl", ".txt"]),
    raw=st.one_of(st.none(), st.binary(max_size=64)),
)
def test_a_batch_file_that_holds_no_valid_order_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    lines: list[list[str]],
    separator: str,
    bom: bool,
    suffix: str,
    raw: bytes | None,
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / f"rows{suffix}"
    data = raw if raw is not None else csv_text(lines, separator).encode()
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    before = served.requests_seen()
    code, out, err = run_main(
        [
            "batch",
            "--provider",
            "catfee",
            str(path),
            "--provider-url",
            served.urls.catfee,
            "--trongrid-url",
            served.urls.trongrid,
        ],
        capsys,
    )
    assert_refused(code, out, err, served, before)


# --- buy arguments ------------------------------------------------------------------------------

GARBAGE_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00"),
    max_size=20,
)
BAD = {
    "--to": st.one_of(
        GARBAGE_TEXT, st.sampled_from(["TNotAnAddress", "0x" + "ab" * 20, "T" * 34, ""])
    ),
    "--energy": st.one_of(
        st.integers(max_value=64_999).map(str),
        st.integers(min_value=10_000_001).map(str),
        st.sampled_from(["nan", "1e5", "65,000", "", "65000.0", " "]),
    ),
    "--duration": GARBAGE_TEXT.filter(lambda d: d not in CatFee.durations),
    "--client-order-id": GARBAGE_TEXT.filter(lambda i: not VALID_ID.fullmatch(i)),
    "--deadline": st.sampled_from(["nan", "inf", "-inf", "0", "-1", "abc", "", "1e400", "604801"]),
}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(bad=st.sets(st.sampled_from(sorted(BAD)), min_size=1), data=st.data())
def test_buy_with_any_bad_argument_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    bad: set[str],
    data: Any,
) -> None:
    target = served.sandbox.new_target()
    good = {
        "--to": target,
        "--energy": "65000",
        "--duration": "1h",
        "--client-order-id": "fuzz-1",
        "--deadline": "3",
    }
    argv = ["buy", "--provider", "catfee"]
    for option, value in good.items():
        if option in bad:
            value = data.draw(BAD[option], label=option)
        argv.append(f"{option}={value}")  # "=": a value may start with "-"
    argv += ["--provider-url", served.urls.catfee, "--trongrid-url", served.urls.trongrid]
    before = served.requests_seen()
    code, out, err = run_main(argv, capsys)
    assert_refused(code, out, err, served, before)


def test_the_fuzzed_batch_reader_sees_a_valid_file_as_valid(
    served: Served, environment: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The harness can tell a good file from a bad one: the same call with a real row buys."""
    target = served.sandbox.new_target()
    path = tmp_path / "rows.csv"
    path.write_text(f"to,energy\n{target},65000\n")
    code, _, err = run_main(
        [
            "batch",
            "--provider",
            "catfee",
            str(path),
            "--deadline",
            "5",
            "--provider-url",
            served.urls.catfee,
            "--trongrid-url",
            served.urls.trongrid,
        ],
        capsys,
    )
    assert code == 0, err
    assert sum(served.sandbox.catfee.charge_counts().values()) == 1

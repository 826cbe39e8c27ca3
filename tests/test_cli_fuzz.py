"""Fuzzing the CLI's front door: any batch file or ``buy`` argument that is not a valid order is
exit 2, one line on stderr, nothing on stdout, and nothing sent (the sandbox's books say so).

The CLI runs in-process (``cli.main``) against a sandbox served from a background thread, so a
hypothesis example costs milliseconds rather than an interpreter start.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from energy_async import cli
from energy_async.address import is_valid_address
from energy_async.providers import MAX_TRANSFERS, CatFee
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


# --- --transfers, a transfer's --from/--usdt-to/--amount, --token, the base URLs -----------------

EXAMPLES = 15  # per test: bounded, about 0.2 s each (the developer loop is near its minute)


def _transfers_in_range(text: str) -> bool:
    """What argparse's ``int`` and a provider would take as a number of transfers."""
    try:
        return 1 <= int(text) <= MAX_TRANSFERS
    except ValueError:
        return False


def _positive_amount(text: str) -> bool:
    """Anything that reads as a positive finite number of token units (a real amount)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        return False
    return value.is_finite() and value > 0


def _reachable(text: str) -> bool:
    """A URL the CLI might connect to: never generated (no network beyond the sandbox)."""
    try:
        url = URL(text)
    except (ValueError, TypeError):
        return False
    return url.scheme in ("http", "https") and bool(url.host)


BAD_TRANSFERS = st.one_of(
    st.integers(max_value=0).map(str),
    st.integers(min_value=MAX_TRANSFERS + 1).map(str),
    st.sampled_from(["1.5", "nan", "", " ", "two", "1e2", "0x10", "+-1", "153.0"]),
    GARBAGE_TEXT,
).filter(lambda t: not _transfers_in_range(t))
BAD_ADDRESS = st.one_of(
    GARBAGE_TEXT,
    st.sampled_from(["TNotAnAddress", "0x" + "ab" * 20, "T" * 34, "", " ", "41" + "zz" * 20]),
).filter(lambda a: not is_valid_address(a))
BAD_TRANSFER = {
    "--from": BAD_ADDRESS,
    "--usdt-to": BAD_ADDRESS,
    "--amount": st.one_of(
        st.sampled_from(
            ["0", "-1", "-0.000001", "nan", "sNaN", "inf", "-Infinity", "", " ", "1,5", "0x10"]
        ),
        st.sampled_from(["1e", "--1", "½", "1/2", "1 000", "\u0661\u066b\u0665", "0.0", "-0"]),
        GARBAGE_TEXT,
    ).filter(lambda a: not _positive_amount(a)),
    "--token": BAD_ADDRESS,
}
BAD_URL = st.one_of(
    st.sampled_from(
        [
            "abc",
            "ftp://127.0.0.1/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http://[::1",
            "http:///x",
            "//127.0.0.1/x",
            "http://example.com/plain-http-to-a-remote-host",
            "https://user:pw@127.0.0.1:1/",
            "http://127.0.0.1:1/x?key=s3",
            "http://127.0.0.1:1/x#fragment",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1 /",
            "https://",
        ]
    ),
    st.builds(
        str.__add__,
        st.sampled_from(["ftp://", "file://", "ws://", "data:", "mailto:", "://", "http:/", "h"]),
        GARBAGE_TEXT,
    ),
    GARBAGE_TEXT,
).filter(lambda u: u != "" and not _reachable(u))


def _urls(served: Served, provider: str) -> list[str]:
    url = served.urls.catfee if provider == "catfee" else served.urls.mefree
    return ["--provider-url", url, "--trongrid-url", served.urls.trongrid]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    provider=st.sampled_from(["mefree", "catfee"]),
    transfers=BAD_TRANSFERS,
    with_energy=st.booleans(),
)
def test_buy_with_bad_transfers_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    transfers: str,
    with_energy: bool,
) -> None:
    argv = ["buy", "--provider", provider, "--to", served.sandbox.new_target()]
    argv += [f"--transfers={transfers}", *(["--energy=65000"] if with_energy else [])]
    before = served.requests_seen()
    code, out, err = run_main([*argv, *_urls(served, provider)], capsys)
    assert_refused(code, out, err, served, before)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    provider=st.sampled_from(["mefree", "catfee"]),
    bad=st.sets(st.sampled_from(sorted(BAD_TRANSFER)), min_size=1),
    data=st.data(),
)
def test_buy_for_a_transfer_with_any_bad_argument_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    provider: str,
    bad: set[str],
    data: Any,
) -> None:
    """``--from/--usdt-to/--amount`` (and ``--token``): refused before the chain is read."""
    good = {
        "--from": served.sandbox.new_target(),
        "--usdt-to": served.sandbox.new_target(),
        "--amount": "1",
    }
    argv = ["buy", "--provider", provider]
    for option in sorted(BAD_TRANSFER):
        if option in bad:
            argv.append(f"{option}={data.draw(BAD_TRANSFER[option], label=option)}")
        elif option in good:
            argv.append(f"{option}={good[option]}")
    before = served.requests_seen()
    code, out, err = run_main([*argv, *_urls(served, provider)], capsys)
    assert_refused(code, out, err, served, before)


# Every command that takes a base URL, with that URL bad and the other one the sandbox's
# (`buy --trongrid-url` has a test of its own below, from the flag and the environment).
URL_COMMANDS: dict[tuple[str, str], list[str]] = {
    ("buy", "--provider-url"): ["buy", "--provider", "catfee", "--to", "{t}", "--energy", "65000"],
    ("buy", "--provider-url (transfer)"): [
        *("buy", "--provider", "mefree", "--from", "{t}", "--usdt-to", "{t2}", "--amount", "1"),
    ],
    ("batch", "--provider-url"): ["batch", "--provider", "catfee", "{rows}"],
    ("batch", "--trongrid-url"): ["batch", "--provider", "catfee", "{rows}"],
    ("verify", "--trongrid-url"): ["verify", "--to", "{t}"],
    ("ready", "--trongrid-url"): ["ready", "--from", "{t}", "--usdt-to", "{t2}", "--amount", "1"],
    ("account", "--provider-url"): ["account", "--provider", "catfee"],
    ("quote", "--provider-url"): ["quote", "--provider", "catfee", "--energy", "65000"],
    ("order", "--provider-url"): ["order", "--provider", "catfee", "some-order-id"],
}

URL_OPTIONS = {
    "buy": ("--provider-url", "--trongrid-url"),
    "batch": ("--provider-url", "--trongrid-url"),
    "verify": ("--trongrid-url",),
    "ready": ("--trongrid-url",),
    "account": ("--provider-url",),
    "quote": ("--provider-url",),
    "order": ("--provider-url",),
}


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(which=st.sampled_from(sorted(URL_COMMANDS)), url=BAD_URL)
def test_a_bad_base_url_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    which: tuple[str, str],
    url: str,
) -> None:
    rows = tmp_path_factory.getbasetemp() / "url-fuzz-rows.csv"
    if not rows.exists():
        rows.write_text(f"to,energy\n{served.sandbox.new_target()},65000\n")
    fill = {"{t}": served.sandbox.new_target(), "{t2}": served.sandbox.new_target()}
    fill["{rows}"] = str(rows)
    argv = [fill.get(word, word) for word in URL_COMMANDS[which]]
    option = which[1].split()[0]
    provider = argv[argv.index("--provider") + 1] if "--provider" in argv else "catfee"
    urls = {"--provider-url": _urls(served, provider)[1], "--trongrid-url": served.urls.trongrid}
    urls[option] = url
    argv += [f"{name}={urls[name]}" for name in URL_OPTIONS[argv[0]]]
    before = served.requests_seen()
    code, out, err = run_main(argv, capsys)
    assert_refused(code, out, err, served, before)


# --- bugs the fuzzing found, each pinned by one example ---------------------------------------


def test_an_empty_base_url_is_refused_not_replaced_by_the_default(
    served: Served,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The fallback points at the sandbox here, so the bug costs nothing beyond loopback.
    monkeypatch.setenv("ENERGY_ASYNC_CATFEE_URL", served.urls.catfee)
    monkeypatch.setenv("ENERGY_ASYNC_TRONGRID_URL", served.urls.trongrid)
    for argv in (
        ["account", "--provider", "catfee", "--provider-url="],
        ["verify", "--to", served.sandbox.new_target(), "--trongrid-url="],
    ):
        before = served.requests_seen()
        code, out, err = run_main(argv, capsys)
        assert_refused(code, out, err, served, before)


@pytest.mark.parametrize("where", ["flag", "environment"])
def test_buy_with_a_bad_trongrid_url_is_one_line(
    served: Served,
    environment: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    # Checked before "buying ..." is said: bad input is one line, from the flag or from
    # ENERGY_ASYNC_TRONGRID_URL alike.
    argv = [
        *("buy", "--provider", "catfee", "--to", served.sandbox.new_target()),
        *("--energy", "65000", "--provider-url", served.urls.catfee),
    ]
    if where == "flag":
        argv += ["--trongrid-url", "http://example.com"]
    else:
        monkeypatch.setenv("ENERGY_ASYNC_TRONGRID_URL", "http://example.com")
    before = served.requests_seen()
    code, out, err = run_main(argv, capsys)
    assert_refused(code, out, err, served, before)


def test_batch_with_a_bad_token_is_exit_2_one_line_nothing_sent(
    served: Served,
    environment: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sender, receiver = served.sandbox.new_target(), served.sandbox.new_target()
    payouts = tmp_path / "payouts.csv"
    payouts.write_text(f"from,usdt_to,amount\n{sender},{receiver},1\n")
    orders = tmp_path / "orders.csv"
    orders.write_text(f"to,energy\n{sender},65000\n")
    # --max-energy 1: should --token be ignored again, the spend limit still buys nothing.
    for rows in (payouts, orders):
        before = served.requests_seen()
        code, out, err = run_main(
            [
                *("batch", "--provider", "catfee", str(rows), "--token", "TBad"),
                *("--max-energy", "1", *_urls(served, "catfee")),
            ],
            capsys,
        )
        assert_refused(code, out, err, served, before)


def test_buy_for_a_transfer_with_a_bad_duration_or_id_is_exit_2_one_line_nothing_sent(
    served: Served, environment: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for option in ("--duration=99d", "--client-order-id=bad id!"):
        before = served.requests_seen()
        code, out, err = run_main(
            [
                *("buy", "--provider", "mefree", "--from", served.sandbox.new_target()),
                *("--usdt-to", served.sandbox.new_target(), "--amount", "1", option),
                *_urls(served, "mefree"),
            ],
            capsys,
        )
        assert_refused(code, out, err, served, before)


@pytest.mark.parametrize(
    "written", ["1_0", "\u0661", " 5", "+5", "5.0", "-1", "99999999999999999999"]
)
def test_whole_numbers_are_written_in_the_digits_0_to_9_alone(
    served: Served, environment: None, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    # int() reads "1_0" as 10 and "\u0661" as 1: an amount a person never meant.
    before = served.requests_seen()
    code, out, err = run_main(
        [
            *("buy", "--provider", "mefree", "--to", served.sandbox.new_target()),
            *("--transfers", written, *_urls(served, "mefree")),
        ],
        capsys,
    )
    assert_refused(code, out, err, served, before)

"""The ``energy-async`` command (also ``python -m energy_async``).

Contract (design.md): credentials come from the environment only; ``--json`` prints machine
output on stdout and nothing else goes there; people read stderr; errors are one line that
names what to fix. Exit codes: 0 DELIVERED, 1 any other settled verdict (or a failure after
something was sent), 2 bad input or configuration (nothing was sent), 3 UNKNOWN.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import anyio
import msgspec

from energy_async import cli_workers
from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    EnergyError,
    InputError,
    JournalError,
    JournalUnavailable,
    NodeError,
    OutcomeUnknown,
    TransientError,
)
from energy_async.journal_contract import is_dsn
from energy_async.models import DeliveryResult, Order, OrderRequest, Verdict

if TYPE_CHECKING:
    from energy_async.batch import BatchRun, SpendGuard
    from energy_async.coordinator import Coordinator
    from energy_async.journal import Journal
    from energy_async.providers import Provider

__all__ = ["exit_code", "main"]

EXIT_DELIVERED, EXIT_OTHER, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
EXIT_UNAVAILABLE = 4  # nothing was bought because a service was unavailable
# Reading the chain failed before anything was bought (throttled, down, or an answer we refuse).
_CHAIN_DOWN = (TransientError, NodeError, BadResponse)
PROVIDERS = ("catfee", "mefree")


def exit_code(verdict: Verdict) -> int:
    if verdict is Verdict.DELIVERED:
        return EXIT_DELIVERED
    if verdict is Verdict.UNKNOWN:
        return EXIT_UNKNOWN
    return EXIT_OTHER


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="energy-async",
        description="Buy TRON energy from a rental provider and prove on-chain that it arrived.",
        epilog="Credentials: CATFEE_API_KEY/CATFEE_API_SECRET, MEFREE_API_KEY/MEFREE_API_SECRET,"
        " optional TRONGRID_API_KEY, all from the environment.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    buy = commands.add_parser("buy", help="buy energy for one address and verify delivery")
    _provider_options(buy)
    buy.add_argument("--to", metavar="ADDRESS", help="the address to receive")
    amount = buy.add_mutually_exclusive_group()
    amount.add_argument("--energy", type=int, metavar="N", help="energy units (>= 65,000)")
    amount.add_argument("--transfers", type=int, metavar="N", help="USDT transfers (Mefree)")
    buy.add_argument("--duration", default="1h", help="rental duration (default 1h)")
    buy.add_argument("--client-order-id", metavar="ID", help="your idempotency key")
    buy.add_argument("--deadline", type=float, default=120.0, metavar="SECONDS")
    buy.add_argument("--no-verify", action="store_true", help="place the order, skip the chain")
    _transfer_options(buy, required=False)
    _trongrid_option(buy)
    _json_option(buy)
    buy.set_defaults(handler=_buy)

    ready = commands.add_parser("ready", help="is an address ready to send a USDT transfer?")
    _transfer_options(ready, required=True)
    _trongrid_option(ready)
    _json_option(ready)
    ready.set_defaults(handler=_ready)

    order = commands.add_parser("order", help="show one order as the provider reports it")
    _provider_options(order)
    order.add_argument("order_id", metavar="ORDER_ID")
    _json_option(order)
    order.set_defaults(handler=_order)

    verify = commands.add_parser("verify", help="read an address's energy from the chain")
    verify.add_argument("--to", required=True, metavar="ADDRESS")
    _trongrid_option(verify)
    _json_option(verify)
    verify.set_defaults(handler=_verify)

    batch = commands.add_parser("batch", help="buy for every row of a CSV or JSONL file")
    _provider_options(batch)
    batch.add_argument("file", metavar="FILE", type=Path)
    batch.add_argument("--concurrency", type=int, default=16, metavar="N")
    batch.add_argument("--deadline", type=float, default=120.0, metavar="SECONDS", help="per order")
    batch.add_argument(
        "--journal",
        metavar="PATH|DSN",
        help="write-ahead journal that makes the batch resumable: a file (SQLite), or a"
        " postgresql:// DSN shared by many workers running the same batch",
    )
    batch.add_argument(
        "--resume", action="store_true", help="continue the batch recorded in --journal"
    )
    batch.add_argument(
        "--skip-invalid", action="store_true", help="send the valid rows even if some are bad"
    )
    for name in ("max-energy", "max-sun", "max-energy-per-hour", "max-sun-per-hour"):
        batch.add_argument(f"--{name}", type=int, metavar="N", help="spend limit")
    _trongrid_option(batch)
    _json_option(batch)
    batch.set_defaults(handler=_batch)
    cli_workers.add_worker_options(batch)
    cli_workers.add_journal_command(commands, cli_workers.journal_command)

    sandbox = commands.add_parser("sandbox", help="run the local provider + TronGrid simulator")
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--speed", type=float, default=1.0, help="chain clock multiplier")
    sandbox.add_argument("--seed", type=int, default=0)
    sandbox.set_defaults(handler=_sandbox)

    demo = commands.add_parser("demo", help="the whole job end to end against a local sandbox")
    _json_option(demo)
    demo.set_defaults(handler=_demo)
    return parser


def _provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, choices=PROVIDERS)
    parser.add_argument("--provider-url", metavar="URL", help="provider base URL")


def _transfer_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """A TRC20 transfer: ``ready`` checks it; ``buy`` with ``--usdt-to`` buys what it needs."""
    group = parser.add_argument_group("a TRC20 transfer (USDT unless --token)")
    group.add_argument("--from", dest="sender", required=required, metavar="ADDRESS")
    group.add_argument("--usdt-to", required=required, metavar="ADDRESS", help="the receiver")
    group.add_argument("--amount", required=required, help="token units, e.g. 12.5")
    group.add_argument("--token", metavar="ADDRESS", help="a TRC20 contract (default USDT)")


def _trongrid_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trongrid-url", metavar="URL", default="https://api.trongrid.io")


def _json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


# --- commands --------------------------------------------------------------------------------


async def _buy(args: argparse.Namespace) -> int:
    from energy_async.coordinator import Coordinator
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

    if any(value is not None for value in (args.sender, args.usdt_to, args.amount, args.token)):
        return await _buy_for_transfer(args)
    if args.to is None or (args.energy is None and args.transfers is None):
        raise InputError(
            "buy: --to and one of --energy/--transfers are required "
            "(or, to buy for a transfer, --from, --usdt-to and --amount)"
        )
    provider = _provider(args)
    async with ProviderSession(provider) as session:
        request = session.prepare(
            target=args.to,
            energy=args.energy,
            transfers=args.transfers,
            duration=args.duration,
            client_order_id=args.client_order_id,
        )
        if args.deadline <= 0:
            raise InputError("--deadline must be a positive number of seconds")
        _say(
            f"buying {_amount(args)} for {request.target} from {provider.name} "
            f"(client_order_id {request.client_order_id})"
        )
        if args.no_verify:
            order = await session.place(request)
            _say_order(order)
            _out_json(args, {"verdict": None, "order": order})
            return EXIT_DELIVERED
        async with Verifier(base_url=args.trongrid_url) as verifier:
            coordinator = Coordinator(session, verifier)
            _say(f"watching the provider and the chain (deadline {args.deadline:g} s) ...")
            result = await coordinator.settle(request, deadline=args.deadline)
    _show_result(args, result)
    return exit_code(result.verdict)


async def _order(args: argparse.Namespace) -> int:
    from energy_async.report import render_order
    from energy_async.session import ProviderSession

    async with ProviderSession(_provider(args)) as session:
        order = await session.get_order(args.order_id)
    if not _out_json(args, order):
        _say(render_order(order))
    return EXIT_DELIVERED


async def _verify(args: argparse.Namespace) -> int:
    from energy_async.report import render_snapshot
    from energy_async.verifier import Verifier

    async with Verifier(base_url=args.trongrid_url) as verifier:
        snapshot = await verifier.snapshot(args.to)
    payload = msgspec.to_builtins(snapshot)
    payload["energy_available"] = snapshot.energy_available
    if not _out_json(args, payload):
        _say(render_snapshot(snapshot))
    return EXIT_DELIVERED


async def _batch(args: argparse.Namespace) -> int:
    from energy_async.batch import SpendGuard
    from energy_async.coordinator import Coordinator
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

    if args.concurrency < 1:
        raise InputError("--concurrency must be at least 1")
    if args.deadline <= 0:
        raise InputError("--deadline must be a positive number of seconds")
    if args.resume and args.journal is None:
        raise InputError("--resume needs --journal PATH (the journal of the batch to continue)")
    if args.status:
        if args.journal is None or not is_dsn(args.journal):
            raise InputError("--status needs --journal postgresql://... (a shared journal)")
        return await cli_workers.show_status(args.journal, args.json)
    guard = None
    limits = (args.max_energy, args.max_sun, args.max_energy_per_hour, args.max_sun_per_hour)
    if any(limit is not None for limit in limits):
        guard = SpendGuard(*limits)
    provider = _provider(args)
    async with (
        ProviderSession(provider) as session,
        Verifier(base_url=args.trongrid_url) as verifier,
    ):
        coordinator = Coordinator(session, verifier)
        return await _run_batch(args, coordinator, guard)


async def _run_batch(
    args: argparse.Namespace, coordinator: Coordinator, guard: SpendGuard | None
) -> int:
    from energy_async.batchfile import RowProblem, problems_text, read_requests
    from energy_async.journal import Journal

    journal = None
    run_id = secrets.token_hex(8)
    shared = args.journal is not None and is_dsn(args.journal)
    if args.journal is not None and not shared:
        journal = await Journal.open(args.journal, create=not args.resume)
    try:
        if journal is not None:
            counts = await journal.counts()
            entries = sum(n for key, n in counts.items() if ":" not in key)
            if entries and not args.resume:
                raise InputError(
                    f"journal {args.journal} already holds {entries} orders; pass --resume to "
                    "continue that batch, or give a new --journal path"
                )
            if args.resume:
                run_id = await _recorded_run_id(journal) or run_id

        def id_for_line(line: int) -> str:
            return f"ea-{run_id}-{line}"

        prepare = coordinator.session.prepare
        total = 0
        problems: list[RowProblem] = []
        problem_count = 0
        for _, item in read_requests(args.file, prepare, id_for_line=id_for_line):
            if isinstance(item, OrderRequest):
                total += 1
            else:
                problem_count += 1
                if len(problems) < 50:
                    problems.append(item)
        if problem_count and not args.skip_invalid:
            raise InputError(
                f"{problem_count} bad row(s) in {args.file}, nothing was sent "
                f"(fix them, or pass --skip-invalid):\n{problems_text(problems, problem_count)}"
            )
        if problem_count:
            _say(f"skipping {problem_count} bad row(s):\n{problems_text(problems, problem_count)}")

        def good_requests() -> Iterator[OrderRequest]:
            for _, item in read_requests(args.file, prepare, id_for_line=id_for_line):
                if isinstance(item, OrderRequest):
                    yield item

        if shared:

            def rows_for(run: str) -> Iterator[OrderRequest]:
                ids = lambda line: f"ea-{run}-{line}"  # noqa: E731
                for _, item in read_requests(args.file, prepare, id_for_line=ids):
                    if isinstance(item, OrderRequest):
                        yield item

            return await cli_workers.run_pg_batch(args, coordinator, rows_for, run_id, _drain)

        if journal is not None:
            # Every intent is committed before the first create goes out; on resume only the
            # rows a crash kept from the journal are added (the same ids, so nothing repeats).
            await _record_all(journal, coordinator.provider, good_requests())
            counts = await journal.counts()
            settled = counts.get("SETTLED", 0)
            _say(f"journal {args.journal}: {settled} of {total} orders already settled")
            batch = coordinator.resume(
                journal, concurrency=args.concurrency, deadline=args.deadline, spend_guard=guard
            )
            total -= settled
        else:
            batch = coordinator.buy_many(
                good_requests(),
                concurrency=args.concurrency,
                deadline=args.deadline,
                spend_guard=guard,
            )
        return await _drain(args, batch, total)
    finally:
        if journal is not None:
            await journal.aclose()


async def _record_all(journal: Journal, provider: str, requests: Iterable[OrderRequest]) -> None:
    chunk = []
    for request in requests:
        chunk.append(request)
        if len(chunk) >= 1000:
            await journal.record_intents(provider, chunk)
            chunk = []
    if chunk:
        await journal.record_intents(provider, chunk)


async def _recorded_run_id(journal: Journal) -> str | None:
    """The run id behind generated ids (``ea-<run>-<line>``), so a resume makes the same ids."""
    async for entry in journal.iter_entries():
        parts = entry.client_order_id.split("-")
        if len(parts) == 3 and parts[0] == "ea" and parts[2].isdigit():
            return str(parts[1])
    return None


async def _drain(
    args: argparse.Namespace, batch: AbstractAsyncContextManager[BatchRun], total: int
) -> int:
    from energy_async.report import Progress, render_summary

    progress = Progress(total, sys.stderr)
    async with batch as run:
        async for result in run:
            progress.add(result)
            if args.json:
                _write_json(result)
        stop_reason = run.stop_reason
    progress.finish()
    _say(render_summary(progress, stop_reason))
    verdicts = progress.verdicts
    if verdicts[Verdict.UNKNOWN]:
        return EXIT_UNKNOWN
    all_delivered = verdicts[Verdict.DELIVERED] == progress.done
    return EXIT_DELIVERED if all_delivered and not stop_reason else EXIT_OTHER


async def _sandbox(args: argparse.Namespace) -> int:
    from energy_async.sandbox import Sandbox

    sandbox = Sandbox(seed=args.seed, speed=args.speed)
    async with sandbox.serve(host=args.host, port=args.port) as urls:
        _say(sandbox.describe(urls))
        _say("press Ctrl-C to stop")
        await anyio.sleep_forever()
    return EXIT_DELIVERED


async def _demo(args: argparse.Namespace) -> int:
    from energy_async.demo import DEMO_EXPECTED, run_demo

    results = await run_demo(sys.stderr)
    if args.json:
        for result in results:
            _write_json(result)
    # The third order is meant to be caught cheating: success is every verdict as designed.
    verdicts = tuple(result.verdict for result in results)
    return EXIT_DELIVERED if verdicts == DEMO_EXPECTED else EXIT_OTHER


# --- plumbing ------------------------------------------------------------------------------------


def _provider(args: argparse.Namespace) -> Provider:
    from energy_async.providers import CatFee, Mefree

    kind = {"catfee": CatFee, "mefree": Mefree}[args.provider]
    return kind.from_env(base_url=args.provider_url)


def _amount(args: argparse.Namespace) -> str:
    return f"{args.energy:,} energy" if args.energy is not None else f"{args.transfers} transfers"


def _say(text: str, stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stderr, flush=True)


def _say_order(order: Order) -> None:
    from energy_async.report import render_order

    _say(render_order(order))


def _write_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


def _out_json(args: argparse.Namespace, value: Any) -> bool:
    if args.json:
        _write_json(value)
    return bool(args.json)


def _show_result(args: argparse.Namespace, result: DeliveryResult) -> None:
    from energy_async.report import render_result

    _say(render_result(result))
    _out_json(args, result)


def _one_line(exc: BaseException) -> str:
    return str(exc).strip() or type(exc).__name__


def _run(handler: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    async def runner() -> int:
        return await handler(args)

    try:
        return anyio.run(runner)
    except KeyboardInterrupt:
        _say("energy-async: interrupted")
        return 130
    except (InputError, AuthenticationError) as exc:
        _say(f"energy-async: error: {_one_line(exc)}")
        return EXIT_USAGE
    except JournalUnavailable as exc:
        _say(f"energy-async: journal unavailable: {_one_line(exc)}")
        return EXIT_UNAVAILABLE
    except JournalError as exc:
        _say(f"energy-async: journal error: {_one_line(exc)}")
        return EXIT_USAGE
    except OutcomeUnknown as exc:
        _say(
            f"energy-async: outcome unknown: {_one_line(exc)}; check it later with "
            f"`energy-async order` or rerun `buy` with --client-order-id {exc.client_order_id}"
        )
        return EXIT_UNKNOWN
    except EnergyError as exc:
        _say(f"energy-async: error: {_one_line(exc)}")
        return EXIT_OTHER


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _run(args.handler, args)


# --- a TRC20 transfer: `ready`, and `buy --usdt-to` (readiness.py) -----------------------------


async def _ready(args: argparse.Namespace) -> int:
    from energy_async.readiness import ReadinessChecker, render_readiness
    from energy_async.verifier import Verifier

    async with Verifier(base_url=args.trongrid_url) as verifier:
        try:
            ready = await ReadinessChecker(verifier).check(
                args.sender, args.usdt_to, args.amount, token=_token(args)
            )
        except _CHAIN_DOWN as exc:
            return _chain_unavailable(exc)
    _say(render_readiness(ready))
    _out_json(args, ready)
    return EXIT_DELIVERED if ready.ready else EXIT_OTHER


async def _buy_for_transfer(args: argparse.Namespace) -> int:
    from energy_async.coordinator import Coordinator
    from energy_async.readiness import render_readiness
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

    missing = [
        flag
        for flag, value in (
            ("--from", args.sender),
            ("--usdt-to", args.usdt_to),
            ("--amount", args.amount),
        )
        if value is None
    ]
    if missing or args.to or args.energy or args.transfers or args.no_verify:
        raise InputError(
            "buy for a transfer takes --from, --usdt-to and --amount (not --to, --energy, "
            f"--transfers or --no-verify){'; missing ' + ', '.join(missing) if missing else ''}"
        )
    if args.deadline <= 0:
        raise InputError("--deadline must be a positive number of seconds")
    async with (
        ProviderSession(_provider(args)) as session,
        Verifier(base_url=args.trongrid_url) as verifier,
    ):
        try:
            bought = await Coordinator(session, verifier).buy_for_transfer(
                sender=args.sender,
                receiver=args.usdt_to,
                amount=args.amount,
                token=_token(args),
                duration=args.duration,
                client_order_id=args.client_order_id,
                deadline=args.deadline,
            )
        except _CHAIN_DOWN as exc:
            return _chain_unavailable(exc)
    if bought.result is not None and bought.purchase is not None:
        from energy_async.report import render_result

        purchase = bought.purchase
        what = (
            f"{purchase.energy:,} energy" if purchase.energy else f"{purchase.transfers} transfers"
        )
        _say(f"bought {what} for {args.sender}")
        _say(render_result(bought.result))
    else:
        _say("nothing bought")
    after = bought.after
    _say(
        render_readiness(after) if after else f"readiness after: unreadable ({bought.after_error})"
    )
    if args.json:
        payload = msgspec.to_builtins(bought)
        payload["verdict"] = bought.result.verdict if bought.result else None
        payload["ready"] = bought.ready
        _write_json(payload)
    if bought.result is not None and bought.result.verdict is not Verdict.DELIVERED:
        return exit_code(bought.result.verdict)
    return EXIT_DELIVERED if bought.ready else EXIT_OTHER


def _token(args: argparse.Namespace) -> str:
    from energy_async.readiness import USDT

    return str(args.token or USDT)


def _chain_unavailable(exc: EnergyError) -> int:
    _say(f"energy-async: TronGrid unavailable, nothing was bought: {_one_line(exc)}")
    return EXIT_UNAVAILABLE

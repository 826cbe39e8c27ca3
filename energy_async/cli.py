"""The ``energy-async`` command (also ``python -m energy_async``).

Contract (design.md): credentials come from the environment only; ``--json`` prints machine
output on stdout and nothing else goes there; people read stderr; errors are one line that
names what to fix, never a traceback. Exit codes are `EXIT_CODES` (also in ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import secrets
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import anyio
import msgspec
from yarl import URL

from energy_async import cli_workers
from energy_async.cli_output import say as _say
from energy_async.cli_output import stderr_gone as _stderr_gone
from energy_async.cli_output import write_json as _write_json
from energy_async.errors import (
    AuthenticationError,
    BadResponse,
    ConfigurationError,
    EnergyError,
    InputError,
    InsufficientBalance,
    JournalBusy,
    JournalError,
    JournalUnavailable,
    NodeError,
    NothingBought,
    OutcomeUnknown,
    TransientError,
    error_leaves,
    most_telling,
)
from energy_async.journal_contract import is_dsn
from energy_async.models import DeliveryResult, Order, OrderRequest, Verdict

if TYPE_CHECKING:
    from energy_async.batch import BatchRun, Outcome, SpendGuard
    from energy_async.batchfile import RowProblem
    from energy_async.client import Client
    from energy_async.coordinator import Coordinator
    from energy_async.journal import Journal
    from energy_async.payouts import PlannedSender
    from energy_async.providers import Provider
    from energy_async.readiness import TransferPurchase
    from energy_async.report import BatchSummary, Progress, ReportWriter

__all__ = ["EXIT_CODES", "exit_code", "main"]

EXIT_DELIVERED, EXIT_OTHER, EXIT_USAGE, EXIT_UNKNOWN, EXIT_NOTHING_BOUGHT = 0, 1, 2, 3, 4
EXIT_UNAVAILABLE = EXIT_NOTHING_BOUGHT  # nothing was bought because a service was unavailable
EXIT_INTERRUPTED = 130
# Reading the chain failed before anything was bought (throttled, down, or an answer we refuse).
_CHAIN_DOWN = (TransientError, NodeError, BadResponse)
EXIT_CODES = {
    EXIT_DELIVERED: "DELIVERED (every row, for a batch)",
    EXIT_OTHER: "another settled verdict, or rows not sent (a limit, a refusal, a stop)",
    EXIT_USAGE: "bad input or configuration, credentials included: nothing was sent",
    EXIT_UNKNOWN: "UNKNOWN: resolve by client_order_id (`batch --resume`, `buy` again)",
    EXIT_NOTHING_BOUGHT: "nothing bought because a service was unavailable: safe to retry",
}
_AUTO = "auto"  # buy and quote: the cheapest configured provider that can serve the order
_ENV_URL = "ENERGY_ASYNC_{}_URL"  # base URLs from the environment, e.g. ENERGY_ASYNC_CATFEE_URL
_TRONGRID_URL_ENV = "ENERGY_ASYNC_TRONGRID_URL"
_DEFAULT_TRONGRID_URL = "https://api.trongrid.io"
_DEFAULT_DEADLINE = 120.0
_DEFAULT_GRACE = 30.0


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


def _seconds(text: str) -> float:
    """A finite, positive number of seconds (``nan`` and ``inf`` are not deadlines)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0 or value > 7 * 86_400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 604800 seconds, got {text!r}")
    return value


def _whole(text: str) -> int:
    """A whole number written in the digits 0-9 alone: ``int`` would also take ``1_0`` (10),
    other scripts' digits and spaces, none of which a person means in an amount of money."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise argparse.ArgumentTypeError(f"not a whole number (digits 0-9): {text[:40]!r}")
    return int(text)


def _count(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _url(text: str) -> str:
    """A base URL given on the command line; an empty one (a script's unset ``"$VAR"``) is
    an error, never a silent fall back to the environment's or the mainnet URL."""
    from energy_async._http import check_base_url

    if not text.strip():
        raise argparse.ArgumentTypeError("is empty")
    try:
        check_base_url(text, what="base_url")
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free one), got {text}")
    return value


def _trx(text: str) -> int:
    """TRX as sun, exactly (``--max-trx 12.5``)."""
    from decimal import Decimal, InvalidOperation

    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount of TRX: {text!r}") from None
    sun = value * 1_000_000
    if not value.is_finite() or sun < 1 or sun != sun.to_integral_value() or sun >= 2**63:
        raise argparse.ArgumentTypeError(f"a positive amount of TRX (6 decimals), got {text!r}")
    return int(sun)


def _provider_names() -> tuple[str, ...]:
    return tuple(_registry())


def _registry() -> dict[str, type[Provider]]:
    """``--provider`` choices: the providers registry, the one place they come from."""
    from energy_async.providers import PROVIDERS

    return dict(PROVIDERS)


def _epilog() -> str:
    codes = "\n".join(f"  {code}  {meaning}" for code, meaning in EXIT_CODES.items())
    urls = ", ".join(_ENV_URL.format(name.upper()) for name in _provider_names())
    keys = ", ".join("/".join(kind.env_names()) for kind in _registry().values())
    return (
        f"credentials: {keys}, optional TRONGRID_API_KEY, all from the environment\n"
        f"base URLs: --provider-url/--trongrid-url, or {urls}, {_TRONGRID_URL_ENV}\n"
        f"exit codes:\n{codes}\n  130  interrupted"
    )


def build_parser() -> argparse.ArgumentParser:
    from energy_async import __version__

    parser = _Parser(
        prog="energy-async",
        description="Buy TRON energy from a rental provider and prove on-chain that it arrived.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for register in _COMMANDS:
        register(commands)
    return parser


def _command(
    commands: argparse._SubParsersAction[_Parser], name: str, help_text: str
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_epilog(),
        formatter_class=_Formatter,
    )
    sub.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log to stderr (-vv: debug)",
    )
    return sub


class _Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Defaults shown in --help, the epilog kept as written."""


def _add_buy(commands: argparse._SubParsersAction[_Parser]) -> None:
    buy = _command(commands, "buy", "buy energy for one address and verify delivery")
    _provider_options(buy)
    buy.add_argument("--to", metavar="ADDRESS", help="the address to receive")
    amount = buy.add_mutually_exclusive_group()
    amount.add_argument("--energy", type=_whole, metavar="N", help="energy units (>= 65,000)")
    amount.add_argument("--transfers", type=_whole, metavar="N", help="USDT transfers (Mefree)")
    buy.add_argument("--duration", default="1h", help="rental duration")
    buy.add_argument("--client-order-id", metavar="ID", help="your idempotency key")
    _deadline_option(buy, "seconds to wait for the verdict")
    buy.add_argument("--no-verify", action="store_true", help="place the order, skip the chain")
    _transfer_options(buy, required=False)
    _trongrid_option(buy)
    _json_option(buy)
    buy.set_defaults(handler=_buy)


def _add_ready(commands: argparse._SubParsersAction[_Parser]) -> None:
    ready = _command(commands, "ready", "is an address ready to send a USDT transfer?")
    _transfer_options(ready, required=True)
    _trongrid_option(ready)
    _json_option(ready)
    ready.set_defaults(handler=_ready)


def _add_order(commands: argparse._SubParsersAction[_Parser]) -> None:
    order = _command(commands, "order", "show one order as the provider reports it")
    _provider_options(order)
    which = order.add_mutually_exclusive_group(required=True)
    which.add_argument("order_id", metavar="ORDER_ID", nargs="?", help="the provider's order id")
    which.add_argument(
        "--client-order-id",
        metavar="ID",
        help="your id: looked up in --journal (no provider documents a lookup by it)",
    )
    order.add_argument("--journal", type=Path, metavar="PATH", help="the batch's journal")
    _json_option(order)
    order.set_defaults(handler=_order)


def _add_verify(commands: argparse._SubParsersAction[_Parser]) -> None:
    verify = _command(
        commands,
        "verify",
        "read an address's energy from the chain (--to), or judge an existing order again from"
        " the chain, buying nothing (ORDER_ID or --client-order-id with --provider)",
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--to", metavar="ADDRESS", help="print this address's energy snapshot")
    which.add_argument("order_id", metavar="ORDER_ID", nargs="?", help="the provider's order id")
    which.add_argument("--client-order-id", metavar="ID", help="your id, looked up in --journal")
    verify.add_argument(
        "--provider", choices=_provider_names(), help="the provider of the order (not for --to)"
    )
    verify.add_argument("--provider-url", type=_url, metavar="URL", help="provider base URL")
    verify.add_argument("--journal", type=Path, metavar="PATH", help="the batch's journal")
    _deadline_option(verify, "seconds to watch the chain for an order")
    _trongrid_option(verify)
    _json_option(verify)
    verify.set_defaults(handler=_verify)


def _add_quote(commands: argparse._SubParsersAction[_Parser]) -> None:
    quote = _command(commands, "quote", "what an order would cost (where a price is published)")
    _provider_options(quote)
    quote.add_argument("--energy", type=_whole, required=True, metavar="N")
    quote.add_argument("--duration", default="1h", help="rental duration")
    _json_option(quote)
    quote.set_defaults(handler=_quote)


def _add_account(commands: argparse._SubParsersAction[_Parser]) -> None:
    account = _command(commands, "account", "the provider account's balance")
    _provider_options(account)
    _json_option(account)
    account.set_defaults(handler=_account)


def _add_batch(commands: argparse._SubParsersAction[_Parser]) -> None:
    batch = _command(commands, "batch", "buy for every row of a CSV or JSONL file")
    _provider_options(batch)
    batch.add_argument("file", metavar="FILE", type=Path)
    batch.add_argument(
        "--concurrency", type=_count, default=16, metavar="N", help="orders in flight at once"
    )
    _deadline_option(batch, "seconds per order")
    batch.add_argument(
        "--journal",
        metavar="PATH|DSN",
        help="write-ahead journal that makes the batch resumable: a file (SQLite), or a"
        " postgresql:// DSN shared by many workers running the same batch",
    )
    batch.add_argument(
        "--resume",
        action="store_true",
        help="finish the batch recorded in --journal: rows not sent, unsettled or UNKNOWN",
    )
    batch.add_argument(
        "--skip-invalid", action="store_true", help="send the valid rows even if some are bad"
    )
    batch.add_argument(
        "--grace",
        type=_seconds,
        default=_DEFAULT_GRACE,
        metavar="SECONDS",
        help="after Ctrl-C or SIGTERM, how long orders in flight may take to settle",
    )
    batch.add_argument("--report", type=Path, metavar="FILE", help="every row's outcome as CSV")
    for name, what in (
        ("max-energy", "energy in total"),
        ("max-sun", "sun in total"),
        ("max-energy-per-hour", "energy per rolling hour"),
        ("max-sun-per-hour", "sun per rolling hour"),
    ):
        batch.add_argument(f"--{name}", type=_count, metavar="N", help=f"spend limit: {what}")
    batch.add_argument("--max-trx", type=_trx, metavar="TRX", help="spend limit: TRX in total")
    batch.add_argument(
        "--token",
        metavar="ADDRESS",
        help="for a payout file (from,usdt_to,amount): the TRC20 contract (default USDT)",
    )
    _trongrid_option(batch)
    _json_option(batch)
    batch.set_defaults(handler=_batch)
    cli_workers.add_worker_options(batch)


def _add_journal(commands: argparse._SubParsersAction[_Parser]) -> None:
    cli_workers.add_journal_command(commands, cli_workers.journal_command)


def _add_sandbox(commands: argparse._SubParsersAction[_Parser]) -> None:
    sandbox = _command(commands, "sandbox", "run the local provider + TronGrid simulator")
    sandbox.add_argument("--port", type=_port, default=8765, help="0: any free port")
    sandbox.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    sandbox.add_argument("--speed", type=_seconds, default=1.0, help="chain clock multiplier")
    sandbox.add_argument("--seed", type=int, default=0, help="the simulated world's seed")
    sandbox.set_defaults(handler=_sandbox)


def _add_demo(commands: argparse._SubParsersAction[_Parser]) -> None:
    demo = _command(commands, "demo", "the whole job end to end against a local sandbox")
    _json_option(demo)
    demo.set_defaults(handler=_demo)


def _provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", required=True, choices=(*_provider_names(), _AUTO))
    parser.add_argument(
        "--provider-url",
        type=_url,
        metavar="URL",
        help=f"provider base URL (default: {_ENV_URL.format('<PROVIDER>')} or the mainnet URL)",
    )


def _transfer_options(parser: argparse.ArgumentParser, *, required: bool) -> None:
    """A TRC20 transfer: ``ready`` checks it; ``buy`` with ``--usdt-to`` buys what it needs."""
    group = parser.add_argument_group("a TRC20 transfer (USDT unless --token)")
    group.add_argument("--from", dest="sender", required=required, metavar="ADDRESS")
    group.add_argument("--usdt-to", required=required, metavar="ADDRESS", help="the receiver")
    group.add_argument("--amount", required=required, help="token units, e.g. 12.5")
    group.add_argument("--token", metavar="ADDRESS", help="a TRC20 contract (default USDT)")


def _deadline_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--deadline", type=_seconds, default=_DEFAULT_DEADLINE, metavar="SECONDS", help=what
    )


def _trongrid_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trongrid-url",
        type=_url,
        metavar="URL",
        default=None,
        help=f"TronGrid base URL (default: {_TRONGRID_URL_ENV} or {_DEFAULT_TRONGRID_URL})",
    )


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
    if args.provider == _AUTO:
        return await _buy_auto(args)
    provider = _provider(args)
    trongrid = None if args.no_verify else _trongrid_url(args)
    async with ProviderSession(provider) as session:
        request = session.prepare(
            target=args.to,
            energy=args.energy,
            transfers=args.transfers,
            duration=args.duration,
            client_order_id=args.client_order_id,
        )
        _say(
            f"buying {_amount(args)} for {request.target} from {provider.name} "
            f"(client_order_id {request.client_order_id})"
        )
        if args.no_verify:
            order = await session.place(request)
            _say_order(order)
            _out_json(args, {"verdict": None, "order": order})
            return EXIT_DELIVERED
        assert trongrid is not None
        async with Verifier(base_url=trongrid) as verifier:
            coordinator = Coordinator(session, verifier)
            _say(f"watching the provider and the chain (deadline {args.deadline:g} s) ...")
            async with anyio.create_task_group() as group:
                group.start_soon(_heartbeat, args.deadline)
                result = await coordinator.settle(
                    request, deadline=args.deadline, hooks=_PhaseLines()
                )
                group.cancel_scope.cancel()
    _show_result(args, result)
    return exit_code(result.verdict)


class _PhaseLines:
    """``buy`` prints one line to stderr per phase of the order as it happens."""

    async def on_sending(self, client_order_id: str) -> None:
        return None

    async def on_order(self, client_order_id: str, order: Order) -> None:
        return None

    def on_phase(self, client_order_id: str, phase: str, detail: str) -> None:
        _say(f"  {phase}: {detail}")


async def _heartbeat(deadline: float) -> None:
    """`buy` stays alive: a line every few seconds while the verdict is out."""
    started = anyio.current_time()
    while True:
        await anyio.sleep(5.0)
        elapsed = anyio.current_time() - started
        _say(f"  ... still watching ({elapsed:.0f} s of {deadline:g} s)")


async def _order(args: argparse.Namespace) -> int:
    from energy_async.report import render_order
    from energy_async.session import ProviderSession

    order_id = args.order_id
    if args.client_order_id is not None:
        order_id = await _order_id_from_journal(args)
    async with ProviderSession(_provider(args)) as session:
        order = await session.get_order(order_id)
    if not _out_json(args, order):
        _say(render_order(order))
    return EXIT_DELIVERED


async def _order_id_from_journal(args: argparse.Namespace) -> str:
    from energy_async.journal import Journal

    if args.journal is None:
        raise InputError(
            "--client-order-id needs --journal PATH: no provider documents a lookup by your id"
            " (to settle an order of unknown outcome, run `buy` again with the same id)"
        )
    try:
        async with await Journal.open(args.journal, create=False) as journal:
            entry = await journal.get(args.client_order_id)
    except JournalBusy as exc:
        raise JournalBusy(
            f"{exc.message}; meanwhile an order is read by the provider's id (`order ORDER_ID`)",
            path=exc.path,
        ) from None
    if entry is None:
        raise InputError(f"client_order_id {args.client_order_id} is not in {args.journal}")
    if entry.order is None:
        raise InputError(
            f"client_order_id {args.client_order_id} has no provider order yet (state"
            f" {entry.state}); `batch --resume` settles it"
        )
    return entry.order.id


async def _verify(args: argparse.Namespace) -> int:
    from energy_async.report import render_snapshot
    from energy_async.verifier import Verifier

    if args.to is None:
        return await _recheck(args)
    async with Verifier(base_url=_trongrid_url(args)) as verifier:
        snapshot = await verifier.snapshot(args.to)
    payload = msgspec.to_builtins(snapshot)
    payload["energy_available"] = snapshot.energy_available
    if not _out_json(args, payload):
        _say(render_snapshot(snapshot))
    return EXIT_DELIVERED


async def _recheck(args: argparse.Namespace) -> int:
    """`verify ORDER_ID`: the order as the provider has it, judged again from the chain."""
    from energy_async.coordinator import Coordinator
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

    if args.provider is None:
        raise InputError("verify ORDER_ID needs --provider (the provider of that order)")
    order_id = args.order_id
    if args.client_order_id is not None:
        order_id = await _order_id_from_journal(args)
    async with (
        ProviderSession(_provider(args)) as session,
        Verifier(base_url=_trongrid_url(args)) as verifier,
    ):
        order = await session.get_order(order_id)
        _say(f"judging {order.provider} order {order.id} again from the chain (buying nothing)")
        result = await Coordinator(session, verifier).recheck(order, deadline=args.deadline)
    _show_result(args, result)
    return exit_code(result.verdict)


async def _quote(args: argparse.Namespace) -> int:
    from energy_async.report import trx
    from energy_async.session import ProviderSession

    if args.provider == _AUTO:
        return await _quote_every(args)

    async with ProviderSession(_provider(args)) as session:
        quote = await session.quote(energy=args.energy, duration=args.duration)
    if not _out_json(args, quote):
        _say(
            f"{quote.provider}: {args.energy:,} energy for {quote.duration} costs"
            f" {trx(quote.cost_sun)}"
        )
    return EXIT_DELIVERED


async def _quote_every(args: argparse.Namespace) -> int:
    """One row per configured provider, cheapest first, then the ones that could not answer."""
    from energy_async.report import trx

    async with _client(args) as client:
        board = await client.quotes(energy=args.energy, duration=args.duration)
    rows = [{"provider": q.provider, "cost_sun": q.cost_sun, "error": None} for q in board.quotes]
    rows += [
        {"provider": name, "cost_sun": None, "error": reason}
        for name, reason in (*board.unpriced, *board.down)
    ]
    if not _out_json(args, rows):
        for row in rows:
            cost = row["cost_sun"]
            shown = trx(cost) if isinstance(cost, int) else f"no price: {row['error']}"
            _say(f"{row['provider']:<9} {args.energy:,} energy for {args.duration}: {shown}")
    return EXIT_DELIVERED if board.quotes else EXIT_OTHER


def _no_client_order_id_for_auto(args: argparse.Namespace) -> None:
    if args.client_order_id is not None:
        raise InputError("buy --provider auto makes one client_order_id per provider it tries")


def _say_route(result: DeliveryResult) -> None:
    """The router's steps: who quoted what, who was skipped or refused, who was chosen."""
    for step in result.evidence.route:
        _say(f"  route: {step}")


async def _buy_for_transfer_auto(args: argparse.Namespace) -> TransferPurchase:
    """``buy --provider auto --from ... --usdt-to ...``: the router buys the shortfall."""
    _no_client_order_id_for_auto(args)
    async with _client(args) as client:
        bought = await client.buy_for_transfer(
            sender=args.sender,
            receiver=args.usdt_to,
            amount=args.amount,
            token=_token(args),
            duration=args.duration,
            deadline=args.deadline,
        )
    if bought.result is not None:
        _say_route(bought.result)
    return bought


async def _buy_auto(args: argparse.Namespace) -> int:
    """``buy --provider auto``: the router picks, fails over only when nothing was bought."""
    if args.energy is None or args.transfers is not None or args.no_verify:
        raise InputError("buy --provider auto takes --energy (not --transfers or --no-verify)")
    _no_client_order_id_for_auto(args)
    async with _client(args) as client:
        _say(f"buying {args.energy:,} energy for {args.to} from the cheapest provider ...")
        async with anyio.create_task_group() as group:
            group.start_soon(_heartbeat, args.deadline)
            result = await client.buy(
                target=args.to,
                energy=args.energy,
                duration=args.duration,
                deadline=args.deadline,
                hooks=_PhaseLines(),
            )
            group.cancel_scope.cancel()
    _say_route(result)
    _show_result(args, result)
    return exit_code(result.verdict)


def _client(args: argparse.Namespace) -> Client:
    """Every provider configured in the environment, with base URLs from it."""
    from energy_async.client import Client

    urls = {
        name: url
        for name in _provider_names()
        if (url := os.environ.get(_ENV_URL.format(name.upper())))
    }
    return Client.from_env(urls=urls, trongrid_url=_trongrid_url(args))


async def _account(args: argparse.Namespace) -> int:
    from energy_async.report import trx
    from energy_async.session import ProviderSession

    async with ProviderSession(_provider(args)) as session:
        account = await session.account()
    if not _out_json(args, {"provider": account.provider, "balance_sun": account.balance_sun}):
        _say(f"{account.provider}: balance {trx(account.balance_sun)}")
    return EXIT_DELIVERED


async def _batch(args: argparse.Namespace) -> int:
    from energy_async.coordinator import Coordinator
    from energy_async.session import ProviderSession
    from energy_async.verifier import Verifier

    if args.resume and args.journal is None:
        raise InputError("--resume needs --journal PATH (the journal of the batch to continue)")
    if args.status:
        if args.journal is None or not is_dsn(args.journal):
            raise InputError("--status needs --journal postgresql://... (a shared journal)")
        return await cli_workers.show_status(args.journal, args.json)
    if args.token is not None:
        _check_token_for(args.file, args.token)
    if args.provider == _AUTO:
        return await _batch_auto(args)
    provider = _provider(args)
    trongrid_url = _trongrid_url(args)
    async with (
        ProviderSession(provider) as session,
        Verifier(base_url=trongrid_url) as verifier,
    ):
        coordinator = Coordinator(session, verifier)
        guard = await _spend_guard(args, coordinator)
        return await _run_batch(args, coordinator, guard)


async def _spend_guard(args: argparse.Namespace, coordinator: Coordinator) -> SpendGuard | None:
    from energy_async.batch import SpendGuard
    from energy_async.errors import NotSupported

    max_sun = args.max_sun
    if args.max_trx is not None:
        max_sun = args.max_trx if max_sun is None else min(max_sun, args.max_trx)
    limits = (args.max_energy, max_sun, args.max_energy_per_hour, args.max_sun_per_hour)
    if all(limit is None for limit in limits):
        return None
    quoted = None
    if max_sun is not None or args.max_sun_per_hour is not None:
        # The provider's price, where it publishes one: the guard's estimate from the first
        # order on, and its answer for an order that comes back without a price.
        try:
            quote = await coordinator.session.quote(energy=65_000)
            if quote.cost_sun > 0:
                quoted = quote.cost_sun / 65_000
        except NotSupported:
            pass
    return SpendGuard(*limits, quoted_sun_per_energy=quoted)


async def _batch_auto(args: argparse.Namespace) -> int:
    """``batch --provider auto``: the cheapest provider that takes every row buys the batch,
    journalled under it; ``--resume`` continues where the journal says, never re-routing."""
    from energy_async.journal import Journal

    if args.journal is not None and is_dsn(args.journal):
        raise InputError("--provider auto takes a journal file; name the provider to share one")
    async with _client(args) as client:
        if args.resume:
            async with await Journal.open(args.journal, create=False) as journal:
                name = await _journalled_provider(journal, args.journal)
            route = [f"{name}: holds this batch's orders (journal); resumed there, not re-routed"]
            if name not in client.coordinators:
                needed = " and ".join(_registry()[name].env_names())
                raise ConfigurationError(
                    f"the journal's orders are at {name}: set {needed} to resume them"
                )
        else:
            name, route = await _route_batch(args, client)
        _say(f"provider for this batch: {name} ({route[-1]})")
        coordinator = client.coordinators[name]
        guard = await _spend_guard(args, coordinator)
        return await _run_batch(args, coordinator, guard, route=route)


async def _journalled_provider(journal: Journal, path: Path) -> str:
    """The one provider a journal's orders were sent to (an auto batch has exactly one)."""
    names = {entry.provider async for entry in journal.iter_entries()}
    if len(names) != 1:
        held = ", ".join(sorted(names)) or "no orders"
        raise InputError(f"journal {path} holds {held}; resume it with --provider NAME")
    return names.pop()


async def _route_batch(args: argparse.Namespace, client: Client) -> tuple[str, list[str]]:
    """Quote the batch's largest order at every provider; the cheapest that takes every row."""
    from energy_async.batchfile import FileKind, kind_of, read_requests

    if kind_of(args.file) is FileKind.PAYOUTS:
        raise InputError("a payout file is planned for one provider: name it with --provider")

    def shape(**row: Any) -> OrderRequest:  # reads the amounts only; each provider judges
        if row["transfers"] is not None or row["energy"] is None:
            raise InputError("batch --provider auto takes rows with energy (not transfers)")
        return OrderRequest(
            target=row["target"],
            energy=row["energy"],
            duration=row["duration"],
            client_order_id=row["client_order_id"] or "",
        )

    rows = {
        line: item
        for line, item in read_requests(args.file, shape)
        if isinstance(item, OrderRequest)
    }
    if not rows:
        raise InputError(f"{args.file} has no rows of energy to buy for")

    def takes_every_row(name: str) -> bool:
        # The rows as read above, each judged by this provider's own validator (no re-read).
        prepare = client.sessions[name].prepare
        try:
            for line, row in rows.items():
                prepare(
                    target=row.target,
                    energy=row.energy,
                    duration=row.duration,
                    client_order_id=row.client_order_id or f"r{line}",
                )
        except (InputError, ValueError):
            return False
        return True

    energy = max(row.energy or 0 for row in rows.values())
    duration = next(iter(rows.values())).duration
    return await client.router.pick(energy=energy, duration=duration, accepts=takes_every_row)


def _check_token_for(file: Path, token: str) -> None:
    """``--token`` is bad input unless it is an address and the file is one of payouts."""
    from energy_async.address import validate_address
    from energy_async.batchfile import FileKind, kind_of

    validate_address(token)
    if kind_of(file) is not FileKind.PAYOUTS:
        raise InputError(
            "--token is for a payout file (from,usdt_to,amount); this one is a file of orders"
        )


async def _run_batch(
    args: argparse.Namespace,
    coordinator: Coordinator,
    guard: SpendGuard | None,
    *,
    route: Sequence[str] = (),
) -> int:
    from energy_async.batch import run_batch, run_resume
    from energy_async.batchfile import FileKind, kind_of, read_requests
    from energy_async.journal import Journal

    journal = None
    run_id = secrets.token_hex(8)
    shared = args.journal is not None and is_dsn(args.journal)
    if args.journal is not None and not shared:
        journal = await Journal.open(args.journal, create=not args.resume)
    try:
        if journal is not None:
            counts = await journal.counts()
            entries = sum(n for key, n in counts.items() if key in _STATES)
            if entries and not args.resume:
                raise InputError(
                    f"journal {args.journal} already holds {entries} orders; pass --resume to "
                    "continue that batch, or give a new --journal path"
                )
            if args.resume:
                run_id = await journal.run_id(None) or await _recorded_run_id(journal) or run_id
            await journal.run_id(run_id)

        def id_for_line(line: int) -> str:
            return f"ea-{run_id}-{line}"

        prepare = coordinator.session.prepare
        planned: list[PlannedSender] = []
        if kind_of(args.file) is FileKind.PAYOUTS:
            if shared:
                raise InputError(
                    "a payout file is planned against the chain when it is loaded, which workers"
                    " sharing a postgresql:// journal cannot repeat alike; use a --journal file,"
                    " or a file of orders (to,energy)"
                )
            planned = await _plan_payouts(args, coordinator, journal, id_for_line)

            def rows() -> Iterator[tuple[int, OrderRequest | RowProblem]]:
                return ((p.line, p.request) for p in planned if p.request is not None)

            total = sum(1 for p in planned if p.request is not None or p.journalled)
            if not total:
                return EXIT_OTHER if _not_bought(planned) else EXIT_DELIVERED
        else:

            def rows() -> Iterator[tuple[int, OrderRequest | RowProblem]]:
                return read_requests(args.file, prepare, id_for_line=id_for_line)

            total = _count_good_rows(args, rows())
        _warn_if_throttled(coordinator, total)

        def good_requests() -> Iterator[OrderRequest]:
            for _, item in rows():
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
        await _preflight(coordinator)
        if journal is not None:
            counts = await journal.counts()
            settled = counts.get("SETTLED", 0)
            if args.resume:
                _say(
                    f"journal {args.journal}: {settled} of {total} orders settled; finishing"
                    f" {total - settled} (not sent, unsettled or UNKNOWN)"
                )
            batch = run_resume(
                coordinator,
                journal,
                concurrency=args.concurrency,
                deadline=args.deadline,
                spend_guard=guard,
                route=route,
            )
            total -= settled
        else:
            _say("no --journal: this batch cannot be resumed if it is interrupted")
            batch = run_batch(
                coordinator,
                good_requests(),
                concurrency=args.concurrency,
                deadline=args.deadline,
                journal=None,
                spend_guard=guard,
                route=route,
            )
        code = await _drain(args, batch, total)
        return EXIT_OTHER if code == EXIT_DELIVERED and _not_bought(planned) else code
    finally:
        if journal is not None:
            await journal.aclose()


def _count_good_rows(
    args: argparse.Namespace, items: Iterable[tuple[int, object | RowProblem]]
) -> int:
    """How many rows are good; bad ones stop the batch (nothing sent) unless --skip-invalid."""
    from energy_async.batchfile import RowProblem, problems_text

    total = 0
    problems: list[RowProblem] = []
    problem_count = 0
    for _, item in items:
        if not isinstance(item, RowProblem):
            total += 1
            continue
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
    if not total:
        raise InputError(f"{args.file} has no rows to buy for")
    return total


async def _plan_payouts(
    args: argparse.Namespace,
    coordinator: Coordinator,
    journal: Journal | None,
    id_for_line: Callable[[int], str],
) -> list[PlannedSender]:
    """Read a payout file's transfers against the chain: one order per sender for what it
    lacks (payouts.py); says what each sender gets, and buys nothing."""
    from energy_async.batchfile import Payout, read_payouts
    from energy_async.payouts import plan_file
    from energy_async.readiness import ReadinessChecker

    _count_good_rows(args, read_payouts(args.file))
    good = [(line, p) for line, p in read_payouts(args.file) if isinstance(p, Payout)]

    async def journalled(client_order_id: str) -> bool:
        return journal is not None and await journal.get(client_order_id) is not None

    try:
        planned = await plan_file(
            good,
            checker=ReadinessChecker(coordinator.verifier),
            provider=coordinator.session.provider,
            prepare=coordinator.session.prepare,
            id_for_line=id_for_line,
            token=_token(args),
            journalled=journalled,
        )
    except _CHAIN_DOWN as exc:
        raise NothingBought(
            f"TronGrid could not be read to plan the payouts ({exc.message}); nothing was sent",
            service="trongrid",
            host=URL(coordinator.verifier.base_url or "").host,
        ) from None
    ordered = [p for p in planned if p.request is not None]
    ready = [p for p in planned if p.request is None and p.reason.startswith("ready")]
    _say(
        f"payouts: {len(good)} transfer(s) from {len(planned)} sender(s): {len(ordered)} to buy"
        f" for, {len(ready)} ready already, {len(_not_bought(planned))} energy cannot help"
    )
    for sender in planned:
        if sender.request is None and not sender.journalled:
            _say(f"  line {sender.line} {sender.sender}: {sender.reason}")
            if args.json:
                _write_json(
                    {
                        "verdict": None,
                        "lines": list(sender.lines),
                        "to": sender.sender,
                        "not_sent": sender.reason,
                    }
                )
    return planned


def _not_bought(planned: list[PlannedSender]) -> list[PlannedSender]:
    """Senders whose transfers will not land and for whom nothing is bought."""
    return [p for p in planned if p.reason.startswith("not bought")]


_STATES = ("INTENDED", "SENT", "ORDERED", "SETTLED")


async def _preflight(coordinator: Coordinator) -> None:
    """One signed read before the first order: wrong credentials or a provider that is down
    end the batch here, in one line, with nothing sent (the journal keeps every row to do)."""
    from energy_async.errors import TransientError

    session = coordinator.session
    try:
        account = await session.account()
    except TransientError as exc:
        host = URL(session.provider.base_url).host
        raise NothingBought(
            f"{session.provider.name} did not answer ({exc.message}); nothing was sent",
            service=session.provider.name,
            host=host,
        ) from None
    except AuthenticationError:
        raise
    except EnergyError as exc:
        _say(f"warning: the account could not be read ({exc.message}); going on")
        return
    if account.balance_sun is not None:
        from energy_async.report import trx

        _say(f"{account.provider} balance {trx(account.balance_sun)}")


def _warn_if_throttled(coordinator: Coordinator, total: int) -> None:
    from energy_async.verifier import API_KEY_ENV, RATE_WITHOUT_KEY

    if os.environ.get(API_KEY_ENV) or coordinator.verifier.base_url is None:
        return
    from yarl import URL

    from energy_async._http import is_loopback_host

    if is_loopback_host(URL(coordinator.verifier.base_url).host or ""):
        return
    _say(
        f"warning: {API_KEY_ENV} is not set: TronGrid allows about {RATE_WITHOUT_KEY:g}"
        f" requests a second without a key, so {total} orders (a few reads each) will be"
        " throttled; set it for about 15 a second"
    )


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
    """The run id behind generated ids (``ea-<run>-<line>``) in a journal of schema 1."""
    async for entry in journal.iter_entries():
        parts = entry.client_order_id.split("-")
        if len(parts) == 3 and parts[0] == "ea" and parts[2].isdigit():
            return str(parts[1])
    return None


async def _drain(
    args: argparse.Namespace, batch: AbstractAsyncContextManager[BatchRun], total: int
) -> int:
    from energy_async.batch import Skipped
    from energy_async.report import BatchSummary, Progress

    progress = Progress(total, sys.stderr, on_gone=_stderr_gone)
    summary = BatchSummary()
    report = _open_report(args)
    interrupted: list[int] = []
    async with batch as run:
        async with anyio.create_task_group() as group:
            group.start_soon(_tick, progress, run)
            group.start_soon(_on_signals, run, args.grace, interrupted, group.cancel_scope)
            async for outcome in run.outcomes():
                summary.add(outcome)
                if isinstance(outcome, Skipped):
                    progress.skip(sent=outcome.sent)
                else:
                    progress.add(outcome)
                if args.json:
                    _write_json(_outcome_json(outcome))
                if report is not None:
                    report.write(outcome)
            group.cancel_scope.cancel()
        stop_reason = run.stop_reason
        journal_error = run.journal_error
    progress.finish()
    if report is not None:
        report.close()
        if report.failed is not None:
            _say(f"energy-async: --report {args.report} could not be written ({report.failed})")
    _say(summary.render(progress, stop_reason, lines=_line_numbers(args, summary)))
    if journal_error is not None:
        _say(
            f"energy-async: journal error: {journal_error}; results after it were printed but"
            " not journalled"
        )
    if interrupted or summary.unsettled_ids:
        _say_resume(args, summary)
    if interrupted:
        return EXIT_INTERRUPTED
    return summary.exit_code()


def _outcome_json(outcome: Outcome) -> Any:
    from energy_async.batch import Skipped

    if isinstance(outcome, Skipped):
        return {
            "verdict": None,
            "client_order_id": outcome.client_order_id,
            "request": outcome.request,
            "not_sent" if not outcome.sent else "unsettled": outcome.reason,
        }
    return outcome


def _line_numbers(args: argparse.Namespace, summary: BatchSummary) -> dict[str, int]:
    """The file's line of every row the summary names: from a generated id (``ea-<run>-<line>``)
    or, for the user's own ids, one more pass over the file."""
    from energy_async.batchfile import BatchFileError, lines_of

    lines: dict[str, int] = {}
    others = set()
    for cid in summary.named_ids():
        parts = cid.split("-")
        if len(parts) == 3 and parts[0] == "ea" and parts[2].isdigit():
            lines[cid] = int(parts[2])
        else:
            others.add(cid)
    if others:
        with contextlib.suppress(BatchFileError):  # the file changed since: lines unknown
            lines |= lines_of(args.file, others)
    return lines


def _open_report(args: argparse.Namespace) -> ReportWriter | None:
    from energy_async.report import ReportWriter

    if args.report is None:
        return None
    try:
        stream = open(args.report, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot write --report {args.report}: {exc.strerror}") from None
    return ReportWriter(stream)


def _say_resume(args: argparse.Namespace, summary: BatchSummary) -> None:
    from energy_async.report import shown_ids

    if summary.unsettled_ids:
        _say(f"unsettled client_order_ids: {shown_ids(summary.unsettled_ids)}")
    if args.journal is not None:
        command, redacted = _resume_command(args)
        _say(f"to finish them: {command}")
        if redacted:
            _say(
                "  (the journal's DSN is shown without its password and options: give them as"
                " in this run, or the password in PGPASSWORD)"
            )
    else:
        _say("no --journal was given: settle them with `buy --client-order-id ID` (same row)")


# Options that shape only what this run prints: the run that finishes the batch picks its own
# (and must not overwrite this run's --report).
_NOT_FOR_RESUME = frozenset({"help", "verbose", "json", "report", "resume", "status"})


def _resume_command(args: argparse.Namespace) -> tuple[str, bool]:
    """The command that finishes this batch, rebuilt from the parsed options: every option
    given that shapes what is bought and how (provider and base URLs, --skip-invalid, spend
    limits, --token, --deadline, --concurrency, --grace, ...), shell-quoted. Never a secret:
    credentials come from the environment, and a ``postgresql://`` journal is shown without
    its password and options (then the second value is True)."""
    import shlex

    words = ["energy-async", "batch"]
    redacted = False
    for action in _batch_parser()._actions:
        if action.dest in _NOT_FOR_RESUME:
            continue
        value = getattr(args, action.dest, None)
        if not action.option_strings:  # FILE: never taken for an option
            text = str(value)
            words.append(f"./{text}" if text.startswith("-") else text)
            continue
        if value is None or value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if action.nargs == 0:  # a switch (--skip-invalid)
            words.append(flag)
            continue
        text = _option_text(action, value)
        if action.dest == "journal" and is_dsn(text):
            from energy_async.journal_pg import redact_dsn

            shown = redact_dsn(text)
            redacted, text = shown != text, shown
        words += [flag, text]
    words.append("--resume")
    return shlex.join(words), redacted


def _option_text(action: argparse.Action, value: object) -> str:
    """A parsed option's value as it is typed: what its ``type`` reads back as the same."""
    if action.type is _trx and isinstance(value, int):
        from decimal import Decimal

        return format(Decimal(value) / 1_000_000, "f")  # sun back to TRX, exactly
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def _batch_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            sub: argparse.ArgumentParser = action.choices["batch"]
            return sub
    raise AssertionError("no batch command")  # pragma: no cover - build_parser registers it


async def _tick(progress: Progress, run: BatchRun) -> None:
    """Redraw the progress line at least once a second, whatever settles."""
    while True:
        await anyio.sleep(1.0)
        progress.in_flight = len(run.in_flight)
        progress.show()


async def _on_signals(
    run: BatchRun, grace: float, interrupted: list[int], scope: anyio.CancelScope
) -> None:
    """SIGINT/SIGTERM: stop sending, let orders in flight settle for ``grace`` seconds; a
    second signal (or the end of the grace) gives up on them: they stay unsettled, journalled."""
    wanted = [signal.SIGINT, signal.SIGTERM]
    with anyio.open_signal_receiver(*wanted) as signals:
        async for signum in signals:
            interrupted.append(signum)
            name = signal.Signals(signum).name
            if len(interrupted) > 1:
                _say(f"\n{name} again: not waiting for the orders in flight")
                run.abort()
                return
            run.stop(f"interrupted ({name})")
            _say(
                f"\n{name}: no new orders; waiting up to {grace:g} s for the"
                f" {len(run.in_flight)} in flight (again to stop now)"
            )
            with anyio.move_on_after(grace):
                async for again in signals:
                    interrupted.append(again)
                    _say(f"{signal.Signals(again).name} again: not waiting any longer")
                    break
            run.abort()
            return


async def _sandbox(args: argparse.Namespace) -> int:
    from energy_async.sandbox import Sandbox

    sandbox = Sandbox(seed=args.seed, speed=args.speed)
    try:
        serving = sandbox.serve(host=args.host, port=args.port)
        urls = await serving.__aenter__()
    except OSError as exc:
        raise InputError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
            " (pick another --port, or 0 for any free one)"
        ) from None
    try:
        _say(sandbox.describe(urls))
        _say("press Ctrl-C to stop")
        await anyio.sleep_forever()
    finally:
        await serving.__aexit__(None, None, None)
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


_COMMANDS: tuple[Callable[[argparse._SubParsersAction[_Parser]], None], ...] = (
    _add_buy,
    _add_ready,
    _add_order,
    _add_verify,
    _add_quote,
    _add_account,
    _add_batch,
    _add_journal,
    _add_sandbox,
    _add_demo,
)


# --- plumbing ------------------------------------------------------------------------------------


def _provider(args: argparse.Namespace) -> Provider:
    if args.provider == _AUTO:
        raise InputError("--provider auto is for buy, quote and batch; name one provider here")
    kind = _registry()[args.provider]
    url = args.provider_url or os.environ.get(_ENV_URL.format(kind.name.upper())) or None
    return kind.from_env(base_url=url)


def _trongrid_url(args: argparse.Namespace) -> str:
    """The flag's, else the environment's, else mainnet's; checked here, so that a bad one
    is refused before anything is said or sent."""
    from energy_async._http import check_base_url

    given = getattr(args, "trongrid_url", None)  # not every command takes the option
    url = given or os.environ.get(_TRONGRID_URL_ENV) or _DEFAULT_TRONGRID_URL
    return str(check_base_url(url, what="TronGrid base_url"))


def _amount(args: argparse.Namespace) -> str:
    return f"{args.energy:,} energy" if args.energy is not None else f"{args.transfers} transfers"


def _say_order(order: Order) -> None:
    from energy_async.report import render_order

    _say(render_order(order))


def _out_json(args: argparse.Namespace, value: Any) -> bool:
    if args.json:
        _write_json(value)
    return bool(args.json)


def _show_result(args: argparse.Namespace, result: DeliveryResult) -> None:
    from energy_async.report import render_result

    _say(render_result(result))
    _out_json(args, result)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _answer(exc: BaseException) -> tuple[int, str]:
    """The exit code and the one line for an error that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted" + (f" by {exc.args[0]}" if exc.args else "")
    if isinstance(exc, AuthenticationError):
        return EXIT_USAGE, f"credentials refused: {_one_line(exc)}"
    if isinstance(exc, InputError):
        return EXIT_USAGE, f"error: {_one_line(exc)}"
    if isinstance(exc, JournalUnavailable):
        return EXIT_NOTHING_BOUGHT, f"journal unavailable: {_one_line(exc)}"
    if isinstance(exc, JournalError):
        return EXIT_USAGE, f"journal error: {_one_line(exc)}; nothing was bought"
    if isinstance(exc, NothingBought):
        return EXIT_NOTHING_BOUGHT, f"nothing bought, {exc.service} unavailable: {_one_line(exc)}"
    if isinstance(exc, OutcomeUnknown):
        return EXIT_UNKNOWN, (
            f"outcome unknown: {_one_line(exc)}; settle it by running `buy` again with"
            f" --client-order-id {exc.client_order_id}"
        )
    if isinstance(exc, InsufficientBalance):
        return EXIT_OTHER, f"the provider account cannot pay: {_one_line(exc)}; nothing was bought"
    if isinstance(exc, EnergyError):
        return EXIT_OTHER, f"error: {_one_line(exc)}"
    if isinstance(exc, OSError):
        return EXIT_OTHER, f"error: {exc.strerror or _one_line(exc)}"
    return EXIT_OTHER, (
        f"unexpected error {type(exc).__name__}: {_one_line(exc)[:300]} (run with -vv for"
        " details, and please report it)"
    )


def _run(handler: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    async def runner() -> int:
        return await handler(args)

    previous = _terminate_like_ctrl_c()
    try:
        return anyio.run(runner)
    except BaseException as caught:
        if isinstance(caught, SystemExit):
            raise
        exc = most_telling(error_leaves(caught))  # the error inside the task groups
        code, line = _answer(exc)
        logging.getLogger("energy_async.cli").debug("the command failed", exc_info=caught)
        _say(f"energy-async: {line}")
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminate_like_ctrl_c() -> signal._HANDLER:
    """SIGTERM ends a command the way Ctrl-C does (one line, exit 130), not silently.

    While a batch drains its orders it listens for both signals itself (stop sending, let
    orders settle); before and after that, e.g. during the credentials check before anything
    is sent, this handler answers. Returns the handler it replaced (None off the main thread,
    where Python allows no signal handlers).
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    return signal.signal(signal.SIGTERM, interrupt)


def _configure_logging(verbosity: int) -> None:
    root = logging.getLogger("energy_async")
    if verbosity <= 0:
        # Quiet: warnings are in the summary already (no last-resort printing to stderr).
        if not any(isinstance(h, logging.NullHandler) for h in root.handlers):
            root.addHandler(logging.NullHandler())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbosity > 1 else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(getattr(args, "verbose", 0))  # a command without -v logs nothing
    return _run(args.handler, args)


# --- a TRC20 transfer: `ready`, and `buy --usdt-to` (readiness.py) -----------------------------


async def _ready(args: argparse.Namespace) -> int:
    from energy_async.readiness import ReadinessChecker, render_readiness
    from energy_async.verifier import Verifier

    async with Verifier(base_url=_trongrid_url(args)) as verifier:
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
    try:
        if args.provider == _AUTO:
            bought = await _buy_for_transfer_auto(args)
        else:
            async with (
                ProviderSession(_provider(args)) as session,
                Verifier(base_url=_trongrid_url(args)) as verifier,
            ):
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

    return USDT if args.token is None else str(args.token)


def _chain_unavailable(exc: EnergyError) -> int:
    _say(f"energy-async: TronGrid unavailable, nothing was bought: {_one_line(exc)}")
    return EXIT_UNAVAILABLE

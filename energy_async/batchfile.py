"""Batch input files: CSV (header ``to,energy`` and optional ``duration``, ``client_order_id``,
``transfers``) or JSON Lines with the same keys; or payout files (header
``from,usdt_to,amount``, optional ``duration``): the transfers a service is about to send, for
which the batch buys exactly the energy each sender lacks (see `payouts`).

CSV as spreadsheets write it: with or without a UTF-8 BOM, comma- or semicolon-separated
(sniffed from the header), header names in any case. A header with a repeated or unknown column
is refused showing the header found, never read by guessing which column was meant.

Rows are streamed, never loaded whole, so a file can be read twice (validate every row first,
then send) without holding thousands of requests in memory.
"""

from __future__ import annotations

import contextlib
import csv
import enum
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from energy_async.address import validate_address
from energy_async.errors import InputError
from energy_async.models import OrderRequest

__all__ = [
    "BatchFileError",
    "FileKind",
    "Payout",
    "RowProblem",
    "kind_of",
    "lines_of",
    "problems_text",
    "read_payouts",
    "read_requests",
]

_MAX_PROBLEMS_SHOWN = 50


class FileKind(enum.Enum):
    """What a file's rows are: orders (``to``, ``energy``) or payouts (``from``, ``usdt_to``,
    ``amount``); its header (or first JSON object) says which, never a guess per row."""

    ORDERS = "orders"
    PAYOUTS = "payouts"

    @property
    def known(self) -> frozenset[str]:
        if self is FileKind.ORDERS:
            return frozenset({"to", "energy", "transfers", "duration", "client_order_id"})
        return frozenset({"from", "usdt_to", "amount", "duration"})

    def lacks(self, names: set[str]) -> bool:
        """Whether a header with these names misses a column this kind needs."""
        if self is FileKind.ORDERS:
            return "to" not in names or not ({"energy", "transfers"} & names)
        return not {"from", "usdt_to", "amount"} <= names

    @staticmethod
    def of(names: set[str]) -> FileKind:
        return FileKind.PAYOUTS if {"usdt_to", "from", "amount"} & names else FileKind.ORDERS


class BatchFileError(InputError):
    """The file cannot be read as a batch at all (missing, bad header, not CSV or JSONL)."""


@dataclass(frozen=True, slots=True)
class RowProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


Prepare = Callable[..., OrderRequest]


def read_requests(
    path: str | Path,
    prepare: Prepare,
    *,
    id_for_line: Callable[[int], str | None] | None = None,
) -> Iterator[tuple[int, OrderRequest | RowProblem]]:
    """``(line, request)`` for good rows and ``(line, problem)`` for bad ones, in file order.

    ``prepare`` is the session's validator (``ProviderSession.prepare``), so a row is judged by
    exactly the rules the order would meet. ``id_for_line`` gives rows without their own
    ``client_order_id`` a stable one (so a resumed run can find them again).
    """
    seen_ids: set[str] = set()
    for line, fields in _rows(Path(path), FileKind.ORDERS):
        problem = _shape(fields)
        if problem:
            yield line, RowProblem(line, problem)
            continue
        given_id = fields.get("client_order_id") or None
        try:
            request = prepare(
                target=fields.get("to", ""),
                energy=_int(fields, "energy"),
                transfers=_int(fields, "transfers"),
                duration=fields.get("duration") or "1h",
                client_order_id=given_id or (id_for_line(line) if id_for_line else None),
            )
        except (InputError, ValueError) as exc:
            yield line, RowProblem(line, getattr(exc, "message", str(exc)))
            continue
        if request.client_order_id in seen_ids:
            yield line, RowProblem(line, f"client_order_id {request.client_order_id} repeats")
            continue
        if given_id:
            seen_ids.add(request.client_order_id)
        yield line, request


@dataclass(frozen=True, slots=True)
class Payout:
    """One transfer of a payout file, its addresses checked and its amount a positive number."""

    sender: str
    receiver: str
    amount: str  # token units as written ("12.5"); the token's decimals are the chain's
    duration: str


def kind_of(path: str | Path) -> FileKind:
    """Whether ``path`` holds orders or payouts, from its header (or first JSON object)."""
    path = Path(path)
    with _reading(path) as handle:
        if _is_jsonl(path):
            first = next((text for text in handle if text.strip()), "{}")
            try:
                value = json.loads(first)
            except (ValueError, RecursionError):
                return FileKind.ORDERS  # the row is refused when read, with its line
            return FileKind.of(set(value)) if isinstance(value, dict) else FileKind.ORDERS
        first = handle.readline()
        header = next(csv.reader([first], delimiter=_delimiter(first)), [])
        return FileKind.of({name.strip().lower() for name in header})


def read_payouts(path: str | Path) -> Iterator[tuple[int, Payout | RowProblem]]:
    """``(line, payout)`` for good rows and ``(line, problem)`` for bad ones, in file order."""
    for line, fields in _rows(Path(path), FileKind.PAYOUTS):
        problem = fields.get("__error__")
        if problem:
            yield line, RowProblem(line, problem)
            continue
        try:
            sender = validate_address(fields.get("from", ""))
            receiver = validate_address(fields.get("usdt_to", ""))
        except InputError as exc:
            yield line, RowProblem(line, exc.message)
            continue
        amount = fields.get("amount", "")
        try:
            positive = Decimal(amount) > 0 and Decimal(amount).is_finite()
        except InvalidOperation:
            positive = False
        if not positive:
            yield line, RowProblem(line, f"amount must be a positive number, got {amount!r}")
            continue
        yield line, Payout(sender, receiver, amount, fields.get("duration") or "1h")


def lines_of(path: str | Path, client_order_ids: set[str]) -> dict[str, int]:
    """The line of each row that carries one of these ``client_order_id`` values."""
    found: dict[str, int] = {}
    for line, fields in _rows(Path(path), FileKind.ORDERS):
        cid = fields.get("client_order_id")
        if cid in client_order_ids:
            found[cid] = line
    return found


def problems_text(problems: list[RowProblem], total: int) -> str:
    shown = [str(problem) for problem in problems[:_MAX_PROBLEMS_SHOWN]]
    if total > len(shown):
        shown.append(f"... and {total - len(shown)} more")
    return "\n".join(shown)


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[TextIO]:
    """The file as text, its read errors as one `BatchFileError` naming it."""
    try:
        # utf-8-sig: a BOM (Excel's "CSV UTF-8") is read as no BOM.
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise BatchFileError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        try:
            yield handle
        except UnicodeDecodeError:
            raise BatchFileError(f"{path} is not UTF-8 text") from None
        except OSError as exc:
            raise BatchFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def _delimiter(header: str) -> str:
    return ";" if header.count(";") > header.count(",") else ","


def _rows(path: Path, kind: FileKind) -> Iterator[tuple[int, dict[str, str]]]:
    with _reading(path) as handle:
        if _is_jsonl(path):
            yield from _jsonl(handle, kind)
        else:
            yield from _csv(handle, path, kind)


def _csv(handle: TextIO, path: Path, kind: FileKind) -> Iterator[tuple[int, dict[str, str]]]:
    first = handle.readline()
    delimiter = _delimiter(first)
    reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter)
    try:
        raw_header = next(reader, [])
        header = [name.strip().lower() for name in raw_header]
        found = delimiter.join(raw_header)[:200]
        if kind.lacks(set(header)):
            raise BatchFileError(f"{path}: {_HEADER_WANTED[kind]}; found {found!r}")
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise BatchFileError(
                f"{path}: column(s) {', '.join(repeated)} appear more than once in the header"
                f" {found!r}"
            )
        unknown = [name for name in header if name not in kind.known]
        if unknown:
            raise BatchFileError(
                f"{path}: unknown column(s) {', '.join(unknown)} in the header {found!r}"
                f" (known: {', '.join(sorted(kind.known))})"
            )
        for row in reader:
            if len(row) > len(header):
                yield reader.line_num, {"__error__": "more fields than the header has"}
                continue
            fields = {name: value.strip() for name, value in zip(header, row, strict=False)}
            if not any(fields.values()):
                continue  # a blank line
            yield reader.line_num, fields
    except csv.Error as exc:
        raise BatchFileError(f"{path}: line {reader.line_num}: {exc}") from None


_HEADER_WANTED = {
    FileKind.ORDERS: "the first line must be a CSV header with 'to' and 'energy' (optional:"
    " duration, client_order_id, transfers)",
    FileKind.PAYOUTS: "a payout file's first line must be a CSV header with 'from', 'usdt_to'"
    " and 'amount' (optional: duration)",
}


def _jsonl(handle: TextIO, kind: FileKind) -> Iterator[tuple[int, dict[str, str]]]:
    for line, text in enumerate(handle, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text, parse_float=str)  # 12.5 stays "12.5", never a float
        except (ValueError, RecursionError):
            yield line, {"__error__": "not a JSON object"}
            continue
        if not isinstance(value, dict):
            yield line, {"__error__": "not a JSON object"}
            continue
        unknown = sorted(set(value) - kind.known)
        if unknown:
            yield line, {"__error__": f"unknown key(s) {', '.join(unknown)}"}
            continue
        if any(not isinstance(v, str | int) or isinstance(v, bool) for v in value.values()):
            yield line, {"__error__": "values must be strings or whole numbers"}
            continue
        yield line, {key: str(v) for key, v in value.items()}


def _shape(fields: dict[str, str]) -> str | None:
    if "__error__" in fields:
        return fields["__error__"]
    if not fields.get("to"):
        return "missing 'to' address"
    return None


def _int(fields: dict[str, str], name: str) -> int | None:
    text = fields.get(name, "")
    if not text:
        return None
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number, got {text!r}")
    return int(text)

"""The sandbox in a child process, for benchmarks whose client CPU must be measured alone.

``sandbox_process`` starts a fresh sandbox in a spawned process, with its request logs off so
its memory stays flat over long runs, and hands back what a client needs: the CatFee and
TronGrid URLs, the test credentials, a pool of activated targets, and the chain clock's anchor,
so that a block's timestamp (chain time) maps back to the real moment the block was produced.
``clients`` opens a CatFee session and a Verifier on it, ``scaled_poll`` fits the
coordinator's default poll policy to the fast clock, and ``source_version`` says which
energy_async code a figure was measured on.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing.connection import Connection
from pathlib import Path

import anyio
import msgspec

import energy_async
from energy_async import CatFee, PollPolicy, ProviderSession, Verifier
from energy_async._http import LOOPBACK_RATE, RateLimiter

__all__ = [
    "LIFTED_RATE",
    "Latency",
    "RunningSandbox",
    "SandboxInfo",
    "chain_drift_ms",
    "clients",
    "rate_limits",
    "sandbox_process",
    "scaled_poll",
    "source_version",
]


LIFTED_RATE = 1e9  # requests per second: the limiters stay in the path, their rate out of reach


@dataclass(frozen=True, slots=True)
class SandboxInfo:
    """How to reach one sandbox and read its clock."""

    catfee_url: str
    trongrid_url: str
    admin_url: str
    api_key: str
    api_secret: str
    targets: tuple[str, ...]
    speed: float
    anchor_real: float  # time.time() ...
    anchor_chain: float  # ... and the chain clock, read together in the sandbox's process

    def real_time(self, chain_ms: int) -> float:
        """When (Unix seconds, this machine's clock) the chain clock showed ``chain_ms``."""
        return self.anchor_real + (chain_ms / 1000 - self.anchor_chain) / self.speed


@dataclass(frozen=True, slots=True)
class Latency:
    """Seconds each request waits before the service answers: mainnet-like round trips."""

    provider: float = 0.2
    trongrid: float = 0.15


def _serve(
    conn: Connection, seed: int, speed: float, targets: int, latency: Latency | None
) -> None:
    from energy_async.sandbox import CATFEE_API_KEY, CATFEE_API_SECRET, Fault, Sandbox

    async def main() -> None:
        sandbox = Sandbox(seed=seed, speed=speed)
        for control in (sandbox.catfee.control, sandbox.mefree.control, sandbox.trongrid):
            control.keep_log = False
        if latency is not None:
            # The sandbox's own LATENCY fault on every request: the answer waits, then
            # reflects the state when it is produced (as a far server's would).
            for control, delay in (
                (sandbox.catfee.control, latency.provider),
                (sandbox.mefree.control, latency.provider),
                (sandbox.trongrid, latency.trongrid),
            ):
                control.faults.set_rate(Fault.LATENCY, 1.0, delay=delay)
        async with sandbox.serve() as urls:
            pool = tuple(sandbox.new_target() for _ in range(targets))
            anchor_real, anchor_chain = time.time(), sandbox.chain.clock.now()
            conn.send(
                SandboxInfo(
                    urls.catfee,
                    urls.trongrid,
                    urls.admin,
                    CATFEE_API_KEY,
                    CATFEE_API_SECRET,
                    pool,
                    speed,
                    anchor_real,
                    anchor_chain,
                )
            )
            # Until the parent says stop, answer its questions about this process's CPU.
            while await anyio.to_thread.run_sync(conn.recv) == "cpu":
                conn.send(time.process_time())

    anyio.run(main)


class RunningSandbox:
    """A sandbox process: how to reach it, and the CPU it has used so far."""

    def __init__(self, info: SandboxInfo, conn: Connection) -> None:
        self.info = info
        self._conn = conn

    def cpu_seconds(self) -> float:
        self._conn.send("cpu")
        seconds: float = self._conn.recv()
        return seconds


@contextmanager
def sandbox_process(
    *, speed: float, targets: int, seed: int = 0, latency: Latency | None = None
) -> Iterator[RunningSandbox]:
    """A sandbox on a chain clock ``speed`` times real time, in its own process, with every
    answer delayed by ``latency`` when given."""
    if speed <= 0:
        raise ValueError("a benchmark needs a running chain clock (speed > 0)")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(child, seed, speed, targets, latency), daemon=True
    )
    server.start()
    try:
        if not parent.poll(60):
            raise RuntimeError("the sandbox process did not start within 60 s")
        info: SandboxInfo = parent.recv()
        yield RunningSandbox(info, parent)
    finally:
        if server.is_alive():
            parent.send("stop")
            server.join(timeout=10)
        if server.is_alive():
            server.terminate()
            server.join()
        parent.close()


class _State(msgspec.Struct):
    chain_time: float


def chain_drift_ms(info: SandboxInfo) -> float:
    """How far the anchor's prediction of chain time is from the sandbox's own answer now.

    In real milliseconds: the check that inclusion times derived from the anchor are right,
    give or take half a loopback round trip.
    """
    import urllib.request

    before = time.time()
    with urllib.request.urlopen(f"{info.admin_url}/state", timeout=10) as reply:
        state = msgspec.json.decode(reply.read(), type=_State)
    after = time.time()
    predicted = info.anchor_chain + ((before + after) / 2 - info.anchor_real) * info.speed
    return (state.chain_time - predicted) * 1000 / info.speed


@asynccontextmanager
async def clients(
    info: SandboxInfo, *, lift_limits: bool = True
) -> AsyncIterator[tuple[ProviderSession, Verifier]]:
    """A CatFee session and a Verifier on the sandbox.

    On loopback each client still allows only ``LOOPBACK_RATE`` requests per second by default,
    which a coordinator with 128 orders in flight reaches (about 10 requests per order), so
    with ``lift_limits`` the figures measure the code rather than that default.
    """
    provider = CatFee(api_key=info.api_key, api_secret=info.api_secret, base_url=info.catfee_url)
    limiter = RateLimiter(LIFTED_RATE) if lift_limits else None
    rate = LIFTED_RATE if lift_limits else None
    async with (
        ProviderSession(provider, limiter=limiter) as session,
        Verifier(info.trongrid_url, rate_limit=rate) as verifier,
    ):
        yield session, verifier


def rate_limits(lift_limits: bool) -> str:
    """What the clients' rate limiters allowed, for the results."""
    if lift_limits:
        return f"lifted: {LIFTED_RATE:g} requests/s per service (limiter code path kept)"
    return f"library defaults: {LOOPBACK_RATE:g} requests/s per service on loopback"


def scaled_poll(speed: float) -> PollPolicy:
    """The default poll policy on a clock ``speed`` times faster: the same behaviour in blocks."""
    default = PollPolicy()
    return PollPolicy(
        initial_interval=default.initial_interval / speed,
        max_interval=default.max_interval / speed,
        backoff=default.backoff,
        confirm_grace=default.confirm_grace / speed,
        trongrid_budget=default.trongrid_budget,
        require_solid=default.require_solid,
    )


def source_version() -> dict[str, object]:
    """Which energy_async code runs: the last commit that touched it, and uncommitted files.

    Call it before and after a run: other work may land in the same checkout meanwhile.
    """
    package = Path(energy_async.__file__).parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=package, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    return {
        "path": str(package),
        "last_commit": git("log", "-1", "--format=%h %s", "--", ".") or None,
        "uncommitted": git("status", "--porcelain", "--", ".").splitlines(),
    }


def write_results(path: Path, result: dict[str, object], source: dict[str, object]) -> None:
    """Write a run's figures with what they were measured on, flagging code that changed."""
    result["energy_async"] = source
    result["versions"] = {
        "python": sys.version.split()[0],
        **{package: version(package) for package in ("aiohttp", "msgspec", "anyio")},
    }
    result["machine"] = f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs"
    if source_version() != source:
        source["changed_during_run"] = True  # clients started later may have run newer code
        print("warning: energy_async changed in this checkout during the run", file=sys.stderr)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")

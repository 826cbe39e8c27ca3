"""Verified orders per second through ``Coordinator.buy``, against the sandbox on a fast clock.

At each concurrency (1, 16, 128 by default) that many workers call ``buy`` back to back, each
order to CatFee with full verification, until ``--orders`` have settled. Reported per level:
DELIVERED orders per second, TronGrid calls per verified order (mean, max), and the time from
on-chain inclusion to the verdict (p50, p99). Inclusion is the real moment the sandbox produced
the block holding the delegation: the block's timestamp (chain time) mapped to real time through
the chain clock's anchor and speed, not the moment the client first noticed it (that lag is
reported too). The sandbox runs in its own process, so its CPU does not count against the client.

The chain runs ``--speed`` times faster than mainnet (default 100: a block every 30 ms), and
the poll policy is the default one scaled by the same factor, so latencies in blocks compare
with mainnet. The clients' rate limiters stay in the path with their rate out of reach: their
loopback default (1,000 requests/s per service) caps 128 orders in flight at about 140/s, which
``--default-limits`` shows.

Next to it, ``--real-orders`` orders (default 48, 0 to skip) run at real chain speed (a block
every 3 s, the default PollPolicy) with every answer delayed like a mainnet round trip
(provider 200 ms, TronGrid 150 ms): inclusion to verdict and "tx named to verdict" (from the
provider answer that first named the tx) at p50/p90, in seconds.

``--baseline REF`` runs the same x100 levels, in the same session and machine, with the code
of git commit REF (a detached worktree under the temp directory, its own bench script), so
CPU per order and calls per order compare side by side whatever the machine's load.

    python benchmarks/bench_coordinator.py [--orders N] [--concurrency 1 16 128] [--speed X]
                                           [--default-limits] [--real-orders N]
                                           [--real-concurrency 16] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from _sandbox_process import (
    Latency,
    RunningSandbox,
    SandboxInfo,
    chain_drift_ms,
    clients,
    rate_limits,
    sandbox_process,
    scaled_poll,
    source_version,
    write_results,
)

from energy_async import Coordinator, ProviderSession, Verdict, Verifier
from energy_async.models import DeliveryResult

RESULTS = Path(__file__).parent / "results" / "bench_coordinator.json"
ENERGY = 65_000
DEADLINE = 60.0  # real seconds; far beyond any healthy order, so a slow one is not cut short
TARGETS = 1024  # orders cycle through this many addresses; none sees two orders at once
WARMUP = 8  # orders per level before the clock starts (pools, caches)


@dataclass
class Level:
    """What one concurrency level produced; a few numbers per order."""

    concurrency: int
    verdicts: dict[str, int] = field(default_factory=dict)
    trongrid_calls: dict[str, list[int]] = field(default_factory=lambda: {"tx": [], "delta": []})
    provider_calls: list[int] = field(default_factory=list)
    inclusion_to_verdict: list[float] = field(default_factory=list)  # seconds
    inclusion_to_noticed: list[float] = field(default_factory=list)
    named_to_verdict: list[float] = field(default_factory=list)  # seconds
    order_to_inclusion: list[float] = field(default_factory=list)
    # Verified by the EnergyLimit delta before the provider named its tx: (order id, timings).
    to_resolve: list[tuple[str, float, float | None]] = field(default_factory=list)
    odd: list[dict[str, Any]] = field(default_factory=list)  # a few non-DELIVERED, to look at
    wall: float = 0.0
    cpu: float = 0.0
    sandbox_cpu: float = 0.0

    def add(self, result: DeliveryResult, info: SandboxInfo) -> None:
        self.verdicts[result.verdict] = self.verdicts.get(result.verdict, 0) + 1
        evidence = result.evidence
        if result.verdict is not Verdict.DELIVERED:
            if len(self.odd) < 3:
                history = [f"{c.status}/{c.confirm_status}" for c in evidence.status_history]
                self.odd.append(
                    {"verdict": result.verdict, "notes": evidence.notes, "statuses": history}
                )
            return
        self.provider_calls.append(evidence.provider_calls)
        assert evidence.settled_at is not None
        named_at = next((c.at for c in evidence.status_history if c.delegate_hash), None)
        if named_at is not None:
            self.named_to_verdict.append(evidence.settled_at - named_at)
        tx = evidence.delegation
        if tx is None or tx.block_time_ms is None:
            self.trongrid_calls["delta"].append(evidence.trongrid_calls)
            assert result.order is not None
            self.to_resolve.append((result.order.id, evidence.settled_at, evidence.ordered_at))
            return
        self.trongrid_calls["tx"].append(evidence.trongrid_calls)
        self.included(info, tx.block_time_ms, evidence.settled_at, evidence.ordered_at)
        if evidence.included_at is not None:
            self.inclusion_to_noticed.append(
                evidence.included_at - info.real_time(tx.block_time_ms)
            )

    def included(
        self, info: SandboxInfo, block_time_ms: int, settled_at: float, ordered_at: float | None
    ) -> None:
        at = info.real_time(block_time_ms)
        self.inclusion_to_verdict.append(settled_at - at)
        if ordered_at is not None:
            self.order_to_inclusion.append(at - ordered_at)

    async def resolve(
        self, info: SandboxInfo, session: ProviderSession, verifier: Verifier
    ) -> None:
        """After the clock stops: the block of each delegation the verdict did not name."""
        for order_id, settled_at, ordered_at in self.to_resolve:
            order = await session.get_order(order_id)
            assert order.delegate_hash is not None, f"order {order_id} never named its tx"
            tx = await verifier.delegation(order.delegate_hash, check_solid=False)
            assert tx.block_time_ms is not None, f"tx {tx.txid} is in no block"
            self.included(info, tx.block_time_ms, settled_at, ordered_at)

    def summary(self, speed: float) -> dict[str, Any]:
        by_tx, by_delta = self.trongrid_calls["tx"], self.trongrid_calls["delta"]
        calls = by_tx + by_delta
        latency = self.inclusion_to_verdict
        block = 3.0 / speed
        return {
            "concurrency": self.concurrency,
            "orders": sum(self.verdicts.values()),
            "verdicts": self.verdicts,
            "verified": len(calls),
            "wall_s": round(self.wall, 3),
            "verified_orders_per_s": round(len(calls) / self.wall, 1),
            "client_cpu_share": round(self.cpu / self.wall, 2),
            "sandbox_cpu_share": round(self.sandbox_cpu / self.wall, 2),
            # Less at the mercy of a shared machine than orders/s: CPU spent per order.
            "client_cpu_ms_per_order": round(self.cpu / len(calls) * 1000, 2),
            "sandbox_cpu_ms_per_order": round(self.sandbox_cpu / len(calls) * 1000, 2),
            "trongrid_calls_per_verified": _mean_max(calls),
            "provider_calls_per_verified": _mean_max(self.provider_calls),
            "attributed_by": {
                "delegation_tx": {"orders": len(by_tx), "trongrid_calls": _mean_max(by_tx)},
                "energy_limit_delta_only": {
                    "orders": len(by_delta),
                    "trongrid_calls": _mean_max(by_delta),
                },
            },
            "inclusion_to_verdict_ms": _percentiles(latency),
            "inclusion_to_verdict_blocks": {
                key: round(value / 1000 / block, 2) for key, value in _percentiles(latency).items()
            },
            "inclusion_to_noticed_ms": _percentiles(self.inclusion_to_noticed),
            "named_to_verdict_ms": _percentiles(self.named_to_verdict),
            "order_to_inclusion_ms": _percentiles(self.order_to_inclusion),
            "not_delivered_samples": self.odd,
        }


def _mean_max(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    return {"mean": round(statistics.fmean(values), 2), "max": max(values)}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if len(seconds) < 2:
        return {}
    cuts = statistics.quantiles(seconds, n=100, method="inclusive")
    return {
        "p50": round(cuts[49] * 1000, 1),
        "p90": round(cuts[89] * 1000, 1),
        "p99": round(cuts[98] * 1000, 1),
        "min": round(min(seconds) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


async def run_level(
    sandbox: RunningSandbox, concurrency: int, orders: int, speed: float, lift_limits: bool
) -> Level:
    info = sandbox.info
    level = Level(concurrency)
    async with clients(info, lift_limits=lift_limits) as (session, verifier):
        coordinator = Coordinator(session, verifier, poll=scaled_poll(speed))
        next_order = 0

        async def worker(count: int, record: bool) -> None:
            nonlocal next_order
            while next_order < count:
                index, next_order = next_order, next_order + 1
                target = info.targets[index % len(info.targets)]
                result = await coordinator.buy(target=target, energy=ENERGY, deadline=DEADLINE)
                if record:
                    level.add(result, info)

        async def drive(count: int, record: bool) -> None:
            nonlocal next_order
            next_order = 0
            async with anyio.create_task_group() as group:
                for _ in range(min(concurrency, count)):
                    group.start_soon(worker, count, record)

        await drive(WARMUP, record=False)
        cpu, wall, server = time.process_time(), time.perf_counter(), sandbox.cpu_seconds()
        await drive(orders, record=True)
        level.cpu, level.wall = time.process_time() - cpu, time.perf_counter() - wall
        level.sandbox_cpu = sandbox.cpu_seconds() - server
        await level.resolve(info, session, verifier)
    return level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--speed", type=float, default=100.0, help="chain clock multiplier")
    parser.add_argument(
        "--default-limits",
        action="store_true",
        help="keep the clients' default rate limits (loopback: 1,000 requests/s per service)",
    )
    parser.add_argument(
        "--real-orders",
        type=int,
        default=48,
        help="orders per level at real chain speed with mainnet-like latency (0: skip)",
    )
    parser.add_argument("--real-concurrency", type=int, nargs="+", default=[16])
    parser.add_argument(
        "--baseline", metavar="REF", help="also run the x100 levels with the code of commit REF"
    )
    args = parser.parse_args()

    source = source_version()
    baseline = run_baseline(args) if args.baseline else None
    levels: list[dict[str, Any]] = []
    with sandbox_process(speed=args.speed, targets=TARGETS) as sandbox:
        drift_before = chain_drift_ms(sandbox.info)
        for concurrency in args.concurrency:
            level = anyio.run(
                run_level, sandbox, concurrency, args.orders, args.speed, not args.default_limits
            )
            levels.append(level.summary(args.speed))
        drift_after = chain_drift_ms(sandbox.info)
    real: list[dict[str, Any]] = []
    latency = Latency()
    if args.real_orders:
        with sandbox_process(speed=1.0, targets=TARGETS, latency=latency) as sandbox:
            for concurrency in args.real_concurrency:
                level = anyio.run(
                    run_level, sandbox, concurrency, args.real_orders, 1.0, not args.default_limits
                )
                real.append(level.summary(1.0))

    poll = scaled_poll(args.speed)
    result: dict[str, Any] = {
        "benchmark": "Coordinator.buy against the sandbox (CatFee + TronGrid), full verification",
        "orders_per_level": args.orders,
        "energy_per_order": ENERGY,
        "speed": args.speed,
        "block_ms": 3000 / args.speed,
        "poll_policy": {
            "initial_interval": poll.initial_interval,
            "max_interval": poll.max_interval,
            "backoff": poll.backoff,
            "confirm_grace": poll.confirm_grace,
            "trongrid_budget": poll.trongrid_budget,
            "require_solid": poll.require_solid,
        },
        "deadline_s": DEADLINE,
        "rate_limits": rate_limits(not args.default_limits),
        "inclusion_clock_check_ms": {
            "before": round(drift_before, 2),
            "after": round(drift_after, 2),
        },
        "levels": levels,
    }
    if real:
        result["real_speed"] = {
            "speed": 1.0,
            "block_ms": 3000.0,
            "orders_per_level": args.real_orders,
            "latency_s": {"provider": latency.provider, "trongrid": latency.trongrid},
            "poll_policy": "PollPolicy() defaults",
            "levels": real,
        }
    if baseline is not None:
        result["baseline"] = baseline
    write_results(RESULTS, result, source)
    _print_table(result)
    print(f"written to {RESULTS}")


def run_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The same levels (x100 and real speed) with the code of ``args.baseline``, run now, on
    this machine.

    The commit's tree is exported (``git archive``) to a temp directory and its own bench
    script runs there on its own package (``PYTHONPATH``), so nothing of this checkout runs.
    """
    repo = Path(__file__).resolve().parent.parent

    def git(*words: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(repo), *words], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--verify", f"{args.baseline}^{{commit}}")
    root = Path(tempfile.gettempdir()) / f"energy_async-baseline-{commit[:12]}"
    if not (root / "energy_async").is_dir():
        root.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", commit], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    command = [
        sys.executable,
        "benchmarks/bench_coordinator.py",
        "--orders",
        str(args.orders),
        "--concurrency",
        *(str(level) for level in args.concurrency),
        "--speed",
        str(args.speed),
        "--real-orders",
        str(args.real_orders),
        "--real-concurrency",
        *(str(level) for level in args.real_concurrency),
    ]
    if args.default_limits:
        command.append("--default-limits")
    env = {**os.environ, "PYTHONPATH": str(root)}
    print(f"baseline: {commit[:12]} in {root}", flush=True)
    subprocess.run(command, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    old = json.loads((root / "benchmarks" / "results" / "bench_coordinator.json").read_text())
    ran = old["energy_async"]["path"]
    if not ran.startswith(str(root)):
        raise RuntimeError(f"the baseline ran the package at {ran}, not the commit's")
    keys = (
        "concurrency",
        "verdicts",
        "client_cpu_ms_per_order",
        "trongrid_calls_per_verified",
        "provider_calls_per_verified",
        "inclusion_to_verdict_ms",
        "named_to_verdict_ms",
    )
    real = old.get("real_speed", {}).get("levels", [])
    return {
        "commit": commit,
        "ran_from": ran,
        "levels": [{key: level.get(key) for key in keys} for level in old["levels"]],
        "real_speed_levels": [{key: level.get(key) for key in keys} for level in real],
    }


def _print_table(result: dict[str, Any]) -> None:
    speed = result["speed"]
    print(f"Coordinator.buy, {result['orders_per_level']} orders per level")
    print(f"chain x{speed:g} (block {result['block_ms']:g} ms), default PollPolicy / {speed:g}")
    header = (
        f"{'concurrency':>11} {'verified/s':>10} {'delivered':>10} {'TG calls mean/max':>18} "
        f"{'incl->verdict p50/p99 ms':>25} {'(blocks)':>12} {'CPU client/sandbox':>19} "
        f"{'CPU ms/order':>13}"
    )
    print(header)
    for level in result["levels"]:
        calls = level["trongrid_calls_per_verified"]
        ms = level["inclusion_to_verdict_ms"]
        blocks = level["inclusion_to_verdict_blocks"]
        print(
            f"{level['concurrency']:>11} {level['verified_orders_per_s']:>10.1f} "
            f"{level['verified']:>4}/{level['orders']:<5} "
            f"{calls['mean']:>12.2f}/{calls['max']:<5} "
            f"{ms['p50']:>15.1f}/{ms['p99']:<9.1f} "
            f"{blocks['p50']:>5.2f}/{blocks['p99']:<6.2f} "
            f"{level['client_cpu_share']:>12.0%}/{level['sandbox_cpu_share']:<6.0%} "
            f"{level['client_cpu_ms_per_order']:>6.2f}/{level['sandbox_cpu_ms_per_order']:<6.2f}"
        )
    check = result["inclusion_clock_check_ms"]
    print(
        "inclusion = the block's timestamp mapped to real time via the sandbox clock's anchor; "
        f"anchor check {check['before']:+.2f} / {check['after']:+.2f} ms"
    )
    for level in result["levels"]:
        delta = level["attributed_by"]["energy_limit_delta_only"]["orders"]
        provider = level["provider_calls_per_verified"]
        print(
            f"  {level['concurrency']:>4} in flight: provider calls {provider['mean']:.2f}/"
            f"{provider['max']}, verdicts on the EnergyLimit delta alone: {delta}"
        )
    real = result.get("real_speed")
    if real:
        latency = real["latency_s"]
        print(
            f"real chain speed (block 3 s), default PollPolicy, answers delayed "
            f"{latency['provider'] * 1000:g} ms (provider) / {latency['trongrid'] * 1000:g} ms "
            f"(TronGrid), {real['orders_per_level']} orders per level:"
        )
        for level in real["levels"]:
            incl, named = level["inclusion_to_verdict_ms"], level["named_to_verdict_ms"]
            calls, provider = (
                level["trongrid_calls_per_verified"],
                level["provider_calls_per_verified"],
            )
            delta = level["attributed_by"]["energy_limit_delta_only"]["orders"]
            print(
                f"  {level['concurrency']:>4} in flight: {level['verified']}/{level['orders']} "
                f"verified, TG calls {calls['mean']:.2f}/{calls['max']}, provider calls "
                f"{provider['mean']:.2f}/{provider['max']}, inclusion->verdict p50/p90 "
                f"{incl['p50'] / 1000:.2f}/{incl['p90'] / 1000:.2f} s, tx named->verdict "
                f"p50/p90 {named['p50'] / 1000:.2f}/{named['p90'] / 1000:.2f} s, "
                f"delta-only verdicts {delta}"
            )
    baseline = result.get("baseline")
    if baseline:
        print(f"baseline {baseline['commit'][:12]} (same session, same machine):")
        ours = {level["concurrency"]: level for level in result["levels"]}
        for old in baseline["levels"]:
            new = ours.get(old["concurrency"])
            if new is None:
                continue
            cpu_old, cpu_new = old["client_cpu_ms_per_order"], new["client_cpu_ms_per_order"]
            print(
                f"  {old['concurrency']:>4} in flight: CPU ms/order {cpu_old:.2f}"
                f" -> {cpu_new:.2f} ({cpu_new / cpu_old:.0%}), TG calls "
                f"{old['trongrid_calls_per_verified']['mean']:.2f} -> "
                f"{new['trongrid_calls_per_verified']['mean']:.2f}, provider calls "
                f"{old['provider_calls_per_verified']['mean']:.2f} -> "
                f"{new['provider_calls_per_verified']['mean']:.2f}"
            )
        ours_real = {
            level["concurrency"]: level for level in result.get("real_speed", {}).get("levels", [])
        }
        for old in baseline.get("real_speed_levels", []):
            new = ours_real.get(old["concurrency"])
            if new is None:
                continue
            print(
                f"  real speed, {old['concurrency']:>4} in flight: TG calls "
                f"{old['trongrid_calls_per_verified']['mean']:.2f} -> "
                f"{new['trongrid_calls_per_verified']['mean']:.2f}, provider calls "
                f"{old['provider_calls_per_verified']['mean']:.2f} -> "
                f"{new['provider_calls_per_verified']['mean']:.2f}, inclusion->verdict p50 "
                f"{old['inclusion_to_verdict_ms']['p50'] / 1000:.2f} -> "
                f"{new['inclusion_to_verdict_ms']['p50'] / 1000:.2f} s"
            )


if __name__ == "__main__":
    main()

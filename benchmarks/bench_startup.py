"""What the first order costs before it is sent: the address codec's import, the first address
check, whether anything on the client's order path loads tronpy, and peak RSS of a whole
``energy-async demo`` run. Every figure comes from fresh subprocesses (median of ``--runs``).

    python benchmarks/bench_startup.py [--runs N] [--label NAME]

``--label`` files the run under that name in the results, next to earlier labelled runs (the
"before" and "after" of a change), instead of replacing them.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from _sandbox_process import source_version, write_results

RESULTS = Path(__file__).parent / "results" / "bench_startup.json"
ADDRESS = "TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL"
# Everything a service or the CLI imports to buy and verify an order, then one address check.
ORDER_PATH = (
    "import sys, energy_async.client, energy_async.coordinator, energy_async.session,"
    " energy_async.verifier, energy_async.batch, energy_async.cli, energy_async.authenticity;"
    f"energy_async.validate_address({ADDRESS!r});"
    "print('tronpy' in sys.modules)"
)
FIRST_CHECK = (
    "import time; t0 = time.perf_counter(); import energy_async.address as a;"
    f"t1 = time.perf_counter(); a.validate_address({ADDRESS!r}); t2 = time.perf_counter();"
    "print((t1 - t0) * 1e3, (t2 - t1) * 1e3)"
)
DEMO = (
    "import atexit, sys; from energy_async.cli import main;"
    "atexit.register(lambda: print('tronpy' in sys.modules, file=sys.stderr));"
    "sys.exit(main(['demo', '--json']))"
)


# What a running service has imported long before its first order (asyncio and aiohttp pull
# these in): the codec's own cost in such a process is what is left.
STDLIB_FIRST = "import enum, hashlib, string, typing; "


def importtime(module: str, before: str = "") -> tuple[float, float]:
    """``-X importtime``'s self and cumulative ms for ``module`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{before}import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in reversed(done.stderr.splitlines()):  # the outermost import of it is last
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2] == module:
            return int(fields[0]) / 1e3, int(fields[1]) / 1e3
    raise RuntimeError(f"{module} not in the -X importtime output")


def demo_run() -> tuple[float, bool, str]:
    """Peak RSS (MiB) of one ``energy-async demo`` process, whether it loaded tronpy, its
    verdicts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    done = subprocess.run([sys.executable, "-c", DEMO], capture_output=True, text=True, check=False)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("this demo run did not raise the children's peak: run it alone")
    loaded = done.stderr.strip().splitlines()[-1] == "True"
    return peak / 1024, loaded, f"exit {done.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    source = source_version()

    imports = [importtime("energy_async.address") for _ in range(args.runs)]
    in_service = [importtime("energy_async.address", STDLIB_FIRST) for _ in range(args.runs)]
    # For scale on this machine: a stdlib module, and what the first order used to import.
    json_ms = [importtime("json")[1] for _ in range(args.runs)]
    tronpy_ms = [importtime("tronpy.keys")[1] for _ in range(args.runs)]
    checks = [
        tuple(map(float, subprocess.check_output([sys.executable, "-c", FIRST_CHECK]).split()))
        for _ in range(args.runs)
    ]
    order_path = subprocess.check_output([sys.executable, "-c", ORDER_PATH], text=True).strip()
    # ru_maxrss of children is a running maximum: each demo must beat the previous peak to be
    # seen, so the demo runs first in a fresh child of its own per run.
    demos = [_demo_in_fresh_parent() for _ in range(min(args.runs, 3))]
    figures: dict[str, Any] = {
        "address_import_ms": {
            "self_median": round(statistics.median(i[0] for i in imports), 2),
            "cumulative_median": round(statistics.median(i[1] for i in imports), 2),
            "cumulative_with_stdlib_loaded_median": round(
                statistics.median(i[1] for i in in_service), 2
            ),
            "note": "cumulative includes energy_async/__init__ and errors (and, in a fresh "
            "interpreter, enum, hashlib, string and typing)",
        },
        "for_scale_import_ms": {
            "json_median": round(statistics.median(json_ms), 2),
            "tronpy_keys_median": round(statistics.median(tronpy_ms), 1),
        },
        "first_address_check_ms_median": round(statistics.median(c[1] for c in checks), 3),
        "order_path_imports_tronpy": order_path == "True",
        "demo": {
            "peak_rss_mib_median": round(statistics.median(d["peak_rss_mib"] for d in demos), 1),
            "runs": demos,
        },
        "runs": args.runs,
    }
    print(json.dumps(figures, indent=2))
    result: dict[str, Any] = {"benchmark": "the first order's start-up costs"}
    if RESULTS.exists() and args.label:
        result = json.loads(RESULTS.read_text())
    if args.label:
        result.setdefault("labelled", {})[args.label] = figures
    else:
        result["figures"] = figures
    write_results(RESULTS, result, source)


def _demo_in_fresh_parent() -> dict[str, Any]:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_startup as b;"
        "peak, loaded, status = b.demo_run();"
        "print(json.dumps({'peak_rss_mib': round(peak, 1), 'tronpy_loaded': loaded,"
        " 'status': status}))"
    )
    out = subprocess.check_output(
        [sys.executable, "-c", code, str(Path(__file__).parent)], text=True
    )
    return dict(json.loads(out))


if __name__ == "__main__":
    main()

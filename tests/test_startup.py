"""Nothing a service imports to buy and verify an order loads tronpy (a 0.7-0.9 s import and
about 20 MiB, paid inside the event loop at the first order if it were)."""

from __future__ import annotations

import subprocess
import sys


def test_the_order_path_and_the_cli_never_load_tronpy() -> None:
    code = (
        "import sys, energy_async, energy_async.client, energy_async.coordinator,"
        " energy_async.session, energy_async.verifier, energy_async.batch, energy_async.cli,"
        " energy_async.authenticity, energy_async.readiness, energy_async.providers;"
        "assert energy_async.validate_address('TNPeeaaFB7K9cmo4uQpcU32zGK8G1NYqeL');"
        "assert 'tronpy' not in sys.modules, sorted(m for m in sys.modules if 'tronpy' in m)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""The tests that touch the clock (the simulator, the command line, the served pages) pass on any
day: here they run again with the wall clock set by libfaketime to a Sunday evening, when CME is
closed, and to Christmas Day, in a pytest of their own."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.test_cli import LIBFAKETIME, fake_clock

# every test module that runs the simulator "from now", the `tradeflow` command or a served page
CLOCK_TOUCHING = ["tests/test_simulator.py", "tests/test_cli.py",
                  "tests/test_dashboard_formula.py"]


@pytest.mark.parametrize("when", ["2026-11-29 20:00:00", "2026-12-25 15:00:00"],
                         ids=["sunday-evening", "christmas"])
def test_clock_touching_tests_pass_on_a_weekend_and_a_holiday(when, tmp_path):
    assert LIBFAKETIME, "libfaketime is missing: scripts/system_packages.sh installs it"
    env = dict(os.environ, **fake_clock(when))
    probe = subprocess.run([sys.executable, "-c", "import datetime; print(datetime.date.today())"],
                           env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == when[:10]  # the fake clock does reach the subprocesses
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         f"--basetemp={tmp_path / 'run'}", *CLOCK_TOUCHING],
        env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]

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
WHEN = {"sunday-evening": "2026-11-29 20:00:00", "christmas": "2026-12-25 15:00:00"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both fake-clock pytests, started together: each runs its commands one after another, so
    side by side they use two cores in about the time of one."""
    assert LIBFAKETIME, "libfaketime is missing: scripts/system_packages.sh installs it"
    procs = {}
    for name, when in WHEN.items():
        folder = tmp_path_factory.mktemp(name)
        with open(folder / "output.txt", "w") as output:  # a file: no pipe fills while we wait
            proc = subprocess.Popen(
                [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                 f"--basetemp={folder / 'run'}", *CLOCK_TOUCHING],
                env=dict(os.environ, **fake_clock(when)), stdout=output,
                stderr=subprocess.STDOUT)
        procs[name] = (proc, folder / "output.txt")
    yield procs
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(960)  # the rerun's own limit (900 s) comes first, not pytest's 600 s
@pytest.mark.parametrize("name", list(WHEN))
def test_clock_touching_tests_pass_on_a_weekend_and_a_holiday(name, runs):
    when = WHEN[name]
    env = dict(os.environ, **fake_clock(when))
    probe = subprocess.run([sys.executable, "-c", "import datetime; print(datetime.date.today())"],
                           env=env, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == when[:10]  # the fake clock does reach the subprocesses
    proc, output = runs[name]
    assert proc.wait(timeout=900) == 0, output.read_text()[-6000:]

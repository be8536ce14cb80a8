"""Run the bad-input battery (tests/test_battery_*.py) and print its tally: cases by outcome and by command.

    OMP_NUM_THREADS=1 python tests/run_battery.py [extra pytest arguments]

Exit status: pytest's. The same cases run in the normal test suite; this script only adds the counts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


class Tally:
    """A pytest plugin printing :func:`battery.tally` after the session."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        import battery

        terminalreporter.write_sep("=", "bad-input battery")
        terminalreporter.write_line(battery.tally())


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    files = sorted(str(path) for path in HERE.glob("test_battery_*.py"))
    return int(pytest.main(["-q", "-p", "no:cacheprovider", *files, *argv], plugins=[Tally()]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

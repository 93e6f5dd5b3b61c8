"""Japan's holidays as anomaly scoring reads them: a table generated from the ``holidays`` package, equal to it.

The table (``pipeline/core/jp_holiday_table.py``, ``make jp-holidays``) exists so that a scored load does not
import the package (its import cost more than the rest of the load in a fresh process: :mod:`infra.jp_holidays`).
These tests are its guard: an upgrade of ``holidays`` that moves, adds or drops a Japanese holiday fails here,
naming the year and the fix, until the table is written again.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import holidays
import pytest
from holidays.countries.japan import Japan
from holidays.version import __version__ as PACKAGE_VERSION

from infra import jp_holidays
from pipeline.core.calendar_jp import _jp_holidays, day_kind, is_jp_holiday
from pipeline.core.jp_holiday_table import BY_YEAR

ROOT = Path(__file__).resolve().parents[1]
EVERY = frozenset({"weekday", "jp_holiday", "month_end"})


def test_the_table_holds_every_year_and_date_of_the_installed_package() -> None:
    assert set(BY_YEAR) == set(range(Japan.start_year, Japan.end_year + 1)), "run `make jp-holidays`"
    for year in BY_YEAR:
        package = frozenset(holidays.country_holidays("JP", years=year))
        assert _jp_holidays(year) == package, f"JP holidays of {year} differ from holidays: run `make jp-holidays`"


def test_the_table_knows_substitute_and_citizens_holidays_and_moved_ones() -> None:
    assert is_jp_holiday(date(2026, 5, 6))  # 振替休日: Constitution Day's substitute
    assert is_jp_holiday(date(2026, 9, 22))  # 国民の休日, between Respect for the Aged Day and the equinox
    assert is_jp_holiday(date(2021, 7, 23))  # Sports Day moved for the Olympics…
    assert not is_jp_holiday(date(2021, 10, 11))  # …from its Monday in October
    assert not is_jp_holiday(date(2026, 12, 23))  # the Emperor's Birthday moved to 02-23 with the new era
    assert _jp_holidays(1948) == frozenset()  # outside the package's range: none, as the package says
    assert _jp_holidays(2100) == frozenset()


def test_the_check_agrees_with_the_table_and_the_rendered_module_reads_back() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.jp_holidays", "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert f"matches the installed holidays package ({PACKAGE_VERSION})" in done.stdout
    version, years = jp_holidays.package_holidays()
    scope: dict[str, object] = {}
    exec(compile(jp_holidays.render(version, years), "jp_holiday_table.py", "exec"), scope)
    assert scope["BY_YEAR"] == BY_YEAR
    assert scope["HOLIDAYS_VERSION"] == PACKAGE_VERSION


def test_classing_two_years_of_days_imports_no_holidays_package() -> None:
    """What a scored load does with the calendar — every day of its history classed — in a fresh process."""
    code = (
        "import sys\n"
        "from datetime import date, timedelta\n"
        "from pipeline.core.calendar_jp import day_kind\n"
        "every = frozenset({'weekday', 'jp_holiday', 'month_end'})\n"
        "kinds = [day_kind(date(2025, 1, 1) + timedelta(n), every).kind for n in range(730)]\n"
        "print(kinds.count('holiday'), 'holidays' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    first = date(2025, 1, 1)
    expected = sum(day_kind(first + timedelta(n), EVERY).kind == "holiday" for n in range(730))
    assert done.stdout.split() == [str(expected), "False"]
    # the holidays outside New Year, Golden Week and Obon (days of those are classed as their season), by hand:
    # 2025 Jan 13, Feb 11, 23, 24, Mar 20, Jul 21, Aug 11, Sep 15, 23, Oct 13, Nov 3, 23, 24;
    # 2026 Jan 12, Feb 11, 23, Mar 20, Jul 20, Aug 11, Sep 21, 22, 23, Oct 12, Nov 3, 23
    assert expected == 13 + 12


def test_the_check_names_the_years_a_stale_table_gets_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As after a holidays release that moved a date: the table's 2027 lacks one day, and 2100 is a year the
    package does not know."""
    monkeypatch.setitem(BY_YEAR, 2027, BY_YEAR[2027].rsplit(" ", 1)[0])
    monkeypatch.setitem(BY_YEAR, 2100, "0101")

    assert jp_holidays.main(["--check"]) == 1
    assert capsys.readouterr().err == (
        f"{jp_holidays.TABLE} differs from the installed holidays package {PACKAGE_VERSION} in 2027, 2100: "
        "run `make jp-holidays`\n"
    )

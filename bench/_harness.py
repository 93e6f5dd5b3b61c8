"""What every benchmark does the same way, in one place: a scratch folder kept when asked or when something went
wrong (its logs are the evidence); sizes as people type them (``2m``) and name them in tables and folders; the
result record of a measured run (seconds, peak RSS, CPU, rows/s); progress lines; Markdown tables and their
ratios; and the closing lines — time taken, and exit 1 only when the benchmark itself went wrong (a run failed or
lost rows), never because a target was missed."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bench._rss import Measured


def in_scratch(prefix: str, keep: bool, run: Callable[[Path], int]) -> int:
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    status = 1
    try:
        status = run(scratch)
    finally:
        if keep or status != 0:
            print(f"kept {scratch}", flush=True)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return status


def finish(started: float, wrong: Sequence[str]) -> int:
    print(f"\nThe benchmark took {time.perf_counter() - started:.0f} s.", flush=True)
    if wrong:
        print("\nThe benchmark itself went wrong (exit 1):\n" + "\n".join(f"  {line}" for line in wrong), flush=True)
    return 1 if wrong else 0


def compile_bytecode(console_script: str | Path) -> str:
    """Write the bytecode of the ``pipeline`` package that ``console_script`` (a venv's ``kpi``) imports, before
    anything is timed; returns the package's folder. An editable install compiles a module on its first import —
    unless ``PYTHONDONTWRITEBYTECODE`` is set (some CI and sandbox shells set it), and then every measured run
    compiles every module it imports again: 50 ms of CPU of a 0.2 s ``kpi render`` here (load 3.7), which no
    installed ``kpi`` pays (pip compiles wheels when it installs them, the Lambda zips carry their ``.pyc``)."""
    import subprocess

    first = Path(console_script).read_bytes().split(b"\n", 1)[0]
    python = first[2:].decode().strip() if first.startswith(b"#!") else sys.executable
    code = "import compileall, pipeline, sys; print(pipeline.__path__[0]); "
    code += "sys.exit(not compileall.compile_dir(pipeline.__path__[0], quiet=1))"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    done = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{python} could not compile the pipeline package:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


# -- sizes --------------------------------------------------------------------------------------------------------


def parse_rows(text: str, example: str = "2000000, 2m, 500k") -> int:
    """``2000000``, ``2_000_000``, ``2m`` or ``500k``: people type sizes the way they say them (an argparse type;
    ``example`` is what the error shows)."""
    text = text.strip().lower().replace("_", "").replace(",", "")
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        rows = int(float(text[:-1] if factor > 1 else text) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a row count: {text!r} (e.g. {example})") from None
    if rows < 1:
        raise argparse.ArgumentTypeError("a row count must be at least 1")
    return rows


def size_label(rows: int) -> str:
    """``50m``, ``2500k``: the name of a size in table and folder names."""
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}m"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


# -- the result record ----------------------------------------------------------------------------------------------


class MeasuredRun:
    """The figures of one measured run, for a benchmark's result dataclass that has ``measured`` (None when the run
    did not happen or failed before it was measured) and ``error`` fields. NaN where nothing was measured, so that
    a table shows the hole instead of a zero."""

    measured: Measured | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.measured is not None and self.error is None

    @property
    def seconds(self) -> float:
        return self.measured.seconds if self.measured else float("nan")

    @property
    def peak_rss_mib(self) -> float:
        return self.measured.peak_rss_mib if self.measured else float("nan")

    @property
    def cpu_seconds(self) -> float:
        return self.measured.cpu_seconds if self.measured else float("nan")


class RowsRun(MeasuredRun):
    """A measured run over ``rows`` rows: its speed as well."""

    rows: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.measured.seconds if self.measured and self.measured.seconds else 0.0


def figures(measured: Measured) -> str:
    """``peak RSS 161 MB, CPU 4.20 s``: the tail of every progress line."""
    return f"peak RSS {measured.peak_rss_mib:,.0f} MB, CPU {measured.cpu_seconds:.2f} s"


# -- tables -----------------------------------------------------------------------------------------------------------


def times(value: float | None) -> str:
    """A ratio as the tables print it: ``1.25×``, or ``—`` where there is none."""
    return "—" if value is None else f"{value:.2f}×"


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table (the reports are pasted into the README). A column whose name ends in
    ``>`` is right-aligned (numbers), e.g. ``["contestant", "rows/s>"]``."""
    names = [c.removesuffix(">") for c in columns]
    lines = [
        "| " + " | ".join(names) + " |",
        "|" + "|".join("--:" if c.endswith(">") else "---" for c in columns) + "|",
    ]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells in a table of {len(columns)} columns: {row!r}")
        lines.append("| " + " | ".join(row) + " |")
    return lines

"""How long a cold start spends importing each Lambda handler — ``python -m bench.cold_import``.

Every run is a fresh process, ``python -X importtime -c "import <module>"``, timed from outside (wall time,
interpreter start included), best of ``--repeat`` (5); the bare interpreter (``python -c pass``) is measured the
same way, so that "imports" is what the handler's modules add. Two rows per handler:

* ``import pipeline.lambdas.<handler>``: what Lambda's init phase runs;
* ``+ first call``: also the modules the handler imports lazily on its first invocation (MySQL and S3 for the
  exporter; BigQuery, S3 and — for the backfill planner in the same zip — the KPI catalog for the loader;
  ``infra.package`` lists them), which the first event pays for.

By default it measures the development venv (Python 3.11, warm ``__pycache__``; NumPy is installed there, and
pyarrow imports it whenever it is, which the Lambda package does not have). ``--lambda`` measures the built
zips instead (``python -m infra.package`` first), unpacked, with a local CPython 3.12 isolated from everything
but the package and a stand-in for Lambda's runtime (boto3): ``-B``, because /var/task is read-only, so what
the zip does not carry as ``.pyc`` is compiled again on every cold start — the row says which it was.

The top 5 are the packages whose imports took longest, cumulative (a package's own modules and whatever they
imported), each counted where it was entered from outside itself; our own ``pipeline`` is left out (it
holds everything else). Milliseconds from ``-X importtime``, of the fastest run. It prints Markdown to paste
into ``bench/README.md``; it is a measurement, not a test, and exits 1 only when an import fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from bench._harness import markdown_table
from infra.package import (
    DEFAULT_OUT,
    FUNCTIONS,
    Function,
    Options,
    find_python,
    lambda_runtime,
    machine_arch,
    python_version,
)

ROOT = Path(__file__).resolve().parent.parent
TOP = 5


@dataclass
class Node:
    """One line of ``-X importtime``: a module, its own and cumulative microseconds, what it imported."""

    name: str
    self_us: int
    cumulative_us: int
    children: list[Node] = field(default_factory=list)


@dataclass
class Timing:
    label: str
    where: str
    seconds: list[float] = field(default_factory=list)
    tree: list[Node] = field(default_factory=list)  # of the fastest run
    error: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)


@dataclass(frozen=True)
class Interpreter:
    """A Python to measure with, and how: its arguments before ``-c`` and the code that sets ``sys.path``."""

    python: str
    where: str
    flags: tuple[str, ...] = ()
    path: tuple[str, ...] = ()  # prepended to sys.path in the measured process
    cwd: Path = ROOT

    def argv(self, code: str) -> list[str]:
        prefix = f"import sys; sys.path[:0] = {list(self.path)!r}; " if self.path else ""
        return [self.python, *self.flags, "-X", "importtime", "-c", prefix + code]


def parse_importtime(stderr: str) -> list[Node]:
    """The import tree: ``-X importtime`` prints a module after what it imported, one level deeper each."""
    pending: dict[int, list[Node]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # one space after the bar, then two per level
        node = Node(name.strip(), int(own), int(cumulative), pending.pop(depth + 1, []))
        pending.setdefault(depth, []).append(node)
    return pending.get(min(pending), []) if pending else []


def entered(roots: list[Node]) -> dict[str, int]:
    """Cumulative microseconds per top-level package, counted where it was imported from outside itself."""
    totals: dict[str, int] = {}

    def walk(node: Node, parent_top: str | None) -> None:
        top = node.name.split(".", 1)[0]
        if top != parent_top:
            totals[top] = totals.get(top, 0) + node.cumulative_us
        for child in node.children:
            walk(child, top)

    for root in roots:
        walk(root, None)
    return totals


def measure(interpreter: Interpreter, label: str, modules: list[str], repeat: int) -> Timing:
    timing = Timing(label, interpreter.where)
    code = "; ".join(f"import {m}" for m in modules) or "pass"
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(interpreter.argv(code), capture_output=True, text=True, cwd=interpreter.cwd, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            timing.error = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
            return timing
        timing.seconds.append(seconds)
        if seconds < best:
            best, timing.tree = seconds, parse_importtime(done.stderr)
    return timing


def top_imports(timing: Timing, bare: Timing) -> str:
    """The packages the handler's imports spent longest in, less what the bare interpreter imports anyway
    (``site``, ``encodings``, an editable install's finder)."""
    totals = entered(timing.tree)
    for name, us in entered(bare.tree).items():
        totals[name] = totals.get(name, 0) - us
    totals.pop("pipeline", None)
    ranked = sorted(((n, us) for n, us in totals.items() if us > 0), key=lambda item: -item[1])[:TOP]
    return ", ".join(f"{name} {us / 1000:,.0f}" for name, us in ranked)


def rows(function: Function, interpreter: Interpreter, repeat: int) -> list[Timing]:
    print(f"  {function.name} ({interpreter.where}) …", file=sys.stderr, flush=True)
    return [
        measure(interpreter, f"`import {function.module}`", [function.module], repeat),
        measure(interpreter, "+ first call", [function.module, *function.runtime_modules], repeat),
    ]


def lambda_interpreters(python: str, arch: str, scratch: Path) -> dict[str, Interpreter]:
    """Each built zip unpacked, run by a local CPython 3.12 with only the package and boto3 on sys.path."""
    runtime = lambda_runtime(Options(arch=arch, quiet=True, compiler=python, compiler_version=python_version(python)))
    found = {}
    for name in FUNCTIONS:
        package = DEFAULT_OUT / f"{name}-{arch}.zip"
        if not package.is_file():
            raise SystemExit(f"{package} is missing: run `python -m infra.package` first")
        folder = scratch / name
        with zipfile.ZipFile(package) as archive:
            archive.extractall(folder)
            compiled = any(n.endswith(".pyc") for n in archive.namelist())
        where = f"{package.name}, Python 3.12, {'with' if compiled else 'no'} .pyc"
        found[name] = Interpreter(python, where, ("-I", "-S", "-B"), (str(folder), str(runtime)), folder)
    return found


def report(timings: list[Timing], baselines: dict[str, Timing], repeat: int) -> str:
    rows = []
    for t in timings:
        if t.error:
            rows.append([t.label, t.where, f"failed: {t.error}", "—", "—", "—"])
            continue
        bare = baselines[t.where]
        imports = f"{t.best - bare.best:.3f}" if bare.seconds else "—"
        rows.append(
            [t.label, t.where, f"{t.best:.3f}", f"{statistics.median(t.seconds):.3f}", imports, top_imports(t, bare)]
        )
    columns = ["handler", "where", "best s>", "median s>", "imports s>", f"top {TOP} imports (cumulative ms)"]
    lines = markdown_table(columns, rows)
    floors = "; ".join(f"{b.where}: {b.best:.3f} s" if b.seconds else f"{b.where}: failed" for b in baselines.values())
    return "\n".join(
        [
            "",
            f"## Cold imports, {os.cpu_count()} cores, {platform.machine()}, {time.strftime('%Y-%m-%d')}",
            "",
            f"Best of {repeat} fresh processes; the bare interpreter (`-c pass`) took {floors}.",
            "",
            *lines,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cold_import", description="Cold-import time of each Lambda handler, fresh processes."
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per row, best kept (5)")
    parser.add_argument(
        "--lambda",
        dest="package",
        action="store_true",
        help="measure the built zips (build/lambda) with a local CPython 3.12, as Lambda runs them",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    repeat = max(1, args.repeat)
    print(f"cold imports: {repeat} runs each, Python {platform.python_version()} at {sys.executable}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="kpi-cold-") as scratch:
        if args.package:
            python, arch = find_python(), machine_arch()
            if python is None or arch is None:
                raise SystemExit("--lambda needs CPython 3.12 on an x86_64 or arm64 machine (KPI_LAMBDA_PYTHON)")
            interpreters = lambda_interpreters(python, arch, Path(scratch))
        else:
            dev = Interpreter(sys.executable, f"dev venv, Python {platform.python_version()}")
            interpreters = dict.fromkeys(FUNCTIONS, dev)
        baselines = {i.where: measure(i, "bare", [], repeat) for i in interpreters.values()}
        timings = [t for name, i in interpreters.items() for t in rows(FUNCTIONS[name], i, repeat)]
    print(report(timings, baselines, repeat))
    return 1 if any(t.error for t in [*timings, *baselines.values()]) else 0


if __name__ == "__main__":
    sys.exit(main())

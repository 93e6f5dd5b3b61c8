"""Wall time and peak RSS of one command, measured so that nothing of the caller leaks into the figure.

``os.wait4`` gives a child's ``ru_maxrss``, but on Linux that figure is never below the *parent's* peak RSS:
``subprocess`` starts children with vfork (or posix_spawn, the same thing), and ``exec`` folds the high-water
mark of the memory it replaces — the parent's — into the new process's ``maxrss``. A benchmark parent that
had once read a large file would inflate the mariadb client's 10 MB to hundreds.

So the caller starts this file as a small trampoline (``python -I -S _rss.py …``, standard library only, about
8 MB), and the trampoline spawns the measured command and ``wait4``s it. The measured command inherits only
the trampoline's 8 MB as its floor — below any Python program — and wall time excludes the trampoline's own
start. The trampoline writes ``returncode seconds peak_kib cpu_seconds`` to a report file.

Keep the module-level imports to ``os``, ``sys`` and ``time`` (not even ``typing``): whatever the trampoline
imports raises that floor.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False  # not ``from typing import …``: importing typing alone adds 2 MB to the floor
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path


class Measured:
    """What one measured command cost: exit code, wall seconds, peak RSS (KiB, as Linux reports) and CPU seconds."""

    __slots__ = ("cpu_seconds", "peak_rss_kib", "returncode", "seconds")

    def __init__(self, returncode: int, seconds: float, peak_rss_kib: int, cpu_seconds: float) -> None:
        self.returncode = returncode
        self.seconds = seconds
        self.peak_rss_kib = peak_rss_kib
        self.cpu_seconds = cpu_seconds

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024

    def __repr__(self) -> str:
        return (
            f"Measured(returncode={self.returncode}, seconds={self.seconds:.3f}, "
            f"peak_rss_kib={self.peak_rss_kib}, cpu_seconds={self.cpu_seconds:.3f})"
        )


def measure(
    argv: Sequence[str],
    *,
    stdout: Path | str,
    stderr: Path | str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Measured:
    """Run ``argv`` through the trampoline; its standard output and error go to the given files.

    Called from the benchmark's parent process; the trampoline is a fresh interpreter, so the parent may
    import and hold whatever it likes.
    """
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("r", prefix="rss-", suffix=".txt", encoding="ascii") as report:
        trampoline = [sys.executable, "-I", "-S", os.path.abspath(__file__), report.name, str(stdout), str(stderr)]
        subprocess.run([*trampoline, "--", *argv], env=None if env is None else dict(env), cwd=cwd, check=True)
        returncode, seconds, peak_kib, cpu = report.read().split()
    return Measured(int(returncode), float(seconds), int(peak_kib), float(cpu))


def _spawn_and_wait(argv: list[str], stdout: str, stderr: str) -> Measured:
    """The trampoline's work: spawn with standard input from /dev/null, wait4, and time it."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    same_file = (os.POSIX_SPAWN_DUP2, 1, 2)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, stdout, flags, 0o644),
        same_file if stderr == stdout else (os.POSIX_SPAWN_OPEN, 2, stderr, flags, 0o644),
    ]
    started = time.perf_counter()
    pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - started
    return Measured(os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime)


def _main(args: list[str]) -> int:
    """``_rss.py REPORT STDOUT STDERR -- ARGV…``: measure ARGV and write the report file."""
    report, stdout, stderr, separator, *argv = args
    if separator != "--" or not argv:
        print("usage: _rss.py REPORT STDOUT STDERR -- COMMAND [ARG…]", file=sys.stderr)
        return 2
    m = _spawn_and_wait(argv, stdout, stderr)
    with open(report, "w", encoding="ascii") as out:
        out.write(f"{m.returncode} {m.seconds:.6f} {m.peak_rss_kib} {m.cpu_seconds:.6f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

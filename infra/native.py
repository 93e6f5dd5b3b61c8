"""Build the exporter's C reader (``pipeline/sources/mysql_wire.c``) as ``_mysql_wire.<machine>.so``.

``python -m infra.native`` builds it for this machine into ``pipeline/sources/`` (``make install`` does), with the
C compiler found: ``cc``/``gcc``/``clang`` on PATH, else zig from PyPI's ``ziglang`` (a development dependency).
``python -m infra.native --machine aarch64 --out DIR`` cross-compiles with zig for Lambda's arm64 (``x86_64`` for
the other): zig ships the C library headers and stubs of every glibc version, so no Docker, no sysroot and no
Python headers are needed — the library has no Python API (it is loaded with ctypes). The target glibc is 2.17,
the manylinux2014 floor, far below Amazon Linux 2023's 2.34. ``infra/package.py`` calls :func:`build` for the
architecture it packages.

``python -m infra.native --check aarch64`` compiles ``infra/native_check.c`` (a self-check: packets of every
length class and NULLs, walked, split and compared value by value, and a malformed row refused) with the
reader's source, statically for that architecture (musl), and runs it — under ``qemu-aarch64-static``
(Debian's ``qemu-user-static``) when this machine is not aarch64.

The flags: ``-O2`` (measured: ``-O3`` is no faster on this loop), ``-fPIC -shared``, no ``-march``: the
library must run on every CPU of its architecture (Graviton 2 and later, any x86-64).
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pipeline" / "sources" / "mysql_wire.c"
LIBRARY = "_mysql_wire.{machine}.so"
GLIBC = "2.17"
FLAGS = ["-O2", "-fPIC", "-shared", "-std=c99", "-Wall", "-Wextra", "-Werror"]


class BuildError(Exception):
    """No compiler for the target, or the compiler failed; the message says which and how to fix it."""


def zig() -> list[str] | None:
    """``python -m ziglang`` of this interpreter, when the ``ziglang`` package is installed."""
    if importlib.util.find_spec("ziglang") is None:
        return None
    return [sys.executable, "-m", "ziglang"]


def compiler(machine: str, *, portable: bool = False) -> list[str]:
    """The command that compiles for ``machine``: a native compiler for this machine, else zig (always zig when
    ``portable``: linked against glibc 2.17's symbols, not this machine's, as a Lambda package needs)."""
    if not portable and machine == platform.machine() and platform.system() == "Linux":
        for name in ("cc", "gcc", "clang"):
            found = shutil.which(name)
            if found:
                return [found]
    command = zig()
    if command is None:
        raise BuildError(
            f"no C compiler for {machine} Linux: install the development extras (pip install -e '.[dev]', which "
            "brings ziglang) or a C compiler"
        )
    return [*command, "cc", "-target", f"{machine}-linux-gnu.{GLIBC}", "-g0", "-s"]


def build(machine: str | None = None, out: Path | None = None, *, portable: bool = False) -> Path:
    """Compile for ``machine`` (x86_64 or aarch64; default this one) into ``out`` (default next to the source);
    returns the library's path. Rebuilds only when the source is newer than the library. ``portable``: with zig
    for glibc 2.17 even on this machine (what a package ships)."""
    machine = machine or platform.machine()
    target = (out or SOURCE.parent) / LIBRARY.format(machine=machine)
    if target.is_file() and target.stat().st_mtime >= SOURCE.stat().st_mtime:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".so.partial")
    command = [*compiler(machine, portable=portable), *FLAGS, "-o", str(partial), str(SOURCE)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BuildError(f"compiling {SOURCE.name} for {machine} failed:\n{done.stdout}{done.stderr}")
    partial.replace(target)
    return target


def check(machine: str, work: Path) -> str:
    """Compile the self-check with the reader for ``machine`` and run it there (qemu-user for a foreign one);
    returns its output. Raises BuildError when it cannot be built or run, or fails."""
    command = zig()
    if command is None:
        raise BuildError("the check cross-compiles with zig: install the development extras (ziglang)")
    work.mkdir(parents=True, exist_ok=True)
    program = work / f"native-check-{machine}"
    build_check = [*command, "cc", "-target", f"{machine}-linux-musl", "-static", *FLAGS[:1], "-std=c99"]
    build_check += ["-o", str(program), str(ROOT / "infra" / "native_check.c"), str(SOURCE)]
    done = subprocess.run(build_check, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"compiling the check for {machine} failed:\n{done.stdout}{done.stderr}")
    runner: list[str] = []
    if machine != platform.machine():
        emulator = shutil.which(f"qemu-{machine}-static") or shutil.which(f"qemu-{machine}")
        if emulator is None:
            raise BuildError(f"running the {machine} check here needs qemu-user: apt-get install qemu-user-static")
        runner = [emulator]
    ran = subprocess.run([*runner, str(program)], capture_output=True, text=True, check=False)
    if ran.returncode != 0:
        raise BuildError(f"the {machine} check failed: {ran.stdout}{ran.stderr}")
    return ran.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.native", description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", choices=["x86_64", "aarch64"], default=None, help="default: this machine")
    parser.add_argument("--out", type=Path, default=None, help="folder (default: pipeline/sources)")
    parser.add_argument("--portable", action="store_true", help="zig for glibc 2.17, as the Lambda packages")
    parser.add_argument("--check", choices=["x86_64", "aarch64"], help="run the reader's self-check on that arch")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(f"{args.check}: {check(args.check, ROOT / 'build' / 'native')}")
            return 0
        path = build(args.machine, args.out, portable=args.portable)
    except BuildError as error:
        print(error, file=sys.stderr)
        return 1
    print(f"built {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

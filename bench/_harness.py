"""What every benchmark's entry point does the same way: a scratch folder kept when asked or when something went
wrong (its logs are the evidence), and the closing lines — time taken, and exit 1 only when the benchmark itself
went wrong (a run failed or lost rows), never because a target was missed."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path


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

"""Time the program sandbox: programs per second for small arithmetic programs (the shape of program-of-thought
answers), then a table of hostile programs with the status each got and its wall time.

Run: python launch/bench_sandbox.py [--programs 500] [--workers N]   (N defaults to the CPU count)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from ntkeval.sandbox import run_programs, sandbox_problem
from ntkeval.sandbox.pool import describe_walls

HOSTILE = {  # name: program (each should be contained; the expected status is in the table's last column)
    "infinite loop": ("while True:\n    pass", "timeout"),
    "sleep forever": ("import time\ntime.sleep(3600)", "timeout"),
    "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except BaseException:\n        pass",
                  "forbidden"),
    "os.fork()": ("import os\nos.fork()", "forbidden"),
    "10 GB allocation": ("block = bytearray(10 * 2**30)", "memory"),
    "deep recursion": ("def down(n):\n    return down(n + 1)\ndown(0)", "error"),
    "socket": ("import socket\nsocket.create_connection(('1.1.1.1', 80))", "forbidden"),
    "write to home": (f"open({os.path.expanduser('~/ntkeval-probe')!r}, 'w').write('x')", "forbidden"),
    "write to /tmp": ("open('/tmp/ntkeval-probe', 'w').write('x')", "forbidden"),
    "os.system": ("import os\nos.system('true')", "forbidden"),
    "ctypes": ("import ctypes\nctypes.CDLL(None)", "forbidden"),
    "environment secret": ("import os\nprint(os.environ.get('NTKEVAL_FAKE_SECRET'))", "ok"),
    "parent's environ": (f"print(open('/proc/{os.getpid()}/environ').read())", "forbidden"),
    "print 1 GB": ("import sys\nfor _ in range(2**20):\n    sys.stdout.write('x' * 1024)", "output_limit"),
    "subprocess.run": ("import subprocess\nsubprocess.run(['true'])", "forbidden"),
    "multiprocessing": ("import multiprocessing\nmultiprocessing.Process(target=print).start()", "forbidden"),
    "thread": ("import threading\nthreading.Thread(target=print).start()", "error"),
}


def arithmetic_programs(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Programs like a model's PoT answers (a few assignments, a print) and the output each should give."""
    rng = random.Random(seed)
    programs, expected = [], []
    for _ in range(count):
        a, b, c = rng.randint(1, 999), rng.randint(1, 999), rng.randint(1, 99)
        programs.append(f"a = {a}\nb = {b}\nc = {c}\ntotal = (a + b) * c - a // c\nprint(total)")
        expected.append(f"{(a + b) * c - a // c}\n")
    return programs, expected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    print(f"sandbox_problem(): {sandbox_problem()}")
    print("walls:", "; ".join(describe_walls()))
    programs, expected = arithmetic_programs(args.programs)
    start = time.monotonic()
    runs = run_programs(programs, workers=args.workers)
    seconds = time.monotonic() - start
    right = sum(run.status == "ok" and run.stdout == want for run, want in zip(runs, expected))
    print(f"{len(programs)} arithmetic programs on {os.cpu_count()} CPUs: {seconds:.2f} s, "
          f"{len(programs) / seconds:.0f} programs/s (worker starts included), {right}/{len(programs)} right")
    os.environ["NTKEVAL_FAKE_SECRET"] = "sk-do-not-leak"
    print("\nhostile programs (timeout_s=2, memory_mb=256, output_bytes=4096, one worker each)")
    print(f"{'program':<20} {'status':<13} {'expected':<13} {'wall s':>7}  detail")
    for name, (program, want) in HOSTILE.items():
        start = time.monotonic()
        (run,) = run_programs([program], workers=1)
        wall = time.monotonic() - start
        leaked = " LEAKED THE SECRET" if "sk-do-not-leak" in run.stdout else ""
        print(f"{name:<20} {run.status:<13} {want:<13} {wall:>7.2f}  {run.detail[:60]}{leaked}")


if __name__ == "__main__":
    main()

"""Time the bad-input battery through the real `ntkeval` command: one subprocess per input, as a user would type it.

Prints a table (input, exit code, seconds, the message, which check caught it) and the median and worst time, over
the whole battery and over the inputs the fast checks catch (everything but the full build). The battery is
tests/test_preflight_battery.py's, so the inputs timed here are the ones the tests hold to their messages.

Run: python launch/bench_preflight.py [--repeat 3]   (each input's time is the median of its repeats)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ntkeval.schema import host  # noqa: E402
from tests.test_preflight_battery import BATTERY, USER_MODULES  # noqa: E402  (the battery lives with its tests)

COMMAND = Path(sys.executable).parent / "ntkeval"  # the console script pip installed next to this interpreter


def run_once(args: list[str], folder: Path) -> tuple[int, float, str]:
    env = {**os.environ, "NTKEVAL_CACHE": str(folder / "cache"), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": USER_MODULES}  # the battery's own classes (tests/toy_extensions.py) import from there
    start = time.perf_counter()
    done = subprocess.run([str(COMMAND), *args], cwd=folder, capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines() or [""]
    return done.returncode, seconds, lines[0].removeprefix("ntkeval: error: ") + (" [+more lines]" if len(lines) > 1 else "")


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per input; its median is reported")
    parser.add_argument("--width", type=int, default=110, help="characters of each message shown")
    args = parser.parse_args()
    gpus = host.cuda_gpus().count
    rows = []
    for case in BATTERY:
        if case.needs_no_gpu and gpus != 0:
            continue
        times, code, message = [], None, ""
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                code, seconds, message = run_once(case.argv(Path(tmp)), Path(tmp))
                message = message.replace(tmp, "{tmp}")
                times.append(seconds)
        rows.append((cut(" ".join(case.args), 48), code, statistics.median(times), cut(message, args.width),
                     case.stage))
    print("| input | exit | seconds | message | caught by |")
    print("|---|---|---|---|---|")
    for text, code, seconds, message, stage in rows:
        print(f"| `{text}` | {code} | {seconds:.2f} | {message.replace('|', '/')} | {stage} |")
    print()
    for label, chosen in (("all inputs", rows), ("caught before the full build", [r for r in rows if r[4] != "build"])):
        times = [r[2] for r in chosen]
        print(f"{label} ({len(times)}): median {statistics.median(times):.2f} s, worst {max(times):.2f} s")
    bad = [r for r in rows if r[1] != 2]
    print(f"exit code 2 for {len(rows) - len(bad)} of {len(rows)}" + (f"; not for: {[r[0] for r in bad]}" if bad else ""))


if __name__ == "__main__":
    main()

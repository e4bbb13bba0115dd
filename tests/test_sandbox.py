"""The program sandbox (ntkeval.sandbox): honest programs print their answers; each hostile program is contained
within its limits, counted with the right status, in bounded wall time, and leaves no process, file or directory."""

from __future__ import annotations

import glob
import os
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from ntkeval.sandbox import STATUSES, ProgramRun, run_programs, sandbox_problem
from ntkeval.sandbox.pool import ZYGOTE_MARK

LIMITS = {"timeout_s": 1.0, "memory_mb": 128, "output_bytes": 1024, "workers": 1}  # small: the file stays fast
BOUND_S = 8.0  # a run's wall time: the 1 s timeout plus a worker's start on a busy 2-core machine
HOME = Path(os.path.expanduser("~"))


def _sandbox_processes() -> list[int]:
    """Live workers or children started by this test process (their command line carries our pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if ZYGOTE_MARK in cmdline and f'"parent": {os.getpid()}' in cmdline:
            found.append(int(entry.name))
    return found


def _our_temp_dirs() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), f"ntkeval-sandbox-{os.getpid()}-*"))


@pytest.fixture
def run_one():
    """Runs one program under the small limits; checks the run's wall time and that the machine is as it was."""
    home_before, cwd_before = set(os.listdir(HOME)), set(os.listdir(os.getcwd()))

    def run(program: str, **limits) -> ProgramRun:
        start = time.monotonic()
        (result,) = run_programs([program], **{**LIMITS, **limits})
        assert time.monotonic() - start < BOUND_S
        assert result.status in STATUSES
        return result

    yield run
    assert _sandbox_processes() == []
    assert _our_temp_dirs() == []
    assert set(os.listdir(HOME)) - home_before == set()
    assert set(os.listdir(os.getcwd())) - cwd_before == set()


def test_the_sandbox_works_here():
    assert sandbox_problem() is None


@pytest.mark.parametrize("program, stdout", [
    ("print('hello')", "hello\n"),
    ("print(41 + 55)\nprint(96 // 4, 7 % 3)", "96\n24 1\n"),
    ("from fractions import Fraction\nprint(Fraction(1, 3) + Fraction(1, 6))", "1/2\n"),
    ("import math\nprint(math.factorial(10), math.gcd(84, 36), math.isqrt(99))", "3628800 12 9\n"),
    ("x = 3\n", ""),  # prints nothing: ok, and the empty answer is the caller's to judge
    ("import json, statistics\nprint(json.dumps(statistics.mean([1, 2, 6])))", "3\n"),
])
def test_honest_programs_print_their_answers(run_one, program, stdout):
    assert run_one(program) == ProgramRun(stdout, "ok", "")


def test_many_programs_keep_their_order_across_workers():
    programs = [f"print({n} * {n} + 1)" for n in range(40)]
    runs = run_programs(programs, timeout_s=5.0, workers=2)
    assert [run.stdout for run in runs] == [f"{n * n + 1}\n" for n in range(40)]
    assert {run.status for run in runs} == {"ok"}
    assert _sandbox_processes() == [] and _our_temp_dirs() == []


def test_a_crash_is_an_error_with_its_exception(run_one):
    assert run_one("print(1)\n1 / 0") == ProgramRun("1\n", "error", "ZeroDivisionError: division by zero")
    assert run_one("raise SystemExit(3)").status == "error"
    assert run_one("def broken(:").detail.startswith("SyntaxError")


def test_infinite_loop_times_out(run_one):
    start = time.monotonic()
    result = run_one("while True:\n    pass", timeout_s=0.5)
    assert (result.status, result.detail) == ("timeout", "wall clock over 0.5 s")
    assert 0.5 <= time.monotonic() - start


def test_sleeping_forever_times_out(run_one):
    assert run_one("import time\ntime.sleep(60)", timeout_s=0.5).status == "timeout"


def test_fork_bomb_is_forbidden(run_one):
    result = run_one("import os\nwhile True:\n    try:\n        os.fork()\n    except BaseException:\n        pass")
    assert (result.status, result.detail) == ("forbidden", "os.fork")


def test_os_fork_is_forbidden(run_one):
    assert run_one("import os\nprint('before')\nos.fork()\nprint('after')") == ProgramRun(
        "before\n", "forbidden", "os.fork")


def test_ten_gigabytes_is_a_memory_status(run_one):
    assert run_one("block = bytearray(10 * 2**30)\nprint(len(block))") == ProgramRun("", "memory", "MemoryError")


def test_deep_recursion_is_an_error(run_one):
    result = run_one("def down(n):\n    return down(n + 1)\ndown(0)")
    assert (result.status, result.detail) == ("error", "RecursionError: maximum recursion depth exceeded")


def test_unbounded_recursion_limit_is_still_contained(run_one):
    result = run_one("import sys\nsys.setrecursionlimit(10**9)\ndef down(n):\n    return down(n + 1)\ndown(0)")
    assert result.status in ("memory", "timeout", "error")


def test_opening_a_socket_is_forbidden(run_one):
    program = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)"
    assert run_one(program) == ProgramRun("", "forbidden", "import socket")


def test_writing_to_the_home_directory_is_forbidden(run_one):
    target = HOME / f"ntkeval-sandbox-probe-{uuid.uuid4().hex}.txt"
    result = run_one(f"open({str(target)!r}, 'w').write('pwned')")
    assert result.status == "forbidden" and str(target) in result.detail
    assert not target.exists()


def test_writing_outside_the_temporary_directory_is_forbidden(run_one):
    target = Path(tempfile.gettempdir()) / f"ntkeval-sandbox-probe-{uuid.uuid4().hex}.txt"
    cwd_target = Path.cwd() / target.name
    assert run_one(f"open({str(target)!r}, 'w').write('pwned')").status == "forbidden"
    assert run_one(f"import os\nos.mkdir({str(cwd_target)!r})").status == "forbidden"
    assert run_one("import os\nos.symlink('/etc', 'link')\nopen('link/probe', 'w')").status == "forbidden"
    assert not target.exists() and not cwd_target.exists()


def test_writing_inside_its_own_directory_is_allowed(run_one):
    program = "open('scratch.txt', 'w').write('7')\nprint(open('scratch.txt').read())"
    assert run_one(program) == ProgramRun("7\n", "ok", "")


def test_os_system_is_forbidden(run_one):
    assert run_one("import os\nos.system('touch pwned')") == ProgramRun("", "forbidden", "os.system")


def test_ctypes_is_forbidden(run_one):
    assert run_one("import ctypes\nctypes.CDLL(None).system(b'touch pwned')") == ProgramRun(
        "", "forbidden", "import ctypes")


def test_environment_secrets_are_not_readable(run_one, monkeypatch):
    secret = f"sk-{uuid.uuid4().hex}"
    monkeypatch.setenv("NTKEVAL_FAKE_SECRET", secret)
    result = run_one("import os\nprint(sorted(os.environ))\nprint(os.environ.get('NTKEVAL_FAKE_SECRET'))")
    assert result.status == "ok" and secret not in result.stdout
    assert result.stdout.endswith("['HOME', 'TMPDIR']\nNone\n")
    parent = run_one(f"print(open('/proc/{os.getpid()}/environ').read())")
    assert parent.status == "forbidden" and secret not in parent.stdout
    assert run_one("print(open('/proc/self/environ').read())").status == "forbidden"


def test_printing_a_gigabyte_hits_the_output_limit(run_one):
    result = run_one("import sys\nfor _ in range(2**20):\n    sys.stdout.write('x' * 1024)")
    assert (result.status, result.stdout) == ("output_limit", "x" * 1024)


def test_subprocess_is_forbidden(run_one):
    result = run_one("import subprocess\nsubprocess.run(['touch', 'pwned'])")
    assert result.status == "forbidden"


def test_multiprocessing_is_forbidden(run_one):
    program = "import multiprocessing\nmultiprocessing.Process(target=print).start()"
    assert run_one(program).status == "forbidden"


def test_threads_cannot_start(run_one):
    result = run_one("import threading\nthreading.Thread(target=print).start()")
    assert (result.status, result.detail) == ("error", "RuntimeError: can't start new thread")


def test_the_kernel_refuses_fork_and_sockets_behind_the_hook():
    """The second wall alone: a child confined like a program's, without the audit hook, still cannot fork, open a
    socket, or raise its limits (seccomp and RLIMIT_NPROC; the network namespace is the worker's, not tested)."""
    from ntkeval.sandbox import walls

    workdir = tempfile.mkdtemp()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        verdicts = []
        try:
            walls.confine(walls.Limits(5.0, 256, 64), workdir, _confine_plan(walls), os.getppid())
            for attempt in (os.fork, lambda: __import__("socket").socket()):
                try:
                    child = attempt()
                    if child == 0:
                        os._exit(0)
                    verdicts.append("allowed")
                except OSError:
                    verdicts.append("refused")
        except BaseException as failure:  # noqa: BLE001
            verdicts.append(f"setup {failure!r}")
        os.write(write_end, ",".join(verdicts).encode())
        os._exit(0)
    os.close(write_end)
    verdict = os.read(read_end, 1000).decode()
    os.waitpid(pid, 0)
    os.close(read_end)
    os.rmdir(workdir)
    assert verdict == "refused,refused"


def _confine_plan(walls):
    """The per-program walls without entering a network namespace (that would move the test process itself)."""
    plan = walls.Plan(libc=walls._load_libc())
    plan.fprog = walls.seccomp.build_filter()
    plan.as_nobody = os.geteuid() == 0 and walls._nobody_can_read_python()
    return plan


@pytest.mark.parametrize("arguments, message", [
    ({"timeout_s": 0}, "timeout_s=0 is invalid"),
    ({"memory_mb": 1}, "memory_mb=1 is invalid"),
    ({"output_bytes": 0}, "output_bytes=0 is invalid"),
    ({"workers": 0}, "workers=0 is invalid"),
])
def test_bad_limits_are_one_line(arguments, message):
    with pytest.raises(ValueError, match=message):
        run_programs(["print(1)"], **arguments)


def test_no_programs_start_nothing():
    assert run_programs([]) == []

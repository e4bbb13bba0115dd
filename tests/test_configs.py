"""Every option of every config group composes, passes the schema (ntkeval.schema, which mirrors the classes it
describes) and builds into the objects a cell takes (no weights loaded)."""

import itertools
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from ntkeval.build import CONF_DIR, make, resolve_skills
from ntkeval.pair_sweep import expands
from ntkeval.schema.command_line import group_options as options_in

GROUPS = ["model", "learner", "dataset", "pair", "scorer", "logger", "format"]


def options_of(group: str) -> list[str]:
    return options_in(group, CONF_DIR)


def test_the_registry_holds_the_required_options():
    assert {"codellama", "llemma", "mistral", "smollm2", "tiny", "tiny-mistral", "mathglm-tiny", "wizardmath",
            "metamath", "mammoth", "galactica"} <= set(options_of("model"))
    assert set(options_of("learner")) == {"icl-standard", "icl-skill", "tune-base", "tune-skill",  # the paper's
                                          "tune-rft", "tune-rft-wrong", "tune-augment", "tune-augment-base",
                                          "tune-rl", "tune-rl-format", "opro", "opro-start"}  # the survey's
    assert {"arith"} <= set(options_of("dataset"))
    assert {"exact"} <= set(options_of("scorer"))
    assert {"wandb", "none"} <= set(options_of("logger"))
    assert {"local", "slurm"} <= set(options_of("hydra/launcher"))
    assert {"quickstart", "paper-arith"} <= set(options_of("experiment"))


def dataset_overrides(option: str, tmp_path) -> list[str]:
    """What each data set needs beyond its defaults: a skill of its own, a file of questions for jsonl."""
    if option == "khanskill":
        return ["pair.train=fractions/simplify-fraction"]
    if option == "jsonl":
        path = tmp_path / "mine.jsonl"
        lines = [json.dumps({"question": f"{s} question {i}?", "answer": str(i), "skill": s})
                 for s in ("alpha", "beta") for i in range(6)]
        path.write_text("\n".join(lines) + "\n")
        return [f"dataset.path={path}", "pair.train=alpha", "dataset.n_train=3", "dataset.n_test=3",
                "learner.demos=2"]  # the default learner draws its demonstrations from the 3 train questions
    return []


@pytest.mark.parametrize("group", GROUPS)
def test_every_option_composes_and_builds(compose_config, group, tmp_path):
    for option in options_of(group):
        extra = dataset_overrides(option, tmp_path) if group == "dataset" else []
        cfg = compose_config(f"{group}={option}", *extra)
        built = make(cfg[group]) if group != "pair" else None
        if group == "model":
            assert built.name == cfg.model.name and built.identity()
        if group == "learner":
            assert built.name == option
        if group == "format":
            assert built.name == option and built.identity() == ({} if option == "direct" else built.identity())
        dataset = make(cfg.dataset)
        train, tests = resolve_skills(dataset, cfg.pair)
        assert train in dataset.skills() and set(tests) <= set(dataset.skills()) and tests


def test_models_and_learners_compose_in_every_combination(compose_config):
    for model, learner in itertools.product(options_of("model"), options_of("learner")):
        cfg = compose_config(f"model={model}", f"learner={learner}")
        assert make(cfg.learner).name == learner


def test_controls_share_the_tuning_hyperparameters(compose_config):
    skill = make(compose_config("learner=tune-skill", "learner.steps=7", "learner.lora.r=4").learner)
    control = skill.control()
    assert control.name == "tune-base" and control.answers == "random"
    assert (control.steps, control.lora.r) == (7, 4)
    base = make(compose_config("learner=tune-base").learner)
    assert base.control() is None
    skill = make(compose_config("learner=tune-skill").learner)
    model = make(compose_config("model=tiny").model)
    base.bind_model(model)
    skill.bind_model(model)
    assert base.key("add/question", 0) == skill.control().key("add/question", 0)
    assert base.key("add/question", 0)["lora"]["target_modules"] == ["q_proj", "v_proj"]  # the model's, bound
    icl = make(compose_config("learner=icl-skill", "learner.demos=5").learner)
    assert icl.control().name == "icl-standard" and icl.control().demos == 5
    assert make(compose_config("learner=icl-standard").learner).control() is None


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_launchers_compose(compose_config, launcher):
    import importlib

    cfg = compose_config(f"hydra/launcher={launcher}")
    module, _, name = cfg.hydra.launcher._target_.rpartition(".")
    # submitit's launcher or one built on it (by name: Hydra's plugin scan may load a plugin module twice)
    ancestry = [c.__name__ for c in getattr(importlib.import_module(module), name).__mro__]
    assert "BaseSubmititLauncher" in ancestry, ancestry
    # ntkeval's own settings: one job per cell unless packed; no GPU memory check unless a size is given (preflight
    # refuses a job whose estimate exceeds it; tests/test_memory_estimate.py)
    assert cfg.hydra.launcher.pack == "none" and cfg.hydra.launcher.gpu_memory_gb is None
    if launcher == "slurm":
        assert cfg.hydra.launcher.gpus_per_node == 1
        assert cfg.hydra.launcher.additional_parameters.requeue is True


@pytest.mark.parametrize("experiment,train_skills", [("quickstart", 8), ("paper-arith", 24), ("paper-khanskill", 127),
                                                      ("khanskill-cpu", 6)])
def test_experiments_compose_into_multiruns(compose_config, experiment, train_skills):
    cfg = compose_config(f"experiment={experiment}")
    assert str(cfg.hydra.mode).endswith("MULTIRUN") and expands(cfg.hydra)  # the sweeper runs a cell per skill
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert set(params["learner"].split(",")) == {"icl-standard", "icl-skill", "tune-base", "tune-skill"}
    dataset = make(cfg.dataset)
    train = params.get("pair.train", OmegaConf.select(cfg, "pair.train"))  # a sweep param, else the config's
    skills = dataset.resolve(list(train) if OmegaConf.is_list(train) else train)
    assert len(skills) == train_skills and len(set(skills)) == train_skills
    for skill in skills:
        assert dataset.resolve(skill) == [skill]


@pytest.mark.parametrize("experiment,formats,learners,train_skills", [
    ("reasoning-cpu", {"direct", "cot", "pot"}, {"icl-skill"}, 4),
    ("paper-reasoning", {"direct", "cot", "pot", "work", "hybrid"},
     {"icl-standard", "icl-skill", "tune-base", "tune-skill"}, 24)])
def test_reasoning_experiments_sweep_answer_formats_under_self_consistency(compose_config, experiment, formats,
                                                                          learners, train_skills):
    cfg = compose_config(f"experiment={experiment}")
    assert str(cfg.hydra.mode).endswith("MULTIRUN") and expands(cfg.hydra)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert set(params["format"].split(",")) == formats and set(params["learner"].split(",")) == learners
    assert set(params["format"].split(",")) <= set(options_of("format"))
    assert cfg.scorer._target_.endswith("MajorityScorer") and max(cfg.scorer.k) <= cfg.scorer.n
    assert cfg.scorer.max_new_tokens >= 64  # room for steps or a program, not only a bare answer
    dataset = make(cfg.dataset)
    train = params.get("pair.train", OmegaConf.select(cfg, "pair.train"))
    assert len(dataset.resolve(list(train) if OmegaConf.is_list(train) else train)) == train_skills


@pytest.mark.parametrize("experiment,model,learners,train_skills", [
    ("training-cpu", "mathglm-tiny", {"tune-skill", "tune-rft", "tune-augment", "opro"}, 8),
    ("paper-training", "codellama,llemma,mistral",
     {"tune-base", "tune-skill", "tune-rft", "tune-augment", "tune-rl", "opro"}, 24)])
def test_training_experiments_sweep_the_survey_learners_in_a_reasoning_format(compose_config, experiment, model,
                                                                             learners, train_skills):
    """Every learner of the sweep composes under the experiment (no learner-only key in it) and has its control in
    the cell; paper-training writes chain-of-thought (RFT's paths with equations), training-cpu the bare answers
    mathglm-tiny was taught."""
    cfg = compose_config(f"experiment={experiment}")
    assert str(cfg.hydra.mode).endswith("MULTIRUN") and expands(cfg.hydra)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert set(params["learner"].split(",")) == learners
    assert params.get("model", cfg.model.name) == model
    assert cfg.format._target_ == {"training-cpu": "ntkeval.formats.direct.DirectFormat",
                                   "paper-training": "ntkeval.formats.reasoning.CotFormat"}[experiment]
    dataset = make(cfg.dataset)
    train = params.get("pair.train", OmegaConf.select(cfg, "pair.train"))
    assert len(dataset.resolve(list(train) if OmegaConf.is_list(train) else train)) == train_skills
    for learner in learners:
        built = make(compose_config(f"experiment={experiment}", f"learner={learner}").learner)
        # each recipe is compared with its own control in the cell; tune-base (a control) with the untouched model
        assert (built.control() is None) == (learner == "tune-base"), learner


def test_cache_dir_defaults_outside_the_repo(compose_config, monkeypatch, tmp_path):
    from tests.conftest import REPO

    monkeypatch.delenv("NTKEVAL_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = compose_config()
    assert cfg.cache_dir == f"{tmp_path}/.cache/ntkeval"
    assert REPO not in __import__("pathlib").Path(cfg.cache_dir).parents


@pytest.mark.parametrize("group", GROUPS + ["experiment"])
def test_every_option_passes_the_schema(compose_config, group, tmp_path):
    """The schema covers every key of every option: one it does not know would be an `unknown key` problem."""
    from ntkeval.preflight import typed_problems

    for option in options_of(group):
        extra = dataset_overrides(option, tmp_path) if group == "dataset" else []
        extra += ["scorer=sampled"] if group == "format" else []  # the default exact scorer reads bare answers only
        extra += ["learner=tune-skill"] if (group, option) == ("scorer", "entk") else []  # it predicts LoRA tuning
        assert typed_problems(compose_config(f"{group}={option}", *extra)) == [], f"{group}={option}"


def _schema_classes():
    import dataclasses
    import typing

    from ntkeval.schema import nodes

    return [c for c in vars(nodes).values() if dataclasses.is_dataclass(c) and typing.get_type_hints(c)
            and hasattr(c, "TARGET")]


@pytest.mark.parametrize("schema", _schema_classes(), ids=lambda c: c.__name__)
def test_the_schema_mirrors_each_class(schema):
    """Each schema class names the constructor's parameters with its defaults (peft's LoraConfig: the ones the YAML
    sets), so a parameter added to a class without a schema field, or a default changed on one side only, fails."""
    import dataclasses
    import importlib
    import inspect

    def default(f):  # a dataclass field's default, MISSING when it has none
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    module, _, name = schema.TARGET.rpartition(".")
    target = getattr(importlib.import_module(module), name)
    if dataclasses.is_dataclass(target):
        parameters = {f.name: default(f) for f in dataclasses.fields(target) if f.init}
    else:
        parameters = {n: dataclasses.MISSING if p.default is inspect.Parameter.empty else p.default
                      for n, p in inspect.signature(target).parameters.items() if n not in ("self", "kwargs")}
    fields = {f.name: default(f) for f in dataclasses.fields(schema)}
    if not getattr(schema, "OPEN", False):
        assert set(fields) == set(parameters), schema.TARGET
    for name, value in fields.items():
        expected = parameters[name]
        assert value == (list(expected) if isinstance(expected, tuple) else expected), f"{schema.TARGET}.{name}"


def test_the_schema_choices_are_the_classes_choices():
    from ntkeval.backends.huggingface.tiny import _ARCHES
    from ntkeval.data.jsonl import OPTIONAL, REQUIRED
    from ntkeval.learners.icl import SOURCES
    from ntkeval.learners.lora import ANSWERS
    from ntkeval.schema import nodes
    from ntkeval.schema.rules import rule_of
    from ntkeval.scorers.ntk import ESTIMATES
    from ntkeval.tracking.wandb_tracker import MODES

    def choices(schema, name):
        return tuple(rule_of(next(f for f in __import__("dataclasses").fields(schema) if f.name == name)).choices)

    assert set(choices(nodes.InContextLearner, "source")) == set(SOURCES)
    assert set(choices(nodes.LoraLearner, "answers")) == set(ANSWERS)
    assert set(choices(nodes.TinyModel, "arch")) == set(_ARCHES)
    assert choices(nodes.NtkScorer, "estimates") == tuple(ESTIMATES)
    assert set(choices(nodes.WandbLogger, "mode")) == set(MODES)
    assert {f.name for f in __import__("dataclasses").fields(nodes.JsonlFields)} == set(REQUIRED + OPTIONAL)


@pytest.mark.parametrize("option", options_of("learner"))
def test_the_schema_knows_which_learners_have_a_control(compose_config, option):
    """The fast relation check must agree with the learner class it stands in for."""
    from ntkeval.schema.relations import has_control

    cfg = compose_config(f"learner={option}")
    node = OmegaConf.to_container(cfg.learner, resolve=True)
    assert has_control(node) is (make(cfg.learner).control() is not None)


@pytest.mark.parametrize("experiment,cells,trains,models", [("science-cpu", 52, 10, 1), ("paper-science", 384, 24, 3)])
def test_science_experiments_hold_every_comparison_of_the_report(experiment, cells, trains, models, tmp_path,
                                                                 monkeypatch, capsys):
    """Each grid of the sweep composes and passes the whole preflight: in-context learning and tuning with their
    learning curves, a second seed of both, the predicted kernel of the tuning and the cells tested on khanskill."""
    from ntkeval.preflight import check_command_line

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        check_command_line([f"experiment={experiment}", "dry_run=true", "logger=none", f"cache_dir={tmp_path}/c"])
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("cell:")]
    assert len(lines) == cells
    by_kind: dict[tuple, int] = {}
    for line in lines:
        fields = dict(f.split("=", 1) for f in line if "=" in f)
        kind = (line[2], line[3], fields["seed"], fields["tests"])
        by_kind[kind] = by_kind.get(kind, 0) + 1
    square = str(10 if experiment == "science-cpu" else 24)
    for learner in ("icl-skill", "tune-skill"):
        for seed in ("0", "1"):  # both learners under both seeds, every train skill: square kernels to compare
            assert by_kind[(learner, "arith", seed, square)] >= trains * models
    # the predicted kernel is a tune-skill grid of its own, seed 0: tune-skill seed 0 appears twice over
    assert by_kind[("tune-skill", "arith", "0", square)] == 2 * trains * models
    cfg_grids = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "experiment" / f"{experiment}.yaml")
    grids = cfg_grids.hydra.sweeper.grids
    assert grids.predicted.scorer == "entk" and grids["cross"]["dataset@pair.test_dataset"] == "khanskill"
    assert grids.icl["learner.curve"] == "[0,1,2,4,8]"
    steps = OmegaConf.select(cfg_grids, "tuning.steps")
    assert str(steps) in grids.tuned["learner.curve"]  # the curve ends at the full adapter: its point is the kernel

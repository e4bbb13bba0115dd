"""Drawing completions: the sampling distribution, the log p recorded with each completion, stop rules, the
canonical completion drawn with exactly its teacher-forced probability, determinism per question, the keys of the
cached samples, settings checked."""

import math
from contextlib import contextmanager

import pytest
import torch
from sampling_fakes import AnyInteger, LogitBias

from ntkeval.backends.base import SamplingSpec
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.sampling import (
    completion_logprobs,
    draw,
    draw_all,
    next_token_logprobs,
    next_token_probs,
)
from ntkeval.backends.huggingface.teacher_forcing import answer_logprobs
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import encode_pair
from ntkeval.cache import stable_hash
from ntkeval.data.base import Example
from ntkeval.errors import UserError
from ntkeval.prompts import PromptFormat
from ntkeval.scorers import sample_stages as samples_module
from ntkeval.scorers.base import Role, Roles

PROMPT = "Q: What is 3+4?\nA:"


@pytest.fixture(scope="module")
def tiny():
    return TinyModel(arch="llama", initializer_range=0.3).load("cpu")


@pytest.fixture(scope="module", params=["llama", "mistral"])
def both_tiny(request):
    """Both tiny architectures (sentencepiece-like tokenizer with BOS; byte-level BPE without), sharper than
    default (initializer_range 0.3) so that probabilities vary."""
    return TinyModel(arch=request.param, initializer_range=0.3).load("cpu")


def teacher_forced(model, tokenizer, prompt, tokens, temperature=1.0, top_p=1.0) -> float:
    """log p(tokens | prompt) from one full forward pass, under the sampling distribution's definition."""
    ids = tokenizer(prompt)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([ids + list(tokens)])).logits[0]
    logprobs = next_token_logprobs(logits[len(ids) - 1:len(ids) - 1 + len(tokens)], temperature, top_p).double()
    return sum(logprobs[i, t].item() for i, t in enumerate(tokens))


def test_temperature_and_top_p_reshape_the_distribution_as_defined():
    p = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = p.log()
    assert next_token_probs(logits, 1.0, 1.0) == pytest.approx(p, abs=1e-6)
    hot = p.sqrt() / p.sqrt().sum()  # temperature 2: p^(1/2), renormalised
    assert next_token_probs(logits, 2.0, 1.0) == pytest.approx(hot, abs=1e-6)
    # top-p 0.7: 0.5 alone is not enough, 0.5 + 0.3 is: keep the first two
    assert next_token_probs(logits, 1.0, 0.7) == pytest.approx(torch.tensor([[0.625, 0.375, 0, 0]]), abs=1e-6)
    # top-p smaller than the first token's probability still keeps that token
    assert next_token_probs(logits, 1.0, 0.1) == pytest.approx(torch.tensor([[1.0, 0, 0, 0]]), abs=1e-6)


def test_first_tokens_follow_the_models_distribution(tiny):
    model, tokenizer = tiny
    spec = SamplingSpec(n=4000, max_new_tokens=1)
    drawn = draw(model, tokenizer, PROMPT, spec, seed=0)
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([tokenizer(PROMPT)["input_ids"]])).logits[0, -1].double(), -1)
    for token in p.argsort(descending=True)[:5].tolist():
        freq = sum(c.tokens[0] == token for c in drawn) / spec.n
        assert abs(freq - p[token].item()) < 4 * math.sqrt(p[token].item() * (1 - p[token].item()) / spec.n)


def test_completions_end_at_a_stop_string_or_the_token_limit(tiny):
    model, tokenizer = tiny
    drawn = draw(model, tokenizer, PROMPT, SamplingSpec(n=64, max_new_tokens=6, stop=("A", "\n")), seed=1)
    for c in drawn:
        assert 1 <= len(c.tokens) <= 6
        assert "A" not in c.text and "\n" not in c.text
        full = tokenizer.decode(list(c.tokens), skip_special_tokens=True)
        if c.end == "stop":
            assert ("A" in full or "\n" in full) and full.startswith(c.text)
        elif c.end == "length":
            assert len(c.tokens) == 6 and c.text == full
        else:
            assert c.end == "eos" and c.tokens[-1] == tokenizer.eos_token_id
    assert {c.end for c in drawn} >= {"stop", "length"}


def test_a_questions_samples_depend_on_its_seed_alone(tiny):
    model, tokenizer = tiny
    spec = SamplingSpec(n=8, max_new_tokens=4)
    prompts = [PROMPT, "Q: What is 9*9?\nA:"]
    together = draw_all(model, tokenizer, prompts, spec, seeds=[11, 12])
    alone = draw_all(model, tokenizer, prompts[1:], spec, seeds=[12])
    assert together[1] == alone[0]
    assert draw(model, tokenizer, PROMPT, spec, 11) == together[0]
    assert draw(model, tokenizer, PROMPT, spec, 13) != together[0]


def test_completion_logprobs_are_the_probabilities_the_tokens_were_drawn_with(tiny):
    model, tokenizer = tiny
    prompts = [PROMPT, "Q: What is 9*9?\nA:"]
    drawn = draw_all(model, tokenizer, prompts, SamplingSpec(n=4, max_new_tokens=3), seeds=[0, 1])
    got = completion_logprobs(model, tokenizer, prompts, drawn, batch_size=3)
    for prompt, completions, logps in zip(prompts, drawn, got):
        ids = tokenizer(prompt)["input_ids"]
        for c, lp in zip(completions, logps):
            with torch.no_grad():
                logits = model(torch.tensor([ids + list(c.tokens)])).logits[0].double()
            want = sum(torch.log_softmax(logits[len(ids) - 1 + i], -1)[t].item() for i, t in enumerate(c.tokens))
            assert lp == pytest.approx(want, abs=1e-4)


def test_the_recorded_logp_is_the_teacher_forced_logp_in_float32(both_tiny):
    """The sampler's own log p (recorded while drawing, used in the weights) and the other model's (a teacher-forced
    pass) are the same function of the tokens: within 1e-4 in float32 on both architectures."""
    model, tokenizer = both_tiny
    prompts = [PROMPT, "Q: What is 12*30?\nA:"]
    drawn = draw_all(model, tokenizer, prompts, SamplingSpec(n=16, max_new_tokens=5), seeds=[3, 4])
    rescored = completion_logprobs(model, tokenizer, prompts, drawn, batch_size=5)
    for prompt, completions, logps in zip(prompts, drawn, rescored):
        for c, lp in zip(completions, logps):
            assert c.logp == pytest.approx(lp, abs=1e-4)
            assert c.logp == pytest.approx(teacher_forced(model, tokenizer, prompt, c.tokens), abs=1e-4)
    assert len({round(c.logp, 3) for cs in drawn for c in cs}) > 8  # many different values were compared


def test_the_recorded_logp_is_under_the_distribution_sampled_from(tiny):
    """At temperature 0.7 and top-p 0.9 the recorded log p is that of the tempered nucleus distribution."""
    model, tokenizer = tiny
    drawn = draw(model, tokenizer, PROMPT, SamplingSpec(n=16, temperature=0.7, top_p=0.9, max_new_tokens=4), seed=5)
    for c in drawn:
        assert c.logp == pytest.approx(teacher_forced(model, tokenizer, PROMPT, c.tokens, 0.7, 0.9), abs=1e-4)
        assert c.logp != pytest.approx(teacher_forced(model, tokenizer, PROMPT, c.tokens), abs=1e-3)


def test_in_bfloat16_a_re_score_is_not_the_density_sampled_from(tiny):
    """Why the weights use the recorded log p: in bfloat16 the sampler's incremental (key/value cache) passes and a
    batched teacher-forced pass round differently, so a re-score of the same tokens differs from the probabilities
    they were drawn with by far more than 1e-4 (about 0.1 in log p on this model; 1e-5 in float32)."""
    model, tokenizer = tiny
    model = TinyModel(arch="llama", initializer_range=0.3).load("cpu")[0].to(torch.bfloat16)
    prompts = [PROMPT, "Q: What is 12*30?\nA:"]
    drawn = draw_all(model, tokenizer, prompts, SamplingSpec(n=32, max_new_tokens=6), seeds=[0, 1])
    rescored = completion_logprobs(model, tokenizer, prompts, drawn, batch_size=7)
    gaps = [abs(c.logp - lp) for cs, lps in zip(drawn, rescored) for c, lp in zip(cs, lps)]
    assert max(gaps) > 1e-3


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_the_canonical_completion_is_drawn_with_its_teacher_forced_probability(arch):
    """The exact scorer's event (the completion is exactly the answer's tokens + delimiter) happens in real draws
    as often as its teacher-forced probability says: a completion ends only at its first stop string, EOS or the
    token limit, so nothing else cuts it short or lets it run on (the basis of launch/sample_efficiency.py)."""
    base, tokenizer = TinyModel(arch=arch).load("cpu")
    fmt = PromptFormat()
    prompt, target = fmt.prompt(Example("t/test/0", "t", "What is 3+4?", "7")), fmt.target("7")
    pair = encode_pair(tokenizer, prompt, target)
    assert pair.context == tokenizer(prompt)["input_ids"]  # the sampler conditions on the same tokens
    bias = torch.zeros(len(tokenizer))
    bias[pair.answer] = 5.0  # make the canonical completion common enough to count
    model = LogitBias(base, bias).eval()
    p = math.exp(answer_logprobs(model, tokenizer, [prompt], [target])[0])
    assert 0.05 < p < 0.95
    n = 3000
    drawn = draw(model, tokenizer, prompt, SamplingSpec(n=n, max_new_tokens=len(pair.answer) + 2,
                                                         stop=(fmt.delimiter,)), seed=7)
    hits = sum(list(c.tokens) == pair.answer for c in drawn)
    assert abs(hits / n - p) < 4 * math.sqrt(p * (1 - p) / n), (hits / n, p)
    canonical = [c for c in drawn if list(c.tokens) == pair.answer]
    assert canonical and all(c.end == "stop" and c.text.strip() == "7" for c in canonical)
    assert all(c.logp == pytest.approx(math.log(p), abs=1e-4) for c in canonical)


class CachingView:
    """A SkillView with a stage cache keyed by the stage's kind, role key and parts (what the cell adds to a key,
    the model, data set, format and test skill, is the same for every call here): the untouched model's samples."""

    def __init__(self, model, tokenizer, seed: int, store: dict, computed: list):
        self.test_skill, self.dataset, self.fmt, self.seed = "t", AnyInteger(), PromptFormat(), seed
        self.examples = [Example("t/test/0", "t", "What is 3+4?", "7")]
        base = Role("base")
        self.roles = Roles(base=base, control=base, learner=base, seed=seed)
        self.model, self.tokenizer, self.store, self.computed = model, tokenizer, store, computed

    def record(self, stage, compute):
        key = stable_hash([stage.kind, stage.role.key, stage.parts])
        if key not in self.store:
            self.store[key] = compute()
            self.computed.append(stage.kind)
        return self.store[key]

    @contextmanager
    def open(self, role):
        yield HFLanguageModel(self.model, self.tokenizer), ""


def test_the_untouched_models_samples_are_keyed_by_the_seed_that_drew_them(tiny):
    """The base role's key is None, and the data set's seed may differ from the cell's: another cell seed must
    draw (and cache) other samples, not reuse those drawn from another seed's streams."""
    model, tokenizer = tiny
    store, computed = {}, []
    spec = SamplingSpec(n=8, max_new_tokens=3)
    first = samples_module.samples(CachingView(model, tokenizer, 0, store, computed), spec, Role("base"))
    again = samples_module.samples(CachingView(model, tokenizer, 0, store, computed), spec, Role("base"))
    other = samples_module.samples(CachingView(model, tokenizer, 1, store, computed), spec, Role("base"))
    assert computed == ["samples", "samples"] and again == first and other != first
    assert all(isinstance(c["logp"], float) for c in first[0]["completions"])


def test_samples_are_keyed_by_the_parser_and_answer_equivalence_versions(monkeypatch):
    spec, base = SamplingSpec(), Role("base")
    key = samples_module.sample_stage(spec, base, 0).parts
    monkeypatch.setattr(samples_module, "EQUIVALENCE_VERSION", samples_module.EQUIVALENCE_VERSION + 1)
    assert samples_module.sample_stage(spec, base, 0).parts != key
    monkeypatch.undo()
    monkeypatch.setattr(samples_module, "PARSER_VERSION", samples_module.PARSER_VERSION + 1)
    assert samples_module.sample_stage(spec, base, 0).parts != key
    monkeypatch.undo()
    assert samples_module.sample_stage(spec, base, 0).parts == key
    assert samples_module.sample_stage(spec, base, 1).parts != key


@pytest.mark.parametrize("field, value, words", [
    ("n", 1, "scorer.n=1"), ("n", 0, "scorer.n=0"), ("n", 2.5, "scorer.n=2.5"),
    ("temperature", 0.0, "scorer.temperature=0.0"), ("temperature", -1.0, "scorer.temperature=-1.0"),
    ("temperature", float("nan"), "scorer.temperature=nan"), ("top_p", 0.0, "scorer.top_p=0.0"),
    ("top_p", 1.5, "scorer.top_p=1.5"), ("max_new_tokens", 0, "scorer.max_new_tokens=0"),
    ("stop", ("",), "scorer.stop="),
])
def test_settings_out_of_range_are_named_with_the_valid_range(field, value, words):
    with pytest.raises(UserError) as error:
        SamplingSpec(**{field: value})
    assert words in str(error.value) and "valid" in str(error.value)

"""Drawing completions: the sampling distribution, stop rules, determinism per question, settings checked."""

import math

import pytest
import torch

from ntkeval.errors import UserError
from ntkeval.models import TinyModel
from ntkeval.sampling import SamplingSpec, completion_logprobs, draw, draw_all, next_token_probs

PROMPT = "Q: What is 3+4?\nA:"


@pytest.fixture(scope="module")
def tiny():
    return TinyModel(arch="llama", initializer_range=0.3).load("cpu")


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

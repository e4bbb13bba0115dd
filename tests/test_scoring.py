"""The scoring path: the tokenization rule, hand-computed probabilities, and invariance to batching and padding."""

import math
from types import SimpleNamespace

import pytest
import torch

from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.teacher_forcing import answer_logprobs, score_pairs, shared_prefix_length
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_pair
from ntkeval.data.base import Example
from ntkeval.prompts import PromptFormat
from ntkeval.scorers.exact import ExactScorer

VOCAB = {"Q": 0, ":": 1, " ": 2, "1": 3, "2": 4, "\n": 5}
E = math.e


class CharTokenizer:
    """One token per character; optionally a BOS id in front, like sentencepiece tokenizers add."""

    def __init__(self, bos: bool = False):
        self.bos_token_id = 6 if bos else None
        self.eos_token_id = 7
        self.pad_token_id = 7

    def __call__(self, text):
        ids = [VOCAB[c] for c in text]
        return {"input_ids": ([self.bos_token_id] if self.bos_token_id is not None else []) + ids}


class SuccessorBigram(torch.nn.Module):
    """A model with known logits: after token i, logit 1 for token (i+1) mod 6 and 0 for the other five, so
    p(successor) = e/(e+5) and p(any other) = 1/(e+5). BOS (6) and pad (7) are never predicted (logit -1e9)."""

    def __init__(self):
        super().__init__()
        table = torch.full((8, 8), -1e9)
        table[:6, :6] = 0.0
        for i in range(6):
            table[i, (i + 1) % 6] = 1.0
        table[6] = table[5]
        table[7, :6] = 0.0
        self.table = torch.nn.Parameter(table)
        self.calls = []

    def forward(self, input_ids, attention_mask=None, logits_to_keep=0):
        self.calls.append(tuple(input_ids.shape))
        logits = self.table[input_ids]
        if isinstance(logits_to_keep, torch.Tensor):
            logits = logits[:, logits_to_keep]
        return SimpleNamespace(logits=logits)


def test_encode_pair_splits_context_and_answer():
    pair = encode_pair(CharTokenizer(), "Q:", " 12\n")
    assert pair.context == [0, 1]
    assert pair.answer == [2, 3, 4, 5]


def test_encode_pair_moves_trailing_whitespace_into_the_answer():
    assert encode_pair(CharTokenizer(), "Q: ", "1\n") == encode_pair(CharTokenizer(), "Q:", " 1\n")


def test_encode_pair_keeps_bos_in_the_context():
    pair = encode_pair(CharTokenizer(bos=True), "Q:", " 1")
    assert pair.context == [6, 0, 1]
    assert pair.answer == [2, 3]


def test_empty_answer_is_an_error():
    with pytest.raises(ValueError, match="no tokens"):
        encode_pair(CharTokenizer(), "Q:", "")


def test_logprobs_match_hand_computed_values():
    # "Q:" + " 12": transitions :->' ' (successor), ' '->1 (successor), 1->2 (successor): 3 log(e/(e+5))
    # "Q:" + " 1\n": :->' ', ' '->1 successors, 1->\n not: 2 log(e/(e+5)) + log(1/(e+5))
    # "Q:" + " 2": :->' ' successor, ' '->2 not: log(e/(e+5)) + log(1/(e+5))
    got = answer_logprobs(SuccessorBigram(), CharTokenizer(), ["Q:", "Q:", "Q:"], [" 12", " 1\n", " 2"])
    want = [3 - 3 * math.log(E + 5), 2 - 3 * math.log(E + 5), 1 - 2 * math.log(E + 5)]
    assert got == pytest.approx(want, abs=1e-6)


def test_greedy_flag_is_true_only_when_every_answer_token_is_the_argmax():
    tok = CharTokenizer()
    pairs = [encode_pair(tok, "Q:", " 12"), encode_pair(tok, "Q:", " 1\n"), encode_pair(tok, "Q:", " 2")]
    scores = score_pairs(SuccessorBigram(), tok, pairs, batch_size=2)
    assert [s.greedy for s in scores] == [True, False, False]
    assert [s.n_tokens for s in scores] == [3, 3, 2]


def test_bos_predicts_the_first_token_when_the_prompt_is_empty_of_context():
    # With BOS, "Q:"->" 1": BOS->Q is scored as context only; ':'->' ', ' '->'1' successors: 2 log(e/(e+5)).
    got = answer_logprobs(SuccessorBigram(), CharTokenizer(bos=True), ["Q:"], [" 1"])
    assert got[0] == pytest.approx(2 - 2 * math.log(E + 5), abs=1e-6)


def test_results_come_back_in_input_order_with_length_sorted_batches():
    model = SuccessorBigram()
    prompts = ["Q:", "Q:Q:", "Q:", "Q:Q:Q:"]
    answers = [" 1", " 12\n", " 2", " 1"]
    batched = answer_logprobs(model, CharTokenizer(), prompts, answers, batch_size=2)
    single = [answer_logprobs(model, CharTokenizer(), [p], [a])[0] for p, a in zip(prompts, answers)]
    assert batched == pytest.approx(single, abs=1e-7)
    assert model.calls[0][0] == 2 and model.calls[0][1] == len("Q:Q:Q:") + 2  # the longest pair went first


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size"):
        answer_logprobs(SuccessorBigram(), CharTokenizer(), ["Q:"], [" 1"], batch_size=0)


def test_prompt_and_answer_counts_must_match():
    with pytest.raises(ValueError, match="2 prompts but 1 answers"):
        answer_logprobs(SuccessorBigram(), CharTokenizer(), ["Q:", "Q:"], [" 1"])


QUESTIONS = ["What is 41+55?", "Compute 7 * 8.", "12-5=", "Mia has 3 apples and gets 4 more. How many now?",
             "What is 100/4?", "9+9=", "Compute (2 + 3) * 4."]
ANSWERS = ["96", "56", "7", "7", "25", "18", "20"]


@pytest.fixture(params=["llama", "mistral"])
def tiny(request):
    model, tokenizer = TinyModel(name=f"tiny-{request.param}", arch=request.param).load("cpu")
    return model, tokenizer


def _prompts(fmt=PromptFormat(), prefix=""):
    examples = [Example(f"x/{i}", "x", q, a) for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    return [fmt.prompt(e, prefix) for e in examples], [fmt.target(e.answer) for e in examples]


def test_logprobs_do_not_depend_on_batch_size(tiny):
    model, tokenizer = tiny
    prompts, answers = _prompts()
    one = answer_logprobs(model, tokenizer, prompts, answers, batch_size=1)
    for size in (2, 3, 16):
        assert answer_logprobs(model, tokenizer, prompts, answers, batch_size=size) == pytest.approx(one, abs=1e-5)


def test_logprobs_do_not_depend_on_the_padding_token(tiny):
    model, tokenizer = tiny
    prompts, answers = _prompts()
    before = answer_logprobs(model, tokenizer, prompts, answers, batch_size=7)
    original = tokenizer.pad_token_id
    try:
        tokenizer.pad_token_id = 5  # an ordinary token: it must be masked out, whatever its embedding
        after = answer_logprobs(model, tokenizer, prompts, answers, batch_size=7)
    finally:
        tokenizer.pad_token_id = original
    assert after == pytest.approx(before, abs=1e-5)


def test_logprobs_do_not_depend_on_the_padding_side(tiny):
    """The tokenizer's padding side is ignored (the scorer pads on the right itself), and a left-padded batch run
    independently, with positions counted from each row's first real token, gives the same numbers."""
    model, tokenizer = tiny
    prompts, answers = _prompts()
    original = tokenizer.padding_side
    try:
        by_side = {}
        for side in ("left", "right"):
            tokenizer.padding_side = side
            by_side[side] = answer_logprobs(model, tokenizer, prompts, answers, batch_size=7)
    finally:
        tokenizer.padding_side = original
    assert by_side["left"] == pytest.approx(by_side["right"], abs=1e-5)
    pairs = [encode_pair(tokenizer, p, a) for p, a in zip(prompts, answers)]
    seqs = [p.context + p.answer for p in pairs]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, position_ids=positions).logits.double(), -1)
    for row, (pair, value) in enumerate(zip(pairs, by_side["right"])):
        start = width - len(pair.answer) - 1
        want = sum(float(logp[row, start + k, t]) for k, t in enumerate(pair.answer))
        assert value == pytest.approx(want, abs=1e-4)


def test_logprobs_match_a_plain_unbatched_forward_pass(tiny):
    """An independent computation: full logits of one unpadded sequence, log-softmax, sum over answer tokens."""
    model, tokenizer = tiny
    prompts, answers = _prompts(prefix="Q: What is 1+1?\nA: 2\n")
    got = answer_logprobs(model, tokenizer, prompts, answers, batch_size=4)
    for prompt, answer, value in zip(prompts, answers, got):
        pair = encode_pair(tokenizer, prompt, answer)
        ids = torch.tensor([pair.context + pair.answer])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        want = sum(float(logp[len(pair.context) - 1 + k, t]) for k, t in enumerate(pair.answer))
        assert value == pytest.approx(want, abs=1e-5)


def test_tokenizer_leading_space_rules_give_answer_tokens_that_decode_to_the_answer(tiny):
    model, tokenizer = tiny
    pair = encode_pair(tokenizer, "Q: What is 41+55?\nA:", " 96\n")
    assert tokenizer.decode(pair.answer).strip() == "96"
    assert tokenizer.decode(pair.context + pair.answer, skip_special_tokens=True).endswith("A: 96\n")


def test_exact_scorer_rows_hold_probabilities_and_greedy_flags(tiny):
    model, tokenizer = tiny
    examples = [Example(f"x/{i}", "x", q, a) for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    rows = ExactScorer(batch_size=3).score(HFLanguageModel(model, tokenizer), examples, PromptFormat())
    assert [r["id"] for r in rows] == [e.id for e in examples]
    for row in rows:
        assert row["p"] == pytest.approx(math.exp(row["logp"]))
        assert 0.0 < row["p"] < 1.0 and row["greedy"] in (0, 1) and row["n_tokens"] >= 2


DEMOS = "Q: What is 3+4?\nA: 7\nQ: Compute 6 * 2.\nA: 12\nQ: 9-5=\nA: 4\n"


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_prefix_reuse_gives_the_same_logprobs(tiny, batch_size):
    model, tokenizer = tiny
    examples = [Example(f"x/{i}", "x", q, a) for i, (q, a) in enumerate(zip(QUESTIONS, ANSWERS))]
    lm = HFLanguageModel(model, tokenizer)
    full = ExactScorer(batch_size=batch_size, reuse_prefix=False).score(lm, examples, PromptFormat(), DEMOS)
    reused = ExactScorer(batch_size=batch_size, reuse_prefix=True).score(lm, examples, PromptFormat(), DEMOS)
    assert [r["logp"] for r in reused] == pytest.approx([r["logp"] for r in full], abs=1e-5)
    assert [r["greedy"] for r in reused] == [r["greedy"] for r in full]


def test_prefix_reuse_runs_the_shared_tokens_once_then_only_the_suffixes(tiny):
    model, tokenizer = tiny
    prompts, answers = _prompts(prefix=DEMOS)
    pairs = [encode_pair(tokenizer, p, a) for p, a in zip(prompts, answers)]
    shared = shared_prefix_length(pairs)
    # the demonstrations and the next "Q:" are shared by every prompt; nothing of the questions themselves
    assert len(tokenizer(DEMOS)["input_ids"]) - 1 <= shared <= len(tokenizer(DEMOS + "Q: ")["input_ids"])
    seen = []
    hook = model.register_forward_pre_hook(lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape[1]),
                                           with_kwargs=True)
    try:
        reused = score_pairs(model, tokenizer, pairs, batch_size=16, reuse_prefix=True)
    finally:
        hook.remove()
    plain = score_pairs(model, tokenizer, pairs, batch_size=16)
    assert [s.logprob for s in reused] == pytest.approx([s.logprob for s in plain], abs=1e-5)
    assert seen == [shared, max(len(p.context) + len(p.answer) for p in pairs) - shared]


def test_shared_prefix_length_leaves_each_context_a_token_of_its_own():
    a = EncodedPair(context=[1, 2, 3, 4], answer=[9])
    assert shared_prefix_length([a, EncodedPair([1, 2, 3, 5], [9])]) == 3
    assert shared_prefix_length([a, EncodedPair([1, 2, 3, 4], [8])]) == 3
    assert shared_prefix_length([a, EncodedPair([7, 2, 3, 4], [9])]) == 0

"""answer_logprobs agrees with EleutherAI lm-evaluation-harness (the reference most papers report with): the same
requests, the same model, HFLM.loglikelihood, within 1e-4 in fp32, and the same greedy flags.

Both follow the same tokenization rule (trailing prompt whitespace moves to the answer; the answer's tokens are
those of prompt + answer beyond the prompt's) and both encode with the tokenizer's own special tokens, so the
llama-style tiny model gets a BOS and the GPT-2-style (mistral arch) one does not, in both. On lm-eval's side that
holds because HFLM's add_bos_token is left at None, which since lm-eval 0.4.10 means "the tokenizer's default"; up to
0.4.9 HFLM encoded causal models with add_special_tokens=False (no BOS unless add_bos_token=True), so the llama case
would disagree there -- hence the `lm-eval>=0.4.13` pin (the version checked with transformers 5). The token ids are
compared directly below, so a change of that default shows up as a tokenization failure, not as a vague log-prob gap.
HFLM gets the model object and its tokenizer (no hub access) and device="cpu"; nothing else is special. max_length=1024
(the tiny models' max_position_embeddings, which lm-eval would also read from the config) is stated so a change in how
lm-eval guesses a context length cannot make it left-truncate these requests.
lm-eval is a test dependency only (pyproject's `test` extra), never imported by ntkeval itself; it is imported
plainly here (no importorskip), so a test environment without it fails instead of silently skipping."""

import pytest
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from ntkeval.backends.huggingface.teacher_forcing import answer_logprobs, score_pairs
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import encode_pair
from ntkeval.data.base import Example
from ntkeval.prompts import PromptFormat

FMT = PromptFormat()
QUESTIONS = [("What is 41+55?", "96"), ("Compute 7 * 8.", "56"), ("12-5=", "7"), ("What is 100/4?", "25"),
             ("Mia has 3 apples and gets 4 more. How many now?", "7"), ("Compute (2 + 3) * 4.", "20")]


def requests() -> list[tuple[str, str]]:
    examples = [Example(f"x/{i}", "x", q, a) for i, (q, a) in enumerate(QUESTIONS)]
    demos = FMT.demonstrations(examples[:3])  # an in-context prefix shared by the next six
    plain = [(FMT.prompt(e), FMT.target(e.answer)) for e in examples]
    icl = [(FMT.prompt(e, demos), FMT.target(e.answer)) for e in examples]
    odd = [("Q: What is 2+3?\nA: ", "5\n"),            # trailing space in the prompt moves to the answer
           ("The answer is", " 1,234,567 exactly.\n"),  # a long multi-token answer
           ("Q: What is -3-4?\nA:", " -7\n")]
    return plain + icl + odd


@pytest.fixture(params=["llama", "mistral"], scope="module")
def model_and_lm(request):
    model, tokenizer = TinyModel(name=f"tiny-{request.param}", arch=request.param).load("cpu")
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu", max_length=1024)
    return model, tokenizer, lm


def lm_eval_loglikelihood(lm, pairs):
    instances = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i)
                 for i, pair in enumerate(pairs)]
    return lm.loglikelihood(instances, disable_tqdm=True)


def test_token_ids_equal_lm_eval_encoding(model_and_lm):
    """The same context ids (BOS included or not) and the same answer ids as lm-eval's own encoder."""
    _, tokenizer, lm = model_and_lm
    for prompt, answer in requests():
        ours = encode_pair(tokenizer, prompt, answer)
        context, continuation = lm._encode_pair(prompt, answer)
        assert (ours.context, ours.answer) == (context, continuation), (prompt[-30:], answer)


def test_answer_logprobs_agree_with_lm_eval_within_1e_4(model_and_lm):
    model, tokenizer, lm = model_and_lm
    pairs = requests()
    theirs = lm_eval_loglikelihood(lm, pairs)
    ours = answer_logprobs(model, tokenizer, [p for p, _ in pairs], [a for _, a in pairs], batch_size=5)
    for (prompt, answer), mine, (logp, _) in zip(pairs, ours, theirs):
        assert mine == pytest.approx(logp, abs=1e-4), (prompt[-30:], answer)


def test_greedy_flags_agree_with_lm_eval(model_and_lm):
    model, tokenizer, lm = model_and_lm
    pairs = requests()
    theirs = [greedy for _, greedy in lm_eval_loglikelihood(lm, pairs)]
    encoded = [encode_pair(tokenizer, p, a) for p, a in pairs]
    ours = [s.greedy for s in score_pairs(model, tokenizer, encoded, batch_size=3, reuse_prefix=True)]
    assert ours == theirs


def test_the_greedy_comparison_can_see_a_true_flag(model_and_lm):
    """A request whose answer is the model's own greedy continuation: both must say True (else the test above
    could pass with all-False flags)."""
    model, tokenizer, lm = model_and_lm
    prompt = "Q: What is 41+55?\nA:"
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
    greedy = model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=tokenizer.pad_token_id)[0].tolist()
    # the longest greedy continuation whose text re-encodes to the same tokens (a byte-level token may be half a
    # character, whose text does not round-trip)
    for end in range(len(greedy), ids.shape[1], -1):
        answer = tokenizer.decode(greedy[ids.shape[1]:end], skip_special_tokens=True)
        pair = encode_pair(tokenizer, prompt, answer)
        if pair.context + pair.answer == greedy[:end]:
            break
    else:
        raise AssertionError("no greedy continuation of up to 3 tokens round-trips through the tokenizer")
    (logp, flag), = lm_eval_loglikelihood(lm, [(prompt, answer)])
    assert flag is True and score_pairs(model, tokenizer, [pair])[0].greedy is True


def test_the_scoring_benchmark_runs_and_agrees_on_the_tiny_model():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "launch" / "bench_scoring.py"
    done = subprocess.run([sys.executable, str(script), "--model", "tiny", "--n", "8", "--repeats", "1"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "answer tokens/s" in done.stdout and "lm-eval's speed" in done.stdout

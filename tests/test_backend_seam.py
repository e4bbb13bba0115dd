"""The backend seam: a second backend (tests/toy_backend.py, pure Python) runs real cells from one YAML added on the
Hydra search path, with every number checked against the toy model's probabilities computed by hand; both backends
satisfy the protocols of ntkeval.backends.base; and the empty-prompt rule is one rule for scoring and sampling."""

import json
import math

import pytest
from omegaconf import open_dict
from toy_backend import ALPHABET, EOS, VOCAB, ToyModel

from ntkeval.backends.base import LanguageModel, ModelLoader, ModelSession, SamplingSpec
from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.backends.huggingface.hub import HubModel
from ntkeval.backends.huggingface.language_model import HFLanguageModel
from ntkeval.backends.huggingface.session import HFSession
from ntkeval.backends.huggingface.teacher_forcing import score_pairs
from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.backends.huggingface.tokenization import EncodedPair, encode_pair, encode_prompt
from ntkeval.build import build_cell
from ntkeval.cell import run_cell, skill_views
from ntkeval.errors import UserError
from ntkeval.scorers.sample_stages import sample_logps, samples
from ntkeval.tracking.base import NullTracker

TOY_YAML = """# The pure-Python character-level model of tests/toy_backend.py: a second backend, from this one file.
_target_: toy_backend.ToyModel
name: toy
prior: 1.0        # pseudo-count of every character (smaller: the prompt's characters weigh more)
"""
SMALL = ["dataset.n_train=8", "dataset.n_test=3", "dataset.max_operand=9", "pair.train=add/question",
         "pair.test=[add/question,mul/symbol]", "learner.demos=2", "logger=none", "device=cpu"]


def hand_logp(context: str, continuation: str, prior: float = 1.0) -> float:
    """log p(continuation | context) of the toy model, from its formula on the characters themselves."""
    total = 0.0
    for char in continuation:
        total += math.log((prior + context.count(char)) / (prior * VOCAB + len(context)))
        context += char
    return total


def hand_answer_logp(prompt: str, answer: str) -> float:
    """The scoring rule: the prompt's trailing whitespace is scored as the start of the answer."""
    stripped = prompt.rstrip()
    return hand_logp(stripped, prompt[len(stripped):] + answer)


def hand_tokens_logp(prompt: str, tokens: list[int]) -> float:
    """log p of drawn token ids after `prompt`: characters, and EOS (which no text holds: pseudo-count only)."""
    total, context = 0.0, prompt
    for token in tokens:
        if token == EOS:
            total += math.log(1.0 / (VOCAB + len(context)))
        else:
            total += hand_logp(context, ALPHABET[token])
            context += ALPHABET[token]
    return total


@pytest.fixture
def toy_cell(compose_config, tmp_path):
    """build_cell on the composed config with model=toy found through hydra.searchpath (nothing under conf/)."""
    conf = tmp_path / "user-conf"
    (conf / "model").mkdir(parents=True)
    (conf / "model" / "toy.yaml").write_text(TOY_YAML)

    def make(learner: str, scorer: str, *extra: str):
        small = [o for o in SMALL if not (o.startswith("learner.demos") and learner.startswith("tune"))]
        cfg = compose_config(f"hydra.searchpath=[file://{conf}]", "model=toy", f"learner={learner}",
                             f"scorer={scorer}", *small, *extra)
        with open_dict(cfg):
            del cfg["hydra"]  # the job's runtime dirs: resolved only inside a running Hydra job
        return build_cell(cfg, tmp_path / f"{learner}-{scorer}")

    return make


def prompts_by_role(cell) -> dict[str, dict[str, str]]:
    """role name -> question id -> the prompt the cell scores (demonstrations built by the learners themselves)."""
    context = cell.context()
    out = {"base": {}}
    for learner in (cell.learner, cell.learner.control()):
        prefix = learner.adapt(context).prefix
        out[learner.name] = {e.id: cell.fmt.prompt(e, prefix) for s in cell.test_skills for e in cell.dataset.test(s)}
    out["base"] = {e.id: cell.fmt.prompt(e) for s in cell.test_skills for e in cell.dataset.test(s)}
    return out


def test_an_exact_cell_on_the_toy_backend_gives_the_hand_computed_probabilities(toy_cell):
    cell = toy_cell("icl-skill", "exact")
    assert isinstance(cell.model, ToyModel) and cell.model_key() == ToyModel().identity()
    result = run_cell(cell, NullTracker())
    assert result["status"] == "done" and result["cell"]["model"] == "toy"
    questions = [json.loads(line) for line in (cell.out_dir / "questions.jsonl").read_text().splitlines()]
    assert len(questions) == 6
    prompts = prompts_by_role(cell)
    for q in questions:
        target = cell.fmt.target(q["answer"])
        for column, role in (("learner", "icl-skill"), ("control", "icl-standard"), ("base", "base")):
            want = hand_answer_logp(prompts[role][q["id"]], target)
            assert q[f"logp_{column}"] == pytest.approx(want, rel=1e-12, abs=1e-12), (q["id"], column)
        assert q["delta"] == pytest.approx(math.exp(q["logp_learner"]) - math.exp(q["logp_control"]), rel=1e-12)
    for row in result["tests"]:
        mine = [q for q in questions if q["test_skill"] == row["test_skill"]]
        assert row["p_learner"] == pytest.approx(sum(q["p_learner"] for q in mine) / len(mine), rel=1e-12)
        assert row["p_base"] == pytest.approx(sum(q["p_base"] for q in mine) / len(mine), rel=1e-12)
    # demonstrations hold the answer's characters: the in-context learners beat the bare prompt on every question
    assert all(q["logp_learner"] > q["logp_base"] and q["logp_control"] > q["logp_base"] for q in questions)


@pytest.mark.parametrize("scorer", ["sampled", "ntk"])
def test_sampled_cells_on_the_toy_backend_record_the_hand_computed_probabilities(toy_cell, scorer):
    """Every completion's recorded log p (drawn at temperature 1) and every teacher-forced cross-role log p (ntk's
    weights) equal the toy formula on the drawn tokens; the sampled accuracy is the mean of the verdicts."""
    cell = toy_cell("icl-skill", scorer, "scorer.n=6", "scorer.max_new_tokens=4")
    result = run_cell(cell, NullTracker())
    assert result["status"] == "done"
    prompts = prompts_by_role(cell)
    spec = cell.scorer.spec
    checked = 0
    for view, row in zip(skill_views(cell), result["tests"]):
        roles = view.roles
        drawn = {r.name: samples(view, spec, r) for r in (roles.control, roles.learner)}  # from the stage cache
        for name, questions in drawn.items():
            for q in questions:
                for c in q["completions"]:
                    assert c["logp"] == pytest.approx(hand_tokens_logp(prompts[name][q["id"]], c["tokens"]),
                                                      rel=1e-9, abs=1e-9)
                    checked += 1
        if scorer == "sampled":
            mine = drawn[roles.learner.name]
            accuracy = sum(c["correct"] for q in mine for c in q["completions"]) / (spec.n * len(mine))
            assert row["p_learner"] == pytest.approx(accuracy, rel=1e-12)
        else:  # the control's completions scored under the learner: a teacher-forced pass of the toy LM
            cross = sample_logps(view, spec, roles.control, roles.learner, drawn[roles.control.name],
                                 cell.scorer.batch_size)
            for q, logps in zip(drawn[roles.control.name], cross):
                want = [hand_tokens_logp(prompts[roles.learner.name][q["id"]], c["tokens"]) for c in q["completions"]]
                assert logps == pytest.approx(want, rel=1e-9, abs=1e-9)
    assert checked == 2 * 2 * 3 * 6  # test skills x roles x questions x completions
    assert result["cache"]["misses"].get("samples", 0) >= 4 and cell.cache.hits.get("samples", 0) >= 4


def test_a_backend_without_adapters_refuses_lora_learners_with_a_user_error(toy_cell):
    cell = toy_cell("tune-skill", "exact", "tuning.steps=2")
    with pytest.raises(UserError, match="cannot train adapters"):
        run_cell(cell, NullTracker())


def test_both_backends_satisfy_the_protocols(tmp_path):
    for loader in (TinyModel(), HubModel("x", "some/model"), EmbeddedModel(cache_dir=str(tmp_path)), ToyModel()):
        assert isinstance(loader, ModelLoader), loader
    session = TinyModel().session("cpu")
    assert isinstance(session, HFSession) and isinstance(session, ModelSession) and not session.loaded
    with session.language_model(None) as lm:
        assert isinstance(lm, HFLanguageModel) and isinstance(lm, LanguageModel)
    toy = ToyModel().session("cpu")
    assert isinstance(toy, ModelSession)
    with toy.language_model(None) as lm:
        assert isinstance(lm, LanguageModel)


def test_loader_keys_name_the_dtype_really_loaded():
    """Cell.model_key's rule, now the loaders' key(device): half precision on CPU loads (and is keyed as) float32."""
    hub = HubModel("x", "some/model", dtype="bfloat16")
    assert hub.key("cpu") == {**hub.identity(), "dtype": "float32"}
    assert hub.key("cuda") == hub.key("cuda:1") == hub.identity()
    assert HubModel("x", "some/model", dtype="float16").key("cpu")["dtype"] == "float32"
    assert TinyModel().key("cpu") == TinyModel().identity()  # no dtype: the identity itself


@pytest.fixture(scope="module")
def bos_zero():
    """The byte-level tiny model with a BOS whose id is 0 that the tokenizer never adds, and EOS elsewhere: an
    empty prompt encodes to nothing, and `bos or eos` would wrongly pick EOS."""
    model, tokenizer = TinyModel(arch="mistral", initializer_range=0.3).load("cpu")
    tokenizer.eos_token = "~"
    tokenizer.bos_token = "<|endoftext|>"
    assert tokenizer.bos_token_id == 0 and tokenizer.eos_token_id != 0 and tokenizer("")["input_ids"] == []
    return model, tokenizer


def test_an_empty_prompt_is_conditioned_on_bos_id_0_by_scoring_and_sampling_alike(bos_zero):
    model, tokenizer = bos_zero
    lm = HFLanguageModel(model, tokenizer)
    assert lm.encode("") == encode_prompt(tokenizer, "") == encode_pair(tokenizer, "", "7").context == [0]
    drawn = lm.sample([""], SamplingSpec(n=64, max_new_tokens=1, stop=("\n",)), seeds=[0])[0]
    compared = 0
    for c in drawn:
        _, answer = lm.encode_pair("", c.text)
        if c.text and answer == list(c.tokens):  # the text re-tokenizes to the drawn token: the same event
            assert lm.score([("", c.text)])[0].logprob == pytest.approx(c.logp, abs=1e-5)
            compared += 1
    assert compared >= 5
    # the test can fail: after EOS instead of BOS the model gives these first tokens other probabilities
    eos = [tokenizer.eos_token_id]
    first = next(c for c in drawn if c.text and lm.encode_pair("", c.text)[1] == list(c.tokens))
    after_eos = score_pairs(model, tokenizer, [EncodedPair(eos, list(first.tokens))], desc=None)[0].logprob
    assert abs(after_eos - first.logp) > 1e-3

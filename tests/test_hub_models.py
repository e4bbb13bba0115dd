"""The math models from the hub (wizardmath, metamath, mammoth, galactica): each composes with its authors' prompt
template, passes the preflight and instantiates its loader without downloading anything; the command line still wins
over what a model's YAML sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from ntkeval.backends.huggingface.hub import HubModel
from ntkeval.build import CONF_DIR
from ntkeval.data.base import Example
from ntkeval.preflight import check_command_line

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
          "request.\n\n### Instruction:\n{question}\n\n### Response:")
MODELS = {  # option -> (hub id, prompt.question)
    "wizardmath": ("WizardLMTeam/WizardMath-7B-V1.1", ALPACA + " Let's think step by step."),
    "metamath": ("meta-math/MetaMath-Mistral-7B", ALPACA + " Let's think step by step."),
    "mammoth": ("TIGER-Lab/MAmmoTH-7B", ALPACA),
    "galactica": ("facebook/galactica-1.3b", "Question: {question}\n\nAnswer:"),
}


@pytest.mark.parametrize("option", MODELS)
def test_each_model_composes_with_its_template_and_loads_nothing(compose_config, option, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("a hub model must not be downloaded to build a cell")

    monkeypatch.setattr("ntkeval.backends.huggingface.hub.load_pretrained", no_download)
    cfg = compose_config(f"model={option}")
    path, question = MODELS[option]
    loader = instantiate(cfg.model)
    assert isinstance(loader, HubModel) and loader.name == option and loader.path == path
    assert loader.lora_target_modules == ["q_proj", "v_proj"]  # Llama, Mistral and OPT all name them so
    assert loader.identity() == {"kind": "hub", "name": option, "path": path, "revision": None, "dtype": "bfloat16"}
    assert cfg.prompt.question == question and cfg.prompt.answer == " {answer}"
    prompt = instantiate(cfg.prompt).prompt(Example("add/question/test/0", "add/question", "What is 41+55?", "96"))
    assert prompt == question.format(question="What is 41+55?")
    assert check_command_line([f"model={option}", "pair.train=add/question"]) == 1  # the whole preflight


@pytest.mark.parametrize("option", MODELS)
def test_the_command_line_overrides_the_template_and_the_path(compose_config, option, tmp_path):
    cfg = compose_config(f"model={option}", "prompt.question='Problem: {question}\nSolution:'",
                         "prompt.answer=' {answer}.'", f"model.path={tmp_path}")
    assert cfg.prompt.question == "Problem: {question}\nSolution:" and cfg.prompt.answer == " {answer}."
    assert instantiate(cfg.model).path == str(tmp_path)


def test_the_other_models_keep_the_default_prompt_and_format(compose_config):
    for option in ("wizardmath", "metamath", "mammoth", "mistral"):
        cfg = compose_config(f"model={option}")
        assert cfg.format._target_ == "ntkeval.formats.direct.DirectFormat"
    assert compose_config("model=mistral").prompt.question == "Q: {question}\nA:"


def test_galactica_answers_in_work_memory_unless_the_command_line_says_otherwise(compose_config):
    # Hydra applies a config's defaults-list override only to groups listed before it in the primary defaults list:
    # conf/config.yaml lists format before model for this
    text = (Path(CONF_DIR) / "config.yaml").read_text()
    assert text.index("- format:") < text.index("- model:")
    assert compose_config("model=galactica").format._target_ == "ntkeval.formats.reasoning.WorkFormat"
    assert compose_config("model=galactica").scorer._target_ == "ntkeval.scorers.sampled.SampledScorer"
    assert compose_config("model=galactica", "format=direct", "scorer=exact").scorer._target_.endswith("ExactScorer")
    assert compose_config("model=galactica", "format=cot").format._target_ == "ntkeval.formats.reasoning.CotFormat"
    assert check_command_line(["model=galactica", "pair.train=add/question"]) == 1

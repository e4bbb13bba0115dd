"""Planning before submitting (issue 14, item 4): each job's peak GPU memory from the architecture, without weights,
the one-line refusal of a job that cannot fit even with the batches that shrink on out-of-memory at their smallest,
opro's optimizer model counted, and calibrate=true's GPU-hours from one timed cell (its model load timed apart)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import LlamaConfig

from ntkeval.backends.huggingface.tiny import TinyModel
from ntkeval.errors import UserError
from ntkeval.estimate.architecture import architecture
from ntkeval.estimate.calibration import Timing, estimate_lines
from ntkeval.estimate.memory import (
    SAMPLING,
    SCORING,
    TUNING,
    Pass,
    gib,
    lora_bytes,
    sampling_activations,
    scoring_activations,
    training_activations,
    weight_bytes,
)
from ntkeval.plan import GridPlan
from ntkeval.preflight import check_command_line

TINY_GRID = ["model=tiny", "logger=none", "dataset.n_train=8", "dataset.n_test=4", "tuning.steps=3",
             "tuning.batch_size=4"]


def lora(r: int = 8, targets=("q_proj", "v_proj")):
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(targets), task_type="CAUSAL_LM")


@pytest.mark.parametrize("arch", ["llama", "mistral"])
def test_the_parameter_count_is_the_loaded_models(arch):
    from peft import get_peft_model

    from ntkeval.backends.huggingface.tiny import TinyModel

    loader = TinyModel(arch=arch)
    shape = architecture(loader.model_config())
    model, tokenizer = loader.load("cpu")
    assert shape.parameters == sum(p.numel() for p in model.parameters())
    assert shape.vocab == len(tokenizer) and shape.layers == 2 and shape.kv_heads == 2
    for config in (lora(8), lora(4, ("q_proj", "k_proj", "v_proj", "o_proj", "down_proj"))):
        adapted = get_peft_model(model, config)
        trainable = sum(p.numel() for p in adapted.parameters() if p.requires_grad)
        assert shape.lora_parameters(config)[0] == trainable
        model = adapted.unload()


@pytest.mark.slow
def test_the_parameter_count_is_smollm2s(request):
    from ntkeval.backends.huggingface.embedded import EmbeddedModel

    loader = EmbeddedModel(cache_dir=str(request.config.cache.mkdir("ntkeval-models")))
    model, _ = loader.load("cpu")  # converts it once (kept between slow runs); the estimate reads its config only
    shape = architecture(loader.model_config())
    assert shape.parameters == sum(p.numel() for p in model.parameters()) == 134_515_008  # tied embeddings once


@pytest.fixture(scope="module")
def small():
    """A Llama of hand-countable size: vocab 100, h 16, I 32, 2 layers, 4 heads of 4, 2 key/value heads."""
    return architecture(LlamaConfig(vocab_size=100, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False))


def test_weights_and_lora_states_by_hand(small):
    # embeddings 100x16, per layer q 16x16 + k 16x8 + v 16x8 + o 16x16 + gate, up, down 3 x 16x32 + 2 norms of 16,
    # the final norm, the head 16x100
    per_layer = 256 + 128 + 128 + 256 + 3 * 512 + 32
    assert small.parameters == 1600 + 2 * per_layer + 16 + 1600 == 7888
    assert weight_bytes(small, "float32") == 4 * 7888 and weight_bytes(small, "bfloat16") == 2 * 7888
    # r = 4 on q (16 -> 16) and v (16 -> 8): 4 x 32 + 4 x 24 per layer; kept per token: (16 + 4) x 2 per layer
    assert small.lora_parameters(lora(4)) == (2 * (128 + 96), 2 * (20 + 20))
    # two adapters loaded (learner and control), one training: 4 bytes each, + gradient and two AdamW moments
    assert lora_bytes(2 * 448, 448) == 4 * 896 + 12 * 448 == 8960


def test_activations_by_hand(small):
    # tuning, b 2 x s 5, float32: per token and layer 4h + 2q + 2kv + 4I + a s = 64 + 32 + 16 + 128 + 20 elements,
    # LoRA's kept inputs 80 floats per token, logits 100 x 12 bytes per token
    assert training_activations(small, 2, 5, 4, 80) == 10 * (2 * 260 * 4 + 80 * 4 + 100 * 12) == 36000
    # scoring 2 rows of 5 tokens after a 3-token prefix, 2 positions kept: caches 2 x 2 layers x 2 x 8 x 8 wide
    # x 4 bytes and the prefix's own, one block's transients (2h + q + 2kv + 3I + a x 8) x 10 tokens, logits
    scoring = Pass(SCORING, "exact scorer", rows=2, tokens=5, prefix=3, kept=2)
    assert scoring_activations(small, scoring, 4) == 2048 + 384 + (160 + 32) * 10 * 4 + 2 * 2 * 100 * 12 == 14912
    # sampling 3 rows after a 4-token prompt, 2 new tokens: cache 3 x 6 positions, the prompt's pass (larger than
    # one step's), the rows' logits
    sampling = Pass(SAMPLING, "sampled", rows=3, tokens=4, new=2)
    assert sampling_activations(small, sampling, 4) == 2304 + 4 * (160 + 16) * 4 + 3 * 100 * 12 == 8720


def test_the_tuning_pass_is_as_long_as_the_longest_training_text(compose_config, tmp_path):
    from omegaconf import open_dict

    from ntkeval.backends.huggingface.tokenization import encode_pair
    from ntkeval.build import build_cell
    from ntkeval.estimate.workload import Lengths, cell_workload

    cfg = compose_config(*TINY_GRID, "learner=tune-skill", "pair.train=add/word", "pair.test=[add/question]")
    with open_dict(cfg):
        del cfg["hydra"]
    cell = build_cell(cfg, tmp_path / "out")
    tokenizer = cell.model.load_tokenizer()
    work = cell_workload(cell, Lengths(tokenizer))
    tuning = [p for p in work.passes if p.kind == TUNING]
    texts = [t for learner in (cell.learner, cell.learner.control()) for t in learner.training_texts(cell.context())]
    longest = max(len(p.context) + len(p.answer) for p in (encode_pair(tokenizer, *t) for t in texts))
    assert {(p.rows, p.tokens) for p in tuning} <= {(4, n) for n in range(1, longest + 1)}
    assert max(p.tokens for p in tuning) == longest
    scoring = [p for p in work.passes if p.kind == SCORING]
    assert [(p.rows, p.prefix) for p in scoring] == [(4, 0)]  # n_test = 4 questions a batch, no demonstrations


def ntkeval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ntkeval", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def test_a_job_that_cannot_fit_is_refused_in_one_line_before_anything_runs(tmp_path):
    from ntkeval.backends.huggingface.tiny import TinyModel

    done = ntkeval("-m", "hydra/launcher=local", "hydra.launcher.pack=row", "hydra.launcher.gpu_memory_gb=0.001",
                   *TINY_GRID, "learner=icl-skill,tune-skill", "pair.train=add/question,mul/question",
                   "pair.test=[add/question]", f"cache_dir={tmp_path}/c", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    weights = gib(4 * sum(p.numel() for p in TinyModel().load("cpu")[0].parameters()))
    # pack=row: one job per train skill, 2 cells each
    found = re.fullmatch(r"ntkeval: error: job (\d) \(tiny, (\S+), 2 cells\) \(and 1 more job\) needs ~([\d.]+ \w+) of "
                         r"GPU memory \(weights (.+?), LoRA (.+?), activations (.+?)\) but "
                         r"hydra\.launcher\.gpu_memory_gb=0\.001: lower (\S+) .*", lines[0])
    assert found, lines[0]
    assert found.group(2) in ("add/question", "mul/question") and found.group(4) == weights
    assert found.group(7) in ("scorer.batch_size", "tuning.batch_size")
    assert not (tmp_path / "c").exists() and not (tmp_path / "outputs").exists()  # nothing ran, nothing written


def test_the_dry_run_prints_each_jobs_memory_and_refuses_in_process_cells_above_the_visible_gpu(
        tmp_path, monkeypatch, capsys):
    from ntkeval.estimate import planning

    monkeypatch.chdir(tmp_path)
    args = [*TINY_GRID, "learner=tune-skill", "pair.train=add/question", "pair.test=[add/question]",
            f"cache_dir={tmp_path}/c"]
    with pytest.raises(SystemExit):
        check_command_line([*args, "dry_run=true"])
    out = capsys.readouterr().out
    assert re.search(r"^  job 0 \(tiny, tune-skill, add/question\): ~[\d.]+ MiB on cpu \(weights ", out, re.M), out
    assert "no GPU limit to check" in out
    monkeypatch.setattr(planning, "_job_device", lambda device, here: "cuda")  # as if this machine had one ...
    monkeypatch.setattr(planning, "_visible_gpu", lambda devices: (1e-3, "the visible GPU cuda:0 (tiny) has 0.0 GiB"))
    with pytest.raises(UserError, match=r"^job 0 \(tiny, tune-skill, add/question\) needs ~.* but the visible GPU "
                                        r"cuda:0 \(tiny\) has 0\.0 GiB: lower"):
        check_command_line(args)  # ... a real run is refused too, before anything runs
    assert not (tmp_path / "c").exists() and not (tmp_path / "outputs").exists()


def test_calibrate_needs_dry_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=r"^calibrate=true .* expected dry_run=true calibrate=true"):
        check_command_line(["calibrate=true", *TINY_GRID])


def test_the_extrapolation_multiplies_counts_by_measured_seconds():
    plan = GridPlan(cells=6, runs={("m1", "adapters"): 4, ("m1", "scores"): 30, ("m1", "samples"): 2},
                    models={"m1": "tiny"}, kinds_seen={"adapters", "scores", "samples"})
    timing = Timing(name="tiny", cell="tune-skill", device="cuda", wall_s=9.0, load_s=2.0,
                    seconds={"adapters": 6.0, "scores": 1.5}, entries={"adapters": 2, "scores": 6})
    lines = estimate_lines(plan, {"m1": timing}, loads={"m1": 3})
    # 4 x 3 s + 30 x 0.25 s + 3 loads x 2 s = 25.5 s
    assert lines[0].startswith(f"estimated time of the remaining work: ~{25.5 / 3600:.3g} GPU-hours (26 s")
    assert "taken on this machine's cuda" in lines[0]
    assert lines[1] == ("  tiny: adapters 4 x 3.00 s = 12 s; scores 30 x 0.25 s = 7.50 s; model loads 3 x 2.00 s = "
                        "6.00 s")
    assert lines[2] == "  not measured (left out of the estimate): tiny samples (2 to compute)"


def test_calibrate_times_one_cell_on_a_throwaway_cache_and_extrapolates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit):
        check_command_line(["-m", *TINY_GRID, "learner=icl-skill,tune-skill", "pair.train=add/question,mul/question",
                            "pair.test=[add/question,mul/question]", "dry_run=true", "calibrate=true",
                            f"cache_dir={tmp_path}/c"])
    out = capsys.readouterr().out
    assert "tunings: 4 to run, 0 cached" in out and "scorings (role x test skill): 16 to run, 0 cached" in out
    timed = re.search(r"^  tiny on cpu \(tune-skill on \S+, 2 test skills, .* in all\): model load ([\d.]+) s; .*"
                      r"adapters 2 x ([\d.]+) s; scores 6 x ([\d.]+) s", out, re.M)
    assert timed, out  # one tune-skill cell: its adapter and its control's, 3 roles x 2 test skills scored
    load, tuning, scoring = (float(timed.group(i)) for i in (1, 2, 3))
    parts = re.search(r"^  tiny: adapters 4 x ([\d.]+) s = [\d.]+ s; scores 16 x ([\d.]+) s = [\d.]+ s; "
                      r"model loads 1 x ([\d.]+) s", out, re.M)
    assert parts, out
    assert (float(parts.group(1)), float(parts.group(2)), float(parts.group(3))) == (tuning, scoring, load)
    hours = float(re.search(r"~([\d.e-]+) device-hours of this machine's cpu", out).group(1))
    assert hours == pytest.approx((4 * tuning + 16 * scoring + load) / 3600, rel=0.05, abs=3.5e-5)  # per-entry seconds are printed to 0.01 s
    assert "every stage kind of the plan was measured" in out
    assert not (tmp_path / "c").exists()  # the user's cache was neither read nor written


def built_cell(compose_config, tmp_path, *overrides: str):
    from omegaconf import open_dict

    from ntkeval.build import build_cell

    cfg = compose_config(*TINY_GRID, "pair.train=add/question", "pair.test=[add/question]", *overrides)
    with open_dict(cfg):
        del cfg["hydra"]
    return build_cell(cfg, tmp_path / "out")


def test_the_refusal_takes_shrinking_passes_at_their_smallest_batch_and_never_advises_their_batch_size(
        compose_config, tmp_path):
    from ntkeval.estimate.jobs import describe, estimate_jobs, memory_lines, refusal
    from ntkeval.estimate.memory import GIB, dtype_bytes

    cell = built_cell(compose_config, tmp_path, "learner=icl-skill")
    (job,) = estimate_jobs([cell], ["cpu"], [[0]])
    peak, floor = job.breakdown, job.floor
    # the exact scorer scores the 4 test questions in one batch (scorer.batch_size 16), and halves down to one row
    assert (peak.largest.kind, peak.largest.rows, peak.largest.floor) == (SCORING, 4, 1)
    assert floor.largest == peak.largest.at_floor() and floor.largest.rows == 1
    shape = architecture(cell.model.model_config())
    assert floor.activations == scoring_activations(shape, floor.largest, dtype_bytes("float32"))
    assert floor.weights == peak.weights and floor.activations < peak.activations
    assert "shrinks on out-of-memory down to 1 x " in describe(job)
    between = (floor.total + peak.total) / 2 / GIB
    assert refusal([job], (between, "a GPU in between")) is None  # it fits once its batch has shrunk
    assert memory_lines([job], (between, "a GPU in between"))[-1] == (
        "  limit: a GPU in between: every estimated job fits; 1 only once their batches shrink on out-of-memory")
    line = refusal([job], (floor.total * 0.9 / GIB, "a small GPU"))
    assert line.startswith(f"job 0 (tiny, icl-skill, add/question) needs ~{gib(floor.total)} of GPU memory ")
    assert f"even at the smallest batches its passes shrink to (~{gib(peak.total)} at the configured ones)" in line
    assert "batch_size" not in line and line.endswith("ask for a larger GPU (its largest pass at the smallest batch it "
                                                      f"shrinks to on out-of-memory: {floor.largest.describe()})")


def test_sampling_shrinks_to_one_questions_rows_and_tuning_not_at_all(compose_config, tmp_path):
    from ntkeval.estimate.workload import Lengths, cell_workload, sampling_rows

    cell = built_cell(compose_config, tmp_path, "learner=tune-skill", "scorer=sampled", "scorer.n=8")
    work = cell_workload(cell, Lengths(cell.model.load_tokenizer()))
    floors = {(p.kind, p.rows, p.floor) for p in work.passes}
    assert (SAMPLING, sampling_rows(8, 4), 8) in floors  # 4 test questions of 8 completions each, one at the least
    assert {p.floor for p in work.passes if p.kind == TUNING} == {None}
    assert all(p.at_floor() == p for p in work.passes if p.kind == TUNING)


def test_an_in_process_gpu_between_the_smallest_and_the_configured_batches_is_not_refused(
        compose_config, tmp_path, monkeypatch):
    from ntkeval.estimate import planning
    from ntkeval.estimate.jobs import estimate_jobs
    from ntkeval.estimate.memory import GIB

    (job,) = estimate_jobs([built_cell(compose_config, tmp_path, "learner=icl-skill")], ["cuda"], [[0]])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(planning, "_job_device", lambda device, here: "cuda")
    args = [*TINY_GRID, "learner=icl-skill", "pair.train=add/question", "pair.test=[add/question]",
            f"cache_dir={tmp_path}/c"]
    for size, refused in (((job.floor.total + job.breakdown.total) / 2, False), (job.floor.total * 0.9, True)):
        monkeypatch.setattr(planning, "_visible_gpu", lambda devices, size=size: (size / GIB, "the visible GPU"))
        if refused:
            with pytest.raises(UserError, match=r"even at the smallest batches .* but the visible GPU: ask for"):
                check_command_line(args)
        else:
            assert check_command_line(args) == 1


def test_opros_optimizer_model_adds_its_weights_while_it_proposes(compose_config, tmp_path):
    from ntkeval.backends.huggingface.loading import NotAvailableOffline
    from ntkeval.estimate.jobs import describe, estimate_jobs
    from ntkeval.estimate.memory import sampling_activations

    cell = built_cell(compose_config, tmp_path, "learner=opro", "+model@learner.optimizer_model=tiny",
                      "learner.optimizer_model.hidden_size=256", "learner.optimizer_model.name=tiny-256")
    (job,) = estimate_jobs([cell], ["cpu"], [[0]])
    optimizer = TinyModel(name="tiny-256", hidden_size=256)
    parameters = sum(p.numel() for p in optimizer.load("cpu")[0].parameters())
    b = job.breakdown
    assert b.optimizer == 4 * parameters and b.parts()["optimizer model"] == 4 * parameters
    assert b.largest.who == "opro's optimizer model tiny-256" and b.largest.rows == cell.learner.proposals
    assert b.activations == sampling_activations(architecture(optimizer.model_config()), b.largest, 4)
    assert b.total == b.weights + b.lora + b.activations + 4 * parameters

    class Unknown(TinyModel):
        def model_config(self, tokenizer=None):
            raise NotAvailableOffline("not in the Hugging Face cache")

    cell.learner.optimizer_model = Unknown(name="far-away")
    (job,) = estimate_jobs([cell], ["cpu"], [[0]])
    assert job.breakdown.optimizer == 0
    assert describe(job).endswith("; not counted: the optimizer model far-away (not in the Hugging Face cache))")


class SlowTiny(TinyModel):
    """A tiny model that takes a known second to load, counting its loads."""

    def __init__(self):
        super().__init__()
        self.loads = 0

    def load(self, device: str = "cpu"):
        self.loads += 1
        time.sleep(1.0)
        return super().load(device)


def test_calibration_times_the_model_load_once_and_apart_from_the_stages(compose_config, tmp_path):
    from ntkeval.estimate.calibration import time_cell

    cell = built_cell(compose_config, tmp_path, "learner=icl-skill")
    cell.model = SlowTiny()
    timing = time_cell(cell)
    assert cell.model.loads == 1  # run_cell took up the session loaded before it
    assert timing.load_s >= 1.0 and timing.entries["scores"] == 3  # base, icl-skill and its control
    # the load and each stage's own seconds are disjoint spans of the cell's wall time: a load counted inside the
    # first stage as well would add its second twice
    assert sum(timing.seconds.values()) + timing.load_s <= timing.wall_s

"""mathglm-tiny: a small Llama trained here from scratch on arith's multi-step arithmetic (MathGLM, Yang et al. 2023),
so its skills are known by construction and a kernel measured on it has a ground truth (mathglm_data says which
skills it is taught and which it never sees).

    ntkeval model=mathglm-tiny dataset=arith               # trained once, then loaded from cache_dir
    python launch/prepare_mathglm.py                       # prepares it, prints the time and accuracy per skill

What makes it learn in minutes on 2 CPU cores (measured, arith test split, n_test 20, greedy):
- many short texts per second: one problem per training sequence (mathglm_data), batched per writing and surface
  format, and their shared beginning ("Q: What is ", the cot instruction line) encoded once per batch
  (_shared_prefix_loss: the same loss and gradients, 2.5x faster on steps texts);
- many optimizer steps of small batches: 2 layers x 2200 steps of 2 x 64 texts (lr 3e-3, 1 thread on a busy machine,
  353 s) reached add 0.90/0.95 (question/symbol), sub 0.90/1.00, mul 0.30/0.40, div 0.00/0.05, where 4 layers x 700
  steps of 2 x 128 texts (lr 2e-3, 2 threads, 304 s) stayed at add 0.10 and 4 layers x 750 steps of 2 x 64 at 0.15:
  the same compute as fewer, costlier steps learned the answers' rough size but not their digits;
- the default, 2 layers x 3600 such steps (2 threads, idle machine): 336 s, add 1.00/0.95, sub 0.90/0.90, mul
  0.55/0.25 (2400 steps, 193 s: add 0.50/0.40, sub 0.65/0.75, mul 0.40/0.35: the digits come late, so the steps
  stay); untaught skills 0.00-0.10;
- teaching ops too (its steps texts, ~160 characters, 8 per format and step) left add at 0.05 after 1500 two-layer
  steps (391 s), so the default teaches add, sub and mul only; operations=[add, sub, mul, ops] trains ops (cot) as
  well but needs a longer run (not measured to convergence).
Training runs on THREADS torch threads (2), restored afterwards. launch/prepare_mathglm.py measures any setting.

Prepared like the embedded model: under a FileLock, into a staging dir renamed into place, a marker file written last,
in cache_dir/models/<name>-<hash of every setting that determines the weights>, so later loads reuse it and a changed
setting trains a new one. The weights depend on the settings alone: torch's generator is seeded inside a forked RNG
(the caller's RNG is left as it was) and the texts come from seeded random.Random streams; on one machine with the same
torch build and thread count a rebuild is bitwise identical, while another CPU or thread count may change the last bits.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ntkeval.backends.huggingface.loading import HFLoader, finish_tokenizer, load_pretrained
from ntkeval.backends.huggingface.prepared import prepared
from ntkeval.backends.huggingface.mathglm_data import PACK_EVERY, PACKED, PROMPT, CurriculumData
from ntkeval.cache import stable_hash
from ntkeval.errors import UserError
from ntkeval.prompts import PromptFormat

log = logging.getLogger(__name__)

TRAINER_VERSION = 2  # bump when the model, tokenizer or training loop change what a setting trains
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
CHARACTERS = ("\n", "\t", *(chr(code) for code in range(32, 127)))  # arith's texts are printable ASCII
WARMUP = 0.05      # share of the steps the learning rate rises linearly over
FINAL_LR = 0.1     # the cosine decay ends at this fraction of lr
BETAS = (0.9, 0.98)  # AdamW; a shorter second-moment memory suits a short run from scratch
THREADS = 2        # torch threads while training (at most the CPUs there are): 2 cores; restored afterwards


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character (printable ASCII, newline, tab), BOS before every text, EOS and pad of their own; a
    BPE without merges, so it saves and loads as an ordinary tokenizer.json."""
    vocab = {token: i for i, token in enumerate((*SPECIALS, *CHARACTERS))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.decoder = decoders.Fuse()  # characters join without the spaces a decoder-less tokenizer would insert
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", clean_up_tokenization_spaces=False)


class MathGLMModel(HFLoader):
    """A Llama of the given size trained from scratch on mathglm_data's curriculum, prepared once under cache_dir."""

    def __init__(self, name: str = "mathglm-tiny", seed: int = 0,
                 operations: Sequence[str] = ("add", "sub", "mul"),
                 formats: Sequence[str] = ("question", "symbol"), hidden_size: int = 128, num_layers: int = 2,
                 num_heads: int = 4, steps: int = 3600, batch_size: int = 64, cot_batch_size: int = 8,
                 lr: float = 3e-3, weight_decay: float = 0.1,
                 cache_dir: str = "~/.cache/ntkeval/models", lora_target_modules: Sequence[str] = ("q_proj", "v_proj")):
        for what, value, low in (("hidden_size", hidden_size, 8), ("num_layers", num_layers, 1),
                                 ("num_heads", num_heads, 1), ("steps", steps, 1), ("batch_size", batch_size, 1),
                                 ("cot_batch_size", cot_batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"mathglm: {what} must be an integer >= {low}, got {value!r}")
        if hidden_size % num_heads or (hidden_size // num_heads) % 2:
            raise UserError(f"mathglm: hidden_size={hidden_size} must split into num_heads={num_heads} heads of an "
                            "even size (rotary positions), e.g. hidden_size=128 num_heads=4")
        if not lr > 0:
            raise UserError(f"mathglm: lr must be > 0, got {lr!r}")
        if not weight_decay >= 0:
            raise UserError(f"mathglm: weight_decay must be >= 0, got {weight_decay!r}")
        self.name = name
        self.data = CurriculumData(seed, operations, formats)  # validates operations and formats
        self.seed, self.hidden_size, self.num_layers, self.num_heads = seed, hidden_size, num_layers, num_heads
        self.steps, self.batch_size, self.cot_batch_size = steps, batch_size, cot_batch_size
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.cache_dir = Path(cache_dir).expanduser()
        self.lora_target_modules = list(lora_target_modules)

    def source(self) -> dict:
        """Everything that determines the trained weights (the texts' own identity included)."""
        return {"trainer": TRAINER_VERSION, "data": self.data.identity(), "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "num_heads": self.num_heads, "steps": self.steps,
                "batch_size": self.batch_size, "cot_batch_size": self.cot_batch_size, "lr": self.lr,
                "weight_decay": self.weight_decay}

    def identity(self) -> dict:
        """The source and the dtype (float32: trained and saved in it); cache_dir only says where it is kept."""
        return {"kind": "mathglm", "name": self.name, **self.source(), "dtype": "float32"}

    def checkpoint_dir(self) -> Path:
        return self.cache_dir / f"{self.name}-{stable_hash(self.source(), length=12)}"

    def prepare(self) -> Path:
        """The trained checkpoint dir, trained first if absent. Safe against concurrent and killed runs."""
        def build(work_dir: Path, staging: Path) -> dict:
            start = time.monotonic()
            model, tokenizer, losses = self.train()
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            return {**self.source(), "train_seconds": round(time.monotonic() - start, 1), "final_loss": losses[-1]}

        return prepared(self.checkpoint_dir(), build)

    def train(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[float]]:
        """Train from scratch: the curriculum's stages in order, AdamW with warmup and cosine decay, loss on the
        written answers only (the question's numbers are random and cannot be predicted). Each step takes, per
        surface format, one batch of bare-answer texts (batch_size) and one of steps texts (cot_batch_size), each
        padded only to its own longest text with its shared beginning encoded once, and sums their mean losses."""
        threads = torch.get_num_threads()
        torch.set_num_threads(min(THREADS, os.cpu_count() or 1))
        try:
            return self._train()
        finally:
            torch.set_num_threads(threads)

    def model_config(self) -> LlamaConfig:
        """The config it is trained (and saved, then loaded) with, by arithmetic: no training, no files."""
        tokenizer = char_tokenizer()
        return LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=4 * self.hidden_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads, num_key_value_heads=self.num_heads,
            max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """Its character tokenizer, as the saved checkpoint holds it (built here, not read)."""
        return finish_tokenizer(char_tokenizer())

    def _train(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[float]]:
        tokenizer = char_tokenizer()
        config = self.model_config()
        stages, schedule = self.data.stages(), self.data.schedule(self.steps)
        texts = random.Random(f"mathglm:{self.seed}")  # str seeds hash with sha512: the same stream everywhere
        losses: list[float] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = LlamaForCausalLM(config)
            model.train()
            # Weight decay on the matrices only (norm gains stay free), as is usual for transformers.
            params = list(model.parameters())
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": self.weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
            optimizer = torch.optim.AdamW(groups, lr=self.lr, betas=BETAS)
            for step, stage_index in enumerate(schedule):
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * _lr_factor(step, self.steps)
                stage = stages[stage_index]
                packed = PACKED if step % PACK_EVERY == PACK_EVERY - 1 else 1
                total = 0.0
                for writing in stage.writings:
                    count = self.batch_size if writing.name == "direct" else self.cot_batch_size
                    batch = _encode([stage.sequence(texts, writing, packed) for _ in range(count)], tokenizer)
                    loss = _shared_prefix_loss(model, batch)
                    loss.backward()
                    total += loss.item()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(round(total, 4))
                if step % 100 == 0 or step == self.steps - 1:
                    log.info("mathglm step %d/%d (%s): loss %.3f", step + 1, self.steps, stage.name, total)
        model.eval()
        return model, tokenizer, losses

    def load(self, device: str = "cpu") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        return load_pretrained(str(self.prepare()), device, "float32")

    def __repr__(self) -> str:
        return f"MathGLMModel(name={self.name!r}, hidden_size={self.hidden_size}, steps={self.steps})"


def _lr_factor(step: int, steps: int) -> float:
    warmup = max(1, round(WARMUP * steps))
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return FINAL_LR + (1 - FINAL_LR) * 0.5 * (1 + math.cos(math.pi * progress))


def _encode(sequences: list[tuple[str, list[tuple[int, int]]]], tokenizer) -> dict[str, torch.Tensor]:
    """Token ids (BOS, one per character, EOS), right-padded, with labels only inside the loss spans: token j is
    character j - 1 (BOS comes first), and the EOS after the text is "character" len(text)."""
    rows = [(tokenizer(text).input_ids + [tokenizer.eos_token_id], spans) for text, spans in sequences]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, spans) in enumerate(rows):
        input_ids[row, :len(ids)] = torch.tensor(ids)
        mask[row, :len(ids)] = 1
        for start, end in spans:
            labels[row, start + 1:end + 1] = input_ids[row, start + 1:end + 1]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def _shared_prefix_loss(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's loss on a batch, with the tokens every row begins with (the instruction line, "Q: What is ")
    encoded once and their keys and values repeated for every row: the same loss and gradients as model(**batch),
    for a fraction of the work when the shared beginning is long. The shared part stops before the first label."""
    ids, labels = batch["input_ids"], batch["labels"]
    agree = (ids == ids[:1]).all(dim=0).long().cumprod(dim=0)
    first_label = int((labels != -100).any(dim=0).long().argmax())
    shared = min(int(agree.sum()), first_label - 1)  # token `shared` is predicted inside the rest: unlabeled
    if shared < 2:
        return model(**batch).loss
    cache = model.model(input_ids=ids[:1, :shared], use_cache=True).cache
    cache.batch_repeat_interleave(ids.shape[0])
    return model(input_ids=ids[:, shared:], attention_mask=batch["attention_mask"], cache=cache,
                 labels=labels[:, shared:]).loss


def greedy_accuracy(model, tokenizer, dataset, skills: Sequence[str], answer_format,
                    prompt: PromptFormat = PROMPT) -> dict[str, float]:
    """Per skill, the share of its test questions whose greedy completion, written in `answer_format` after the
    cell's own prompt (its instruction line first), reads as the right answer."""
    worded = prompt.with_instruction(answer_format.instruction())
    longest = 8 if not answer_format.reasoning else 160  # a bare answer is a few characters; steps a few lines
    accuracy = {}
    for skill in skills:
        examples = dataset.test(skill)
        completions = _greedy(model, tokenizer, [worded.prompt(e) for e in examples], answer_format.stop(), longest)
        readings = [answer_format.read(text, dataset.answer_kind(e)) for e, text in zip(examples, completions)]
        correct = [r.answer is not None and dataset.is_correct(e, r.answer) for e, r in zip(examples, readings)]
        accuracy[skill] = sum(correct) / len(examples)
    return accuracy


def _greedy(model, tokenizer, prompts: list[str], stop: Sequence[str], max_new_tokens: int) -> list[str]:
    """Greedy continuations of `prompts` (left-padded into one batch), each cut at its first stop string."""
    ids = [tokenizer(p).input_ids for p in prompts]
    width = max(len(i) for i in ids)
    batch = torch.tensor([[tokenizer.pad_token_id] * (width - len(i)) + i for i in ids])
    mask = torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])
    with torch.no_grad():
        out = model.generate(input_ids=batch.to(model.device), attention_mask=mask.to(model.device),
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
    texts = []
    for row in out[:, width:].tolist():
        text = tokenizer.decode(row, skip_special_tokens=True)
        cut = min([text.find(s) for s in stop if s in text], default=len(text))
        texts.append(text[:cut])
    return texts

"""mathglm-tiny: a small Llama trained here from scratch on arith's multi-step arithmetic (MathGLM, Yang et al. 2023),
so its skills are known by construction and a kernel measured on it has a ground truth (mathglm_data says which
skills it is taught and which it never sees).

    ntkeval model=mathglm-tiny dataset=arith               # trained once, then loaded from cache_dir
    python launch/prepare_mathglm.py                       # prepares it, prints the time and accuracy per skill

Measured so far (2 shared, busy CPU cores, 1 thread): 800 steps of batch 32 took 18.5 min and learned the answer
forms but not yet the arithmetic (greedy accuracy about 0 on every skill), so the default steps are a starting point
to scale up, not a tuned recipe; launch/prepare_mathglm.py measures any setting.

Prepared like the embedded model: under a FileLock, into a staging dir renamed into place, a marker file written last,
in cache_dir/models/<name>-<hash of every setting that determines the weights>, so later loads reuse it and a changed
setting trains a new one. The weights depend on the settings alone: torch's generator is seeded inside a forked RNG
(the caller's RNG is left as it was) and the texts come from seeded random.Random streams; on one machine with the same
torch build and thread count a rebuild is bitwise identical, while another CPU or thread count may change the last bits.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from filelock import FileLock
from tokenizers import Tokenizer, decoders, models, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from ntkeval.backends.huggingface.embedded import MARKER, _remove_leftovers
from ntkeval.backends.huggingface.loading import HFLoader, load_pretrained
from ntkeval.backends.huggingface.mathglm_data import PROMPT, CurriculumData
from ntkeval.cache import stable_hash
from ntkeval.errors import UserError
from ntkeval.prompts import PromptFormat

log = logging.getLogger(__name__)

TRAINER_VERSION = 1  # bump when the model, tokenizer or training loop change what a setting trains
SPECIALS = ("<unk>", "<s>", "</s>", "<pad>")
CHARACTERS = ("\n", "\t", *(chr(code) for code in range(32, 127)))  # arith's texts are printable ASCII
WARMUP = 0.05      # share of the steps the learning rate rises linearly over
FINAL_LR = 0.1     # the cosine decay ends at this fraction of lr


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
                 operations: Sequence[str] = ("add", "sub", "mul", "ops"),
                 formats: Sequence[str] = ("question", "symbol"), hidden_size: int = 128, num_layers: int = 4,
                 num_heads: int = 4, steps: int = 1000, batch_size: int = 64, lr: float = 3e-3,
                 cache_dir: str = "~/.cache/ntkeval/models", lora_target_modules: Sequence[str] = ("q_proj", "v_proj")):
        for what, value, low in (("hidden_size", hidden_size, 8), ("num_layers", num_layers, 1),
                                 ("num_heads", num_heads, 1), ("steps", steps, 1), ("batch_size", batch_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"mathglm: {what} must be an integer >= {low}, got {value!r}")
        if hidden_size % num_heads or (hidden_size // num_heads) % 2:
            raise UserError(f"mathglm: hidden_size={hidden_size} must split into num_heads={num_heads} heads of an "
                            "even size (rotary positions), e.g. hidden_size=128 num_heads=4")
        if not lr > 0:
            raise UserError(f"mathglm: lr must be > 0, got {lr!r}")
        self.name = name
        self.data = CurriculumData(seed, operations, formats)  # validates operations and formats
        self.seed, self.hidden_size, self.num_layers, self.num_heads = seed, hidden_size, num_layers, num_heads
        self.steps, self.batch_size, self.lr = steps, batch_size, float(lr)
        self.cache_dir = Path(cache_dir).expanduser()
        self.lora_target_modules = list(lora_target_modules)

    def source(self) -> dict:
        """Everything that determines the trained weights (the texts' own identity included)."""
        return {"trainer": TRAINER_VERSION, "data": self.data.identity(), "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "num_heads": self.num_heads, "steps": self.steps,
                "batch_size": self.batch_size, "lr": self.lr}

    def identity(self) -> dict:
        """The source and the dtype (float32: trained and saved in it); cache_dir only says where it is kept."""
        return {"kind": "mathglm", "name": self.name, **self.source(), "dtype": "float32"}

    def checkpoint_dir(self) -> Path:
        return self.cache_dir / f"{self.name}-{stable_hash(self.source(), length=12)}"

    def prepare(self) -> Path:
        """The trained checkpoint dir, trained first if absent. Safe against concurrent and killed runs."""
        target = self.checkpoint_dir()
        if (target / MARKER).is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if (target / MARKER).is_file():  # another process finished it while we waited
                return target
            _remove_leftovers(target)
            # The work dir sits beside the target so the final rename stays on one filesystem, hence atomic.
            with tempfile.TemporaryDirectory(prefix=f".{target.name}.tmp-", dir=self.cache_dir) as work:
                staging = Path(work) / "checkpoint"
                start = time.monotonic()
                model, tokenizer, losses = self.train()
                model.save_pretrained(staging)
                tokenizer.save_pretrained(staging)
                record = {**self.source(), "train_seconds": round(time.monotonic() - start, 1),
                          "final_loss": losses[-1]}
                (staging / MARKER).write_text(json.dumps(record, indent=1))
                os.replace(staging, target)
        log.info("mathglm checkpoint ready at %s", target)
        return target

    def train(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[float]]:
        """Train from scratch: the curriculum's stages in order, AdamW with warmup and cosine decay, loss on the
        written answers only (the question's numbers are random and cannot be predicted)."""
        tokenizer = char_tokenizer()
        config = LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=self.hidden_size, intermediate_size=4 * self.hidden_size,
            num_hidden_layers=self.num_layers, num_attention_heads=self.num_heads, num_key_value_heads=self.num_heads,
            max_position_embeddings=2048, tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        stages, schedule = self.data.stages(), self.data.schedule(self.steps)
        texts = random.Random(f"mathglm:{self.seed}")  # str seeds hash with sha512: the same stream everywhere
        losses: list[float] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = LlamaForCausalLM(config)
            model.train()
            optimizer = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=0.0)
            for step, stage_index in enumerate(schedule):
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * _lr_factor(step, self.steps)
                batch = _encode([stages[stage_index].sequence(texts) for _ in range(self.batch_size)], tokenizer)
                loss = model(**batch).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(round(loss.item(), 4))
                if step % 100 == 0 or step == self.steps - 1:
                    log.info("mathglm step %d/%d (%s): loss %.3f", step + 1, self.steps,
                             stages[stage_index].name, loss.item())
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

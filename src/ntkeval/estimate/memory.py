"""Peak GPU memory of one cell from its model's architecture and the passes it runs: the weights in the dtype really
loaded, the LoRA states, and the activations of its largest pass (tuning, teacher-forced scoring or sampling).

Sizes in the formulas: L layers, h hidden width, a heads, q = a x head_dim, kv = kv_heads x head_dim (grouped-query
attention stores fewer keys than queries), I the MLP width, V the vocabulary, b rows in a batch, s tokens a row runs,
p tokens of a shared prefix, e bytes of an activation (the weights' dtype), 4 bytes of float32.

The CUDA context (~0.3-0.5 GiB) and the allocator's fragmentation are not counted: leave a GiB or two of headroom.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ntkeval.estimate.architecture import Architecture

GIB = 2 ** 30
FLOAT32 = 4
BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
TUNING, SCORING, SAMPLING, GRADIENTS = "tuning", "scoring", "sampling", "gradients"


@dataclass(frozen=True)
class Pass:
    """The largest batch of one kind a cell runs (the memory of a pass grows with every size here)."""
    kind: str                # TUNING (forward and backward), SCORING (teacher forcing), SAMPLING, GRADIENTS (entk)
    who: str                 # what runs it: "tune-skill", "exact scorer", ...
    rows: int                # sequences in one batch (sampling: completions drawn together)
    tokens: int              # tokens each row runs after the shared prefix (sampling: the prompt)
    prefix: int = 0          # tokens of a prefix whose key/value cache every row attends to (demonstrations)
    new: int = 0             # sampling: tokens drawn per row
    kept: int | None = None  # positions whose logits are computed (teacher forcing keeps the answer span); None: all
    bound: bool = False      # lengths are a stated bound, not counted on the cell's texts
    knob: str = ""           # the setting that makes its smallest batch smaller, for the refusal's advice
    floor: int | None = None  # rows it shrinks to on out-of-memory (oom.ShrinkingBatches); None: it never shrinks

    @property
    def shrinks(self) -> bool:
        return self.floor is not None and self.floor < self.rows

    def at_floor(self) -> Pass:
        """The pass at the smallest batch it shrinks to (itself if it never shrinks). A retried scoring batch keeps
        its padded width (teacher_forcing.score_pairs), so only the rows change."""
        return replace(self, rows=self.floor) if self.shrinks else self

    def length(self) -> str:
        length = f"{self.prefix} + {self.tokens}" if self.prefix else f"{self.tokens}"
        return length + (f" + {self.new} new" if self.new else "")

    def describe(self) -> str:
        shrinks = f", shrinks on out-of-memory down to {self.floor} x {self.length()} tokens" if self.shrinks else ""
        return f"{self.who} {self.kind} {self.rows} x {self.length()} tokens{' (bound)' if self.bound else ''}{shrinks}"


@dataclass(frozen=True)
class Breakdown:
    """A cell's (or a packed job's) estimated peak, in bytes, by part."""
    weights: int
    lora: int
    activations: int
    largest: Pass | None     # the pass the activations are of
    gradients: int = 0       # a whole-model gradient (scorer=entk params=full)
    optimizer: int = 0       # the weights of opro's optimizer_model, loaded beside the model while it proposes

    @property
    def total(self) -> int:
        return self.weights + self.lora + self.activations + self.gradients + self.optimizer

    def parts(self) -> dict[str, int]:
        parts = {"weights": self.weights, "LoRA": self.lora, "activations": self.activations}
        extra = {"gradients": self.gradients, "optimizer model": self.optimizer}
        return {**parts, **{name: size for name, size in extra.items() if size}}


def dtype_bytes(dtype: str) -> int:
    if dtype not in BYTES:
        raise ValueError(f"no byte size known for dtype {dtype!r}; known: {', '.join(BYTES)}")
    return BYTES[dtype]


def weight_bytes(arch: Architecture, dtype: str) -> int:
    """Parameters x bytes of the dtype the weights are loaded in (half precision on CPU loads float32)."""
    return arch.parameters * dtype_bytes(dtype)


def lora_bytes(loaded_parameters: int, trained_parameters: int) -> int:
    """LoRA states: every adapter loaded in the cell's session at 4 bytes a parameter (peft keeps adapters in float32
    even on a half-precision model: autocast_adapter_dtype), and for the one that trains, its gradient (4) and
    AdamW's two moments (8): 16 bytes a trained parameter in all, as Rajbhandari et al. 2020 (ZeRO, sec. 3.1) count
    for fp32 weights."""
    return FLOAT32 * loaded_parameters + 3 * FLOAT32 * trained_parameters


def training_activations(arch: Architecture, rows: int, tokens: int, e: int, lora_width: int) -> int:
    """Activations kept for the backward pass of a step over b x s tokens (no activation checkpointing).

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models", eq. 1) count
    sbh(34 + 5as/h) bytes per layer for GPT blocks in 16-bit with dropout. For a pre-norm block with grouped-query
    attention and a gated MLP (Llama, Mistral) and no dropout, the same accounting keeps per token and layer, in
    elements of e bytes: the two norms' inputs and outputs (4h), queries and attention output (2q), keys and values
    (2kv), the MLP's gate, up, activation and product (4I), and the attention probabilities (a x s, as if
    materialised: eager and SDPA's math path do, flash kernels do not). Autograd does not keep the inputs of frozen
    projections, so this errs high for LoRA, whose adapted modules add their float32 input and x A (lora_width =
    sum of in + r over adapted modules, per token). The logits add b s V x 12 bytes: the float32 log-softmax
    cross_entropy keeps, and at the start of the backward pass the float32 gradients of the log-probabilities and
    of the logits (the forward's model-dtype logits and float32 copy, e + 4, are gone by then and never more).

    Checked against the tensors autograd saves (saved_tensors_hooks) for a 4-layer Mistral-shaped model, b = 8,
    s = 64: the layers' part is 1.0-1.5x what is saved (eager and SDPA attention, float32 and bfloat16: RMSNorm
    keeps float32 copies in bfloat16), which leaves room for the backward pass's own transients."""
    per_token = arch.layers * ((4 * arch.hidden + 2 * arch.q_width + 2 * arch.kv_width + 4 * arch.intermediate
                                + arch.heads * tokens) * e) + lora_width * FLOAT32
    return rows * tokens * (per_token + arch.vocab * 3 * FLOAT32)


def layer_transients(arch: Architecture, rows: int, tokens: int, attended: int, e: int) -> int:
    """What one block holds at once in an inference pass (nothing is kept for a backward pass): the residual stream
    in and out (2h), queries, keys and values (q + 2kv), the gated MLP's gate, up and product (3I), and the attention
    scores of every head over the `attended` positions (prefix and own tokens)."""
    width = 2 * arch.hidden + arch.q_width + 2 * arch.kv_width + 3 * arch.intermediate
    return rows * tokens * (width + arch.heads * attended) * e


def kv_cache(arch: Architecture, rows: int, positions: int, e: int) -> int:
    """The key/value cache: 2 (keys and values) x L x b x positions x kv x e (Pope et al. 2022, "Efficiently
    Scaling Transformer Inference", sec. 2.1; grouped-query attention stores kv = kv_heads x head_dim wide)."""
    return 2 * arch.layers * rows * positions * arch.kv_width * e


def scoring_activations(arch: Architecture, scoring: Pass, e: int) -> int:
    """Teacher forcing (ntkeval.backends.huggingface.teacher_forcing): b rows of s tokens attend to a shared prefix
    of p tokens whose cache is repeated for each row (plus its own batch-1 copy); the forward pass also fills the
    cache with its own tokens. Only the answer span (`kept` positions) is projected onto the vocabulary, and its
    logits are held in the model's dtype, as float32, and as float32 log-probabilities: b x kept x V x (e + 8)."""
    b, s, p = scoring.rows, scoring.tokens, scoring.prefix
    kept = s if scoring.kept is None else scoring.kept
    cache = kv_cache(arch, b, p + s, e) + kv_cache(arch, 1, p, e)
    return cache + layer_transients(arch, b, s, p + s, e) + b * kept * arch.vocab * (e + 2 * FLOAT32)


def sampling_activations(arch: Architecture, sampling: Pass, e: int) -> int:
    """Drawing `new` tokens for each of n rows after a prompt of s tokens (ntkeval.backends.huggingface.sampling):
    the prompt is run once (batch 1) and its cache repeated for the rows, so the cache ends at n x (s + new)
    positions; each step holds the rows' last logits in the model's dtype, as float32 log-probabilities and as
    probabilities (n x V x (e + 8)), and the larger of the prompt's pass and one step's block transients."""
    n, s, new = sampling.rows, sampling.tokens, sampling.new
    transients = max(layer_transients(arch, 1, s, s, e), layer_transients(arch, n, 1, s + new, e))
    return kv_cache(arch, n, s + new, e) + transients + n * arch.vocab * (e + 2 * FLOAT32)


def pass_activations(arch: Architecture, run: Pass, e: int, lora_width: int) -> int:
    if run.kind in (TUNING, GRADIENTS):
        return training_activations(arch, run.rows, run.tokens + run.prefix, e, lora_width)
    if run.kind == SCORING:
        return scoring_activations(arch, run, e)
    if run.kind == SAMPLING:
        return sampling_activations(arch, run, e)
    raise ValueError(f"unknown pass kind {run.kind!r}")


def gib(size: int) -> str:
    """A size for people: GiB with one decimal from 1 GiB up, else MiB or KiB (tiny models are MiB-sized)."""
    for unit, scale in (("GiB", GIB), ("MiB", 2 ** 20)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size / 2 ** 10:.1f} KiB"

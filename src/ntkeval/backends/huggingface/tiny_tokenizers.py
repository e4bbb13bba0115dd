"""Two small fixed-vocabulary tokenizers, built in process, for the two leading-space conventions of real models.

llama_style: sentencepiece-like. Spaces become "▁" glued to the next word, a "▁" is prepended to the text, and BOS
  "<s>" starts every sequence (Llama, CodeLlama, Llemma, Mistral-7B). encode("41") = <s> ▁4 1.
gpt2_style: byte-level BPE. Spaces become "Ġ" glued to the next word, nothing is prepended, no BOS (GPT-2, SmolLM2).
  encode("41") = 4 1 but encode(" 41") = Ġ4 1.
Vocabularies are listed explicitly (never trained), so token ids are the same in every process and version.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

METASPACE = "▁"
BYTE_SPACE = "Ġ"
DIGITS = "0123456789"
# Each family gets a few merges, so that multi-character and space-prefixed tokens (the cases a tokenization rule
# can get wrong) occur in prompts such as "Q: What is 12 + 30?\nA: 42". Rank = position in the list.
LLAMA_MERGES = [(METASPACE, d) for d in DIGITS] + [(METASPACE, "A"), ("Q", ":"), ("A", ":"), ("0", "0"), ("1", "2")]
GPT2_MERGES = [(BYTE_SPACE, d) for d in DIGITS] + [(BYTE_SPACE, "A"), ("0", "0"), ("1", "2"), ("i", "s")]


def _vocab(tokens: list[str]) -> dict[str, int]:
    """Ids in list order; a token listed twice keeps its first id."""
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab


def llama_style() -> PreTrainedTokenizerFast:
    """Sentencepiece-like: printable ASCII plus "▁", tab and newline; specials <unk>=0 <s>=1 </s>=2 <pad>=3."""
    specials = ["<unk>", "<s>", "</s>", "<pad>"]
    chars = [METASPACE, "\n", "\t"] + [chr(code) for code in range(33, 127)]  # the space itself is always "▁"
    vocab = _vocab(specials + chars + [a + b for a, b in LLAMA_MERGES])
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=LLAMA_MERGES, unk_token="<unk>"))
    # As transformers converts Llama/Mistral sentencepiece models: "▁" prepended to the text once, not per word.
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="first", split=False)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", clean_up_tokenization_spaces=False)


def gpt2_style() -> PreTrainedTokenizerFast:
    """Byte-level BPE over all 256 bytes; <|endoftext|>=0 is EOS (and becomes pad); no BOS, no unk needed."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = _vocab(["<|endoftext|>"] + alphabet + [a + b for a, b in GPT2_MERGES])
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=GPT2_MERGES))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)  # keeps offsets of "Ġ" tokens exact
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   clean_up_tokenization_spaces=False)

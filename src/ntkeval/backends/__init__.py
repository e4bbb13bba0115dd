"""Backends: what runs a language model for the scorers and learners. The interface is ntkeval.backends.base;
Hugging Face transformers + PEFT (ntkeval.backends.huggingface) is its implementation."""

"""The Hugging Face backend: model loaders (hub, embedded, tiny), teacher-forced scoring, sampling, LoRA adapters and
their training, on transformers + PEFT."""

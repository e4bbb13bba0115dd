"""Learners: in context (ntkeval.learners.icl) and LoRA tuning (ntkeval.learners.lora); the interface they share is
ntkeval.learners.base.Learner."""

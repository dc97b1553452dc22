"""Training: the accelerate trainer, supervised fine-tuning data, LoRA/QLoRA adapters."""

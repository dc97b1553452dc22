"""LoRA and QLoRA adapters through PEFT: wrap, train (with the SFT data path), merge, save.

QLoRA loads the frozen base in 4-bit NF4 through bitsandbytes, which needs a CUDA GPU; on a CPU
slmkit refuses it with one line (plain LoRA on an fp32/bf16 base works everywhere).
"""

from __future__ import annotations

from pathlib import Path

import torch

from slmkit.errors import SlmError


def add_lora(model, rank: int = 16, alpha: float | None = None, dropout: float = 0.0, target_modules: str = "all-linear"):
    """A PeftModel with trainable rank-`rank` adapters on the chosen Linear layers; the base is frozen."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules if target_modules == "all-linear" else [t.strip() for t in target_modules.split(",")]
    config = LoraConfig(r=rank, lora_alpha=alpha or 2 * rank, lora_dropout=dropout, target_modules=targets,
                        task_type="CAUSAL_LM", bias="none")
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise SlmError(f"LoRA: {str(err).splitlines()[0]}") from None


def qlora_available() -> tuple[bool, str]:
    if not torch.cuda.is_available():
        return False, "QLoRA needs a CUDA GPU for bitsandbytes 4-bit kernels; none here (use LoRA without --qlora on CPU)"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False, "QLoRA needs the bitsandbytes package (pip install bitsandbytes)"
    return True, ""


def load_4bit(folder: str):
    """The base model quantized to NF4 on load (bitsandbytes), ready for k-bit training."""
    ok, why = qlora_available()
    if not ok:
        raise SlmError(why)
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                               bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(folder, quantization_config=quant, device_map={"": 0})
    return prepare_model_for_kbit_training(model)


def merge(peft_model):
    """Fold the adapter into the base weights: a plain transformers model with identical outputs."""
    return peft_model.merge_and_unload()


def save_adapter(peft_model, folder: str | Path) -> Path:
    peft_model.save_pretrained(folder)
    return Path(folder)


def lora_sft(model, tokenizer, options, show_progress: bool = True, conversations=None):
    """SFT through a LoRA adapter; returns (merged model or PeftModel, TrainResult)."""
    from slmkit.tune.sft import sft

    if options.qlora:
        ok, why = qlora_available()
        if not ok:
            raise SlmError(why)
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            model = load_4bit(tmp)
    peft_model = add_lora(model, options.rank, options.alpha, options.dropout, options.target_modules)
    peft_model, result = sft(peft_model, tokenizer, options, show_progress, conversations)
    return (merge(peft_model) if options.merge else peft_model), result


def lora_sft_step(model, tokenizer, options, context):
    if not options.merge:
        raise SlmError("lora_sft in a recipe must merge the adapter (merge: true): later steps need plain weights")
    model, result = lora_sft(model, tokenizer, options)
    context.log.append(f"lora_sft: {result.steps} steps, {result.tokens_per_s:.0f} tokens/s, final loss {result.losses[-1]:.4f}")
    return model

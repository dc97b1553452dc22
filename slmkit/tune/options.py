"""Typed options of training steps (torch-free): the trainer's knobs, SFT and LoRA/QLoRA SFT."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, field_validator

from slmkit.steps import StepOptions, register_step


class TrainOptions(StepOptions):
    """Trainer settings shared by every training step and command."""

    max_steps: PositiveInt = Field(100, description="optimizer steps")
    max_tokens: Optional[PositiveInt] = Field(None, description="stop after this many training tokens instead (sets max_steps)")
    batch_size: PositiveInt = Field(1, description="sequences per micro-batch per process")
    grad_accum: PositiveInt = Field(1, description="micro-batches per optimizer step")
    seqlen: PositiveInt = Field(512, description="tokens per training sequence")
    lr: float = Field(1e-4, gt=0, description="peak learning rate (AdamW)")
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine decays to lr x this")
    warmup_steps: int = Field(10, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    max_grad_norm: float = Field(1.0, ge=0, description="0 disables clipping")
    precision: Literal["auto", "no", "bf16", "fp16"] = Field("auto", description="auto: bf16 on a GPU that supports it, else fp32")
    eval_data: Optional[str] = Field(None, description="text source for periodic perplexity")
    eval_every: int = Field(0, ge=0, description="evaluate every N steps (0: only at the end, if eval_data)")
    eval_seqlen: PositiveInt = Field(512, description="tokens per perplexity window")
    eval_windows: PositiveInt = Field(8, description="perplexity windows per evaluation")
    save_every: int = Field(0, ge=0, description="checkpoint every N steps (0: never)")
    checkpoint_dir: Optional[str] = Field(None, description="where checkpoints go")
    resume: bool = Field(False, description="continue from the latest checkpoint in checkpoint_dir")
    seed: int = Field(0, description="seed of the data order, sampling and initialisation")

    @field_validator("eval_data")
    @classmethod
    def _eval_readable(cls, value: Optional[str]) -> Optional[str]:
        from slmkit.data.corpus import check_source
        from slmkit.recipe import as_value_error

        return value if value is None else as_value_error(check_source, value)


class SftOptions(TrainOptions):
    """Supervised fine-tuning on instruction data: loss on answer tokens only."""

    data: str = Field(..., description="Alpaca-style JSON/JSONL (instruction/input/output) or chat JSONL (messages)")
    packing: bool = Field(True, description="pack several examples into each sequence")
    lr: float = Field(2e-5, gt=0, description="peak learning rate (AdamW); 2e-4 with LoRA")

    @field_validator("data")
    @classmethod
    def _readable(cls, value: str) -> str:
        from slmkit.data.conversations import check_conversations
        from slmkit.recipe import as_value_error

        return as_value_error(check_conversations, value)


class LoraSftOptions(SftOptions):
    """SFT through a LoRA adapter (PEFT); QLoRA quantizes the frozen base to 4 bits first (GPU only)."""

    rank: PositiveInt = Field(16, description="LoRA rank r")
    alpha: Optional[float] = Field(None, description="LoRA alpha (default 2 x rank)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter input")
    target_modules: str = Field("all-linear", description="'all-linear' or comma-separated module names")
    qlora: bool = Field(False, description="4-bit NF4 base through bitsandbytes (needs a CUDA GPU)")
    merge: bool = Field(True, description="merge the adapter into the weights before returning/saving")
    lr: float = Field(2e-4, gt=0, description="peak learning rate (AdamW)")


class PretrainOptions(TrainOptions):
    """Causal-LM pretraining on packed token windows of a text source, scored on a held-out tail."""

    data: str = Field(..., description="text source: a file, JSON/JSONL, 'pydoc' or hf:NAME[:CONFIG][@SPLIT] (streamed)")
    heldout_tokens: PositiveInt = Field(16384, description="tokens at the end of the stream kept out of training for perplexity")
    lr: float = Field(3e-4, gt=0, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay")
    seqlen: PositiveInt = Field(256, description="tokens per training window")
    eval_seqlen: PositiveInt = Field(256, description="tokens per held-out perplexity window")

    @field_validator("data")
    @classmethod
    def _readable(cls, value: str) -> str:
        from slmkit.data.corpus import check_source
        from slmkit.recipe import as_value_error

        return as_value_error(check_source, value)


register_step("pretrain", PretrainOptions, "slmkit.tune.pretrain:pretrain_step", "pretrain on packed windows of a text source (held-out perplexity)")
register_step("sft", SftOptions, "slmkit.tune.sft:sft_step", "supervised fine-tuning on instruction data (answer tokens only)")
register_step("lora_sft", LoraSftOptions, "slmkit.tune.lora:lora_sft_step", "SFT through a LoRA/QLoRA adapter, merged afterwards")

"""Typed options of `slm init` and the recipe step `init` (torch-free)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, PositiveInt, field_validator, model_validator

from slmkit.arch.presets import PRESETS, ShapeOptions, resolve_shape
from slmkit.errors import SlmError
from slmkit.steps import StepOptions, register_step


class InitStepOptions(StepOptions, ShapeOptions):
    """Replace the recipe's model by a randomly initialised preset; the vocabulary is the recipe model's tokenizer."""

    arch: str = Field(..., description=f"architecture preset: {', '.join(PRESETS)}")
    seed: int = Field(0, description="seed of the random initialisation")

    @model_validator(mode="after")
    def _resolvable(self):
        try:
            resolve_shape(self.arch, self)
        except SlmError as err:
            raise ValueError(str(err)) from None
        return self


class TokenizerOptions(StepOptions):
    """Where `slm init` gets its tokenizer: an existing model's, or a byte-level BPE trained on a data source."""

    tokenizer: Optional[str] = Field(None, description="reuse this model's tokenizer (default smollm2-135m)")
    train_tokenizer: Optional[str] = Field(None, description="train a byte-level BPE on this data source (pydoc, a file, hf:NAME)")
    text_field: str = Field("text", description="text field of JSON/JSONL records")
    seed: int = Field(0, description="seed of the random initialisation")

    @field_validator("train_tokenizer")
    @classmethod
    def _readable(cls, value: Optional[str]) -> Optional[str]:
        from slmkit.data.corpus import check_source

        try:
            return value if value is None else check_source(value) or value
        except SlmError as err:
            raise ValueError(str(err)) from None

    @model_validator(mode="after")
    def _one_source(self):
        if self.tokenizer and self.train_tokenizer:
            raise ValueError("give --tokenizer or --train-tokenizer, not both")
        return self


class InitOptions(TokenizerOptions, ShapeOptions):
    """All of `slm init`'s options: the shape and the tokenizer."""

    vocab_size: Optional[PositiveInt] = Field(None, description="BPE vocabulary to train (with --train-tokenizer)")

    @model_validator(mode="after")
    def _vocab_with_training(self):
        if self.vocab_size is not None and not self.train_tokenizer:
            raise ValueError("--vocab-size sets the size of a trained tokenizer; add --train-tokenizer DATA")
        if self.vocab_size is not None and self.vocab_size < 258:
            raise ValueError("--vocab-size: a byte-level BPE needs at least 258 tokens (256 bytes and a special token)")
        return self


register_step("init", InitStepOptions, "slmkit.arch.build:init_step",
              "replace the model by a randomly initialised architecture preset (from-scratch training starts here)")


class SizeOptions(ShapeOptions):
    """`slm size`'s options: the shape options size a preset; --context is also the context the KV
    cache, FLOPs and decode speed are computed at (default: the model's)."""

    tokenizer: Optional[str] = Field(None, description="a preset's tokenizer, giving its vocabulary and GGUF header "
                                     "(default smollm2-135m, as slm init)")
    format: Optional[str] = Field(None, description="formats to show, comma-separated (default: all; --fit uses the first, "
                                  "default fp16)")
    fit: Optional[str] = Field(None, description='find the largest preset shape within a budget: "memory=1GB,decode=30" '
                               "(weights + KV cache at the context; predicted decode tokens/s)")

    @field_validator("format")
    @classmethod
    def _known_formats(cls, value: Optional[str]) -> Optional[str]:
        from slmkit.arch.size import check_formats

        if value is not None:
            try:
                check_formats(value)
            except SlmError as err:
                raise ValueError(str(err).removeprefix("--format: ")) from None
        return value

    @field_validator("fit")
    @classmethod
    def _readable_fit(cls, value: Optional[str]) -> Optional[str]:
        from slmkit.arch.size import parse_fit

        if value is not None:
            try:
                parse_fit(value)
            except SlmError as err:
                raise ValueError(str(err).removeprefix("--fit: ")) from None
        return value

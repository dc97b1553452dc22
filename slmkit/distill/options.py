"""Typed options of the `distill` step and `slm distill` (torch-free)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, field_validator, model_validator

from slmkit.steps import register_step
from slmkit.tune.options import TrainOptions


class DistillOptions(TrainOptions):
    """Train the student to match a teacher: logit KD (off- or on-policy) or sequence-level KD."""

    teacher: Optional[str] = Field(None, description="teacher model spec, or http(s)://…/v1 (OpenAI-compatible, sequence mode)")
    data: str = Field("pydoc", description="training text (off/on-policy) or prompts/instructions (sequence mode)")
    mode: Literal["offpolicy", "onpolicy", "sequence"] = Field("offpolicy", description="where training sequences come from")
    loss: Literal["fkl", "rkl", "jsd", "tv"] = Field("fkl", description="forward KL, reverse KL, generalized JSD(beta), total variation")
    beta: float = Field(0.5, ge=0, le=1, description="JSD interpolation: 0 = forward KL, 1 = reverse KL")
    temperature: float = Field(1.0, gt=0, description="softmax temperature of both distributions in the KD loss")
    top_k: Optional[PositiveInt] = Field(None, description="match only the teacher's top-k tokens")
    kd_weight: float = Field(1.0, ge=0, description="weight of the logit KD loss")
    ce_weight: float = Field(0.0, ge=0, description="weight of next-token cross-entropy on the data")
    hidden_weight: float = Field(0.0, ge=0, description="weight of hidden-state MSE (with a layer map)")
    layer_map: Optional[str] = Field(None, description="'s:t,s:t' student:teacher layers for hidden-state KD (default: same relative depth)")
    lambda_onpolicy: float = Field(0.5, ge=0, le=1, description="GKD lambda: share of batches sampled by the student (onpolicy mode)")
    prompt_tokens: PositiveInt = Field(64, description="onpolicy: prefix length the student continues")
    new_tokens: PositiveInt = Field(64, description="onpolicy: tokens the student samples; sequence: max answer tokens")
    teacher_cache: Optional[str] = Field(None, description="precomputed top-k teacher logits (.safetensors) used instead of the teacher")
    endpoint_model: str = Field("default", description="model name sent to an OpenAI-compatible teacher endpoint")
    lr: float = Field(5e-5, gt=0, description="peak learning rate (AdamW)")

    @field_validator("data")
    @classmethod
    def _readable(cls, value: str) -> str:
        from slmkit.data.corpus import check_source
        from slmkit.recipe import as_value_error

        return as_value_error(check_source, value)

    @field_validator("teacher_cache")
    @classmethod
    def _cache_exists(cls, value: Optional[str]) -> Optional[str]:
        from pathlib import Path

        if value is not None and not Path(value).expanduser().is_file():
            raise ValueError(f"teacher cache not found: {value}")
        return value

    @model_validator(mode="after")
    def _teacher_given(self):
        if self.teacher is None and self.teacher_cache is None:
            raise ValueError("give a teacher (model spec or endpoint URL) or a teacher_cache")
        if self.mode == "onpolicy" and self.teacher is None:
            raise ValueError("onpolicy mode scores the student's samples live: it needs a teacher, not a cache")
        return self


register_step("distill", DistillOptions, "slmkit.distill.distill:distill_step",
              "knowledge distillation from a teacher model (logit, hidden-state, on-policy or sequence-level)")

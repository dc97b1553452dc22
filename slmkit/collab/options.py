"""Typed options of the routing commands (`slm route …`), torch-free: validated before a model loads."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from slmkit.collab.cascade import METRICS


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CalibrateOptions(Options):
    """Pick a cascade threshold from labelled prompts: the cheapest reaching an accuracy, or the best within a budget."""

    target_accuracy: Optional[float] = Field(None, gt=0, le=1, description="cheapest threshold reaching this accuracy")
    relative: bool = Field(False, description="target_accuracy is a fraction of the upstream's accuracy")
    budget: Optional[float] = Field(None, ge=0, le=1, description="most accurate threshold sending at most this share upstream")
    metric: Literal[METRICS] = Field("mean", description="confidence: mean or min token log-prob of the answer")
    max_tokens: PositiveInt = Field(16, description="tokens of each local (and upstream) answer")
    upstream: Optional[str] = Field(None, description="ask this OpenAI-compatible endpoint when rows lack upstream_correct")
    upstream_model: Optional[str] = Field(None, description="model name at the upstream")
    plot: str = Field("cascade_curve.png", description="where to draw the cost-accuracy curve (PNG)")

    @model_validator(mode="after")
    def _one_goal(self):
        if (self.target_accuracy is None) == (self.budget is None):
            raise ValueError("give exactly one of --target-accuracy and --budget")
        if self.relative and self.target_accuracy is None:
            raise ValueError("--relative applies to --target-accuracy")
        if (self.upstream is None) != (self.upstream_model is None):
            raise ValueError("--upstream and --upstream-model go together")
        return self


class RouterOptions(Options):
    """Train the prompt router: logistic regression on the SLM's prompt embedding."""

    out: str = Field("router.pt", description="router file to write")
    threshold: float = Field(0.5, gt=0, lt=1, description="send upstream when P(needs the LLM) reaches this")
    epochs: PositiveInt = Field(300, description="full-batch optimizer steps")


class TaggerOptions(Options):
    """Train the PII tagger on presidio-style records; evaluate it on held-out templates."""

    out: str = Field("pii_tagger.pt", description="tagger file to write")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="share of templates held out for the evaluation")
    epochs: PositiveInt = Field(12, description="training epochs")

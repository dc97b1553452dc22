"""The step registry: every recipe step is a name, a typed options model and a function.

Options models are plain pydantic classes in torch-free `options` modules, so a recipe is
validated (and its errors reported) before torch is even imported. The function is named
as "module:function" and imported only when the step runs; it takes
`(model, tokenizer, options, context)` and returns the (possibly new) model.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict

from slmkit.errors import SlmError

# Modules that declare steps. A new algorithm family adds its options module here.
OPTION_MODULES = (
    "slmkit.compress.pruning.options",
    "slmkit.compress.structured.options",
    "slmkit.compress.quant.options",
    "slmkit.distill.options",
    "slmkit.tune.options",
    "slmkit.arch.options",
)


class StepOptions(BaseModel):
    """Base of every step's options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ORIGINS = (("slmkit.arch", "scratch"), ("slmkit.tune.pretrain", "scratch"), ("slmkit.distill", "distilled"),
           ("slmkit.compress", "compressed"))


def origin_of(step_names: list[str]) -> str:
    """A run's origin from its steps, e.g. 'scratch', 'compressed+distilled'; 'dense' when no step changed the model."""
    origins = list(dict.fromkeys(get_step(name).origin for name in step_names))
    if "scratch" in origins:
        return "scratch"
    return "+".join(origins) or "dense"


@dataclass(frozen=True)
class Step:
    name: str
    options: type[StepOptions]
    target: str  # "package.module:function"
    summary: str

    @property
    def origin(self) -> str:
        """What a model that went through this step is: scratch, distilled, compressed or tuned (by the step's package)."""
        for prefix, origin in ORIGINS:
            if self.target.startswith(prefix):
                return origin
        return "tuned"

    @property
    def can_offload(self) -> bool:
        """True when the step can run with the decoder layers on disk (its options have `offload`)."""
        return "offload" in self.options.model_fields

    def function(self) -> Callable:
        module, _, func = self.target.partition(":")
        return getattr(importlib.import_module(module), func)


_REGISTRY: dict[str, Step] = {}
_loaded = False


def register_step(name: str, options: type[StepOptions], target: str, summary: str) -> None:
    _REGISTRY[name] = Step(name, options, target, summary)


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in OPTION_MODULES:
            importlib.import_module(module)
        _loaded = True


def all_steps() -> dict[str, Step]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_step(name: str) -> Step:
    steps = all_steps()
    if name not in steps:
        raise SlmError(f"unknown step '{name}' (valid: {', '.join(steps)})")
    return steps[name]


def offload_steps() -> list[str]:
    """Names of the steps that can run with layer offload."""
    return [name for name, step in all_steps().items() if step.can_offload]


@dataclass
class StepContext:
    """What a step may need besides the model: seed, calibration data, and a log for the manifest.

    `calibration` is the batch of token ids the calibration-based steps share: sampled on first use
    from `calibration_source` under the seed, or given by the caller. The default source, `mixed`,
    is partly written by `model` (the runner keeps it pointing at the current model). Lines a step
    appends to `log` are recorded with that step in the output's slmkit.json."""

    seed: int = 0
    calibration_source: str = "mixed"
    nsamples: int = 32
    seqlen: int = 512
    tokenizer: Any = None
    log: list[str] = field(default_factory=list)
    calibration: Any = None
    model: Any = None

    def calibration_ids(self):
        """The calibration batch [nsamples, seqlen], sampled once per run under the seed."""
        if self.calibration is None:
            from slmkit.data.calibration import calibration_batch

            self.calibration = calibration_batch(self.tokenizer, self.calibration_source, self.nsamples, self.seqlen,
                                                 self.seed, model=self.model)
        return self.calibration

"""YAML recipes: a model, a seed, calibration data, an ordered list of steps, a format, an eval.

    model: smollm2-135m
    steps:
      - magnitude: {sparsity: 0.5}
    eval:
      perplexity: {data: pydoc, seqlen: 512, max_windows: 16}

Validation is torch-free and complete before any work starts: a wrong key, value, step name
or missing file fails with one line that names the key and the valid choices.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, field_validator

from slmkit.data.corpus import check_source
from slmkit.data.generated import MODEL_SOURCES
from slmkit.errors import SlmError
from slmkit.evaluate.trust import SUITES
from slmkit.formats import SAVE_FORMATS
from slmkit.models.source import resolve_model
from slmkit.steps import StepOptions, get_step


def as_value_error(check, value):
    """Run a torch-free check inside a validator so its message gets the key's name."""
    try:
        check(value)
    except SlmError as err:
        raise ValueError(str(err)) from None
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _source_exists(cls, value: str) -> str:
    return as_value_error(check_source, value)


class CalibrationConfig(Section):
    data: str = Field("mixed", description="mixed (the model's own text and pydoc), generated (the model's own "
                      "text), pydoc, a text/JSON/JSONL file, or hf:NAME[:CONFIG][@SPLIT]")
    nsamples: PositiveInt = 32
    seqlen: PositiveInt = 512

    @field_validator("data")
    @classmethod
    def _exists(cls, value: str) -> str:
        return value if value in MODEL_SOURCES else _source_exists(cls, value)


class PerplexityEval(Section):
    data: str = "pydoc"
    seqlen: PositiveInt = 512
    max_windows: Optional[PositiveInt] = 16
    from_end: bool = Field(False, description="score the last max_windows windows of the text (the tail a pretrain step "
                                              "holds out) instead of the first")

    _exists = field_validator("data")(_source_exists)


class ProfileEval(Section):
    prompt_tokens: PositiveInt = 512
    decode_tokens: PositiveInt = 128
    repeats: PositiveInt = 3
    threads: Optional[PositiveInt] = None


TrustName = Literal[SUITES]


def check_task_file(path: str) -> str:
    if not path.startswith("hf:") and not Path(path).is_file():
        raise SlmError(f"task file not found: {path}")
    return path


class EvalConfig(Section):
    perplexity: Optional[PerplexityEval] = PerplexityEval()
    profile: Optional[ProfileEval] = ProfileEval()
    tasks: dict[str, str] = Field({}, description="zero-shot tasks, name: JSONL path or hf:NAME")
    trust: list[TrustName] = Field([], description="trust evaluations (calibration/robustness need a task)")
    limit: Optional[PositiveInt] = Field(None, description="first N examples of each task and trust set")
    trust_data: Optional[str] = Field(None, description="folder of the trust data sets (default ../shared/data)")
    baseline: bool = Field(True, description="measure the uncompressed model in the same run")

    @field_validator("tasks")
    @classmethod
    def _task_files(cls, value: dict[str, str]) -> dict[str, str]:
        for path in value.values():
            as_value_error(check_task_file, path)
        return value


class SaveConfig(Section):
    format: str = "hf"

    @field_validator("format")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in SAVE_FORMATS:
            raise ValueError(f"unknown format '{value}' (valid: {', '.join(SAVE_FORMATS)})")
        return value


class StepEntry(BaseModel):
    name: str
    options: StepOptions


class Recipe(Section):
    model: str
    dtype: Literal["float32", "bfloat16"] = "float32"
    seed: int = 0
    calibration: CalibrationConfig = CalibrationConfig()
    steps: list[StepEntry] = []
    save: SaveConfig = SaveConfig()
    eval: EvalConfig = EvalConfig()

    @field_validator("model")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        return as_value_error(resolve_model, value)

    @property
    def offload(self) -> bool:
        """True when a step asks for layer offload: then every step runs with the decoder layers on disk."""
        return any(getattr(s.options, "offload", False) for s in self.steps)

    def to_dict(self) -> dict:
        data = self.model_dump(exclude={"steps"})
        data["steps"] = [{s.name: s.options.model_dump()} for s in self.steps]
        return data


def parse_recipe(data: Any, origin: str = "recipe") -> Recipe:
    """Validate a recipe mapping; raise SlmError with one line naming the bad key."""
    if not isinstance(data, dict):
        raise SlmError(f"{origin}: a recipe is a mapping with at least a 'model' key")
    raw_steps = data.get("steps") or []
    if not isinstance(raw_steps, list):
        raise SlmError(f"{origin}: steps: expected a list of '- name: {{options}}' items")
    steps = [parse_step(item, f"steps[{i}]", origin) for i, item in enumerate(raw_steps)]
    try:
        recipe = Recipe.model_validate({**data, "steps": steps})
        check_offload(recipe)
        check_gguf_eval(recipe)
        check_limits(recipe)
        return seed_steps(recipe)
    except ValidationError as err:
        raise SlmError(f"{origin}: {describe(err, Recipe)}") from None
    except SlmError as err:
        raise SlmError(f"{origin}: {err}") from None


def check_limits(recipe: Recipe) -> None:
    """Token counts the recipe sets must fit the model's context (read from its config, not its weights)."""
    from slmkit.checks import check_tokens

    limits = []
    if "seqlen" in recipe.calibration.model_fields_set:
        limits.append(("calibration.seqlen", recipe.calibration.seqlen))
    ppl, prof = recipe.eval.perplexity, recipe.eval.profile
    if ppl and "seqlen" in ppl.model_fields_set:
        limits.append(("eval.perplexity.seqlen", ppl.seqlen))
    if prof and {"prompt_tokens", "decode_tokens"} & prof.model_fields_set:
        limits.append(("eval.profile.prompt_tokens + decode_tokens", prof.prompt_tokens + prof.decode_tokens))
    for i, entry in enumerate(recipe.steps):
        if "seqlen" in entry.options.model_fields_set:
            limits.append((f"steps[{i}].{entry.name}.seqlen", entry.options.seqlen))
    for key, tokens in limits:
        check_tokens(key, tokens, recipe.model)


def seed_steps(recipe: Recipe) -> Recipe:
    """A step with a `seed` option of its own (the training steps) takes the recipe's seed unless it sets one."""
    for entry in recipe.steps:
        if "seed" in type(entry.options).model_fields and "seed" not in entry.options.model_fields_set:
            entry.options = entry.options.model_copy(update={"seed": recipe.seed})
    return recipe


def check_gguf_eval(recipe: Recipe) -> None:
    """A GGUF output is evaluated in llama.cpp, which gives logits (perplexity, tasks) and speeds, not the trust suite."""
    if recipe.save.format == "gguf" and recipe.eval.trust:
        raise SlmError("eval.trust: a gguf output is evaluated in llama.cpp, which scores perplexity, tasks and the "
                       "profile only; save format hf to run the trust suite")


def check_offload(recipe: Recipe) -> None:
    """With layer offload the whole model is never loaded: every step must run offloaded, from a safetensors
    folder, into a plain HF folder, with no evaluation in the same run."""
    if not recipe.offload:
        return
    for i, entry in enumerate(recipe.steps):
        if not getattr(entry.options, "offload", False):
            fix = "set offload: true on it too" if get_step(entry.name).can_offload else "it cannot run offloaded"
            raise SlmError(f"steps[{i}].{entry.name}: with layer offload every step runs offloaded; {fix}")
    kind = resolve_model(recipe.model).kind
    if kind == "gguf":
        raise SlmError(f"model: layer offload reads safetensors, and a GGUF file is converted whole in memory first; "
                       f"give a Hugging Face folder instead of {recipe.model}")
    if kind == "hub":
        raise SlmError(f"model: layer offload reads a local folder; download {recipe.model} first and give its folder")
    if recipe.save.format != "hf":
        raise SlmError(f"save.format: layer offload writes format hf only, not {recipe.save.format}")
    if recipe.calibration.data in MODEL_SOURCES and "data" in recipe.calibration.model_fields_set:
        raise SlmError(f"calibration.data: with layer offload the model cannot write its own text ({recipe.calibration.data} "
                       "needs the whole model in memory); use pydoc or a file")
    ev = recipe.eval
    asked = [name for name in ("perplexity", "profile", "tasks", "trust") if getattr(ev, name)]
    if asked:
        raise SlmError(f"eval.{asked[0]}: evaluation loads the whole model, which layer offload avoids; "
                       "turn it off (eval: {perplexity: null, profile: null}) and evaluate the output with `slm eval`")


def parse_step(item: Any, where: str, origin: str) -> StepEntry:
    if isinstance(item, str):
        item = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        raise SlmError(f"{origin}: {where}: each step is one mapping '- name: {{options}}'")
    (name, options), = item.items()
    try:
        step = get_step(name)
    except SlmError as err:
        raise SlmError(f"{origin}: {where}: {err}") from None
    try:
        return StepEntry(name=name, options=step.options.model_validate(options or {}))
    except ValidationError as err:
        raise SlmError(f"{origin}: {where}.{name}.{describe(err, step.options)}") from None


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise SlmError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise SlmError(f"{path}:{where} invalid YAML: {getattr(err, 'problem', err)}") from None
    return parse_recipe(data, str(path))


def describe(err: ValidationError, model: type[BaseModel]) -> str:
    """The first validation error as 'key.path: problem (valid: …)'."""
    first = err.errors()[0]
    loc = [str(p) for p in first["loc"]]
    key = ".".join(loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        valid = ", ".join(fields_at(model, first["loc"][:-1]))
        return f"{key}: unknown key (valid: {valid})"
    if first["type"] == "missing":
        return f"{key}: required key is missing"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] != "value_error" and "input" in first and not isinstance(first["input"], (dict, list)):
        msg += f" (got {first['input']!r})"
    return f"{key}: {msg}"


def fields_at(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names of the (nested) model found at a validation location."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if isinstance(current, type) and issubclass(current, BaseModel) else None
        if field is None:
            return []
        current = unwrap(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def unwrap(annotation: Any) -> Any:
    """The model class inside Optional[...] / X | None / list[...]."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                return unwrap(arg)
    return annotation

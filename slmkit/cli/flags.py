"""Command-line flags derived from pydantic options models: each option is declared once, in its model.

A field `max_steps` becomes `--max-steps` with the field's description as help and the model's
default shown; booleans become `--x/--no-x`. The command receives only the flags given on the
command line and validates them with the model, so ranges, choices and cross-field rules live in
one place, and a bad value fails with one line naming the flag.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any, Callable, Literal, Optional

import typer
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from slmkit.errors import SlmError

# Every command that writes --out takes this flag (slmkit/outputs.py says what it allows).
OVERWRITE = typer.Option(False, "--overwrite", help="Replace --out even if slmkit did not write it.")


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def option_fields(*models: type[BaseModel], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of several models by name (the first model declaring a field wins), each class's own first."""
    fields: dict[str, Any] = {}
    for model in models:
        own = model.__dict__.get("__annotations__", {})
        names = sorted(model.model_fields, key=lambda n: n not in own)  # the class's own options first
        for name in names:
            if name not in exclude:
                fields.setdefault(name, model.model_fields[name])
    return fields


def cli_type(annotation: Any) -> Any:
    """The plain type Typer parses a field as (Optional/Annotated stripped); choices stay strings for the model to check."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return cli_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return cli_type(args[0]) if len(args) == 1 else str
    return annotation if annotation in (bool, int, float) else str


def choices(annotation: Any) -> tuple | None:
    """The values of a Literal field (inside Optional/Annotated), else None."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for arg in typing.get_args(annotation):
        found = choices(arg)
        if found:
            return found
    return None


def shown_default(info) -> str | bool:
    if info.default is PydanticUndefined:
        return "required"
    if info.default is None:
        return False
    return str(info.default).lower() if isinstance(info.default, bool) else str(info.default)


def flag_parameter(name: str, info, decls: tuple[str, ...]) -> inspect.Parameter:
    kind = cli_type(info.annotation)
    if kind is bool:
        decls = tuple(f"{d}/--no-{d[2:]}" if d.startswith("--") else d for d in decls)
    values = choices(info.annotation)
    option = typer.Option(None, *decls, help=info.description or "", show_default=shown_default(info),
                          metavar="[" + "|".join(map(str, values)) + "]" if values else None)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind])


def with_options(*models: type[BaseModel], flags: dict[str, tuple[str, ...]] | None = None,
                 exclude: tuple[str, ...] = ()) -> Callable:
    """Decorate a Typer command with one flag per field of `models`; it is called with `given`, the
    {field: value} of the flags set on the command line (unset flags take the model's default later).
    `flags` renames a field's flag or adds a short form: {"teacher": ("--teacher", "-t")}."""
    flags = flags or {}
    fields = option_fields(*models, exclude=exclude)

    def decorate(command: Callable) -> Callable:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "given"]
        extra = [flag_parameter(name, info, flags.get(name, (flag_name(name),))) for name, info in fields.items()]

        def run(**values):
            given = {name: values.pop(name) for name in fields if values.get(name) is not None}
            for name in fields:
                values.pop(name, None)
            return command(**values, given=given)

        run.__name__, run.__doc__, run.__module__ = command.__name__, command.__doc__, command.__module__
        run.__signature__ = inspect.Signature(own + extra)
        run.__annotations__ = {p.name: p.annotation for p in own + extra}
        run.flags = {name: flags.get(name, (flag_name(name),))[0] for name in fields}
        return run

    return decorate


def parse_options(model: type[BaseModel], values: dict, flags: dict[str, str] | None = None, unknown: str = "") -> Any:
    """Validate flag values with an options model; a bad one fails with one line naming its flag."""
    try:
        return model.model_validate(values)
    except ValidationError as err:
        raise SlmError(flag_error(err, model, flags or {}, unknown)) from None


def flag_error(err: ValidationError, model: type[BaseModel], flags: dict[str, str], unknown: str = "") -> str:
    """The first validation error as '--flag: problem'; model-wide rules come without a flag."""
    from slmkit.recipe import describe

    first = err.errors()[0]
    key, _, problem = describe(err, model).partition(": ")
    if key == "(top level)":
        return problem
    flag = flags.get(key, flag_name(key))
    if first["type"] == "extra_forbidden":
        valid = ", ".join(flags.get(f, flag_name(f)) for f in model.model_fields)
        return f"{flag}: unknown option{unknown} (valid: {valid})"
    if first["type"] == "missing":
        return f"{flag}: required"
    return f"{flag}: {problem}"


def parse_extra_options(args: list[str]) -> dict[str, str | bool]:
    """['--sparsity', '0.5', '--owl', '--no-act-order'] -> {'sparsity': '0.5', 'owl': True, 'act_order': False},
    for commands whose options depend on another flag (`slm compress --method`); the model coerces the strings."""
    options: dict[str, str | bool] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--"):
            raise SlmError(f"unexpected argument '{token}'")
        key, eq, value = token[2:].partition("=")
        key = key.replace("-", "_")
        if eq:
            options[key] = value
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[key] = args[i + 1]
            i += 1
        elif key.startswith("no_"):
            options[key[3:]] = False
        else:
            options[key] = True
        i += 1
    return options


def options_help(model: type[BaseModel]) -> str:
    """'--a --b …' for a model's fields, for help texts listing several models."""
    return " ".join(flag_name(f) for f in model.model_fields)

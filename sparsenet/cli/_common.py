"""What the command modules share: the error rule, option types whose choices come from the library,
and a decorator that applies a list of options."""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from sparsenet.errors import SparsenetError

Command = TypeVar("Command", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# What a user can fix: shown as one line. OSError is the environment's (a full disk, a permission),
# and its message names the file.
USER_ERRORS: tuple[type[Exception], ...] = (SparsenetError, OSError)


def reports_errors(func: Command) -> Command:
    """Decorator for commands: :data:`USER_ERRORS` -> ``click.ClickException`` (message only, exit 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from None

    return wrapper  # type: ignore[return-value]


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose values come from ``load()`` (a library constant), read on first use."""

    def __init__(self, load: Callable[[], Sequence[str]], metavar: str | None = None) -> None:
        self._load = load  # no fixed choices: see the property
        self._metavar = metavar
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self._load())

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self._metavar or super().get_metavar(param, ctx)


def _constant(module: str, name: str) -> Callable[[], Sequence[str]]:
    """A loader of ``module.name`` (a tuple or dict of names) for :class:`LazyChoice`."""
    return lambda: tuple(getattr(importlib.import_module(module), name))


def _converter_choice(converter: str, option: str) -> LazyChoice:
    """The valid values of ``option`` of the converter registered as ``converter``."""

    def load() -> tuple[str, ...]:
        from sparsenet.converters import get_converter

        return get_converter(converter).choices[option]

    return LazyChoice(load)


def _models() -> list[str]:
    from sparsenet.models import list_models

    return list_models()


DEVICES = LazyChoice(_constant("sparsenet.config", "DEVICES"))
MODELS = LazyChoice(_models, "MODEL")


class CountOrAuto(click.ParamType):
    """``auto`` or a whole number of ``unit`` (processes, threads), at least 1."""

    name = "N|auto"

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def convert(self, value, param, ctx) -> int | str:
        if value == "auto" or (isinstance(value, int) and value >= 1):
            return value
        if str(value).isdigit() and int(value) >= 1:
            return int(value)
        self.fail(f"{value!r} is neither 'auto' nor a whole number of {self.unit} >= 1", param, ctx)


class KeyValue(click.ParamType):
    """``KEY=VALUE``; VALUE is read as JSON when it parses (``l=5``, ``dropout=[0,0.5]``), else as text."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx) -> tuple[str, object]:
        if isinstance(value, tuple):
            return value
        key, sep, text = str(value).partition("=")
        if not sep or not key.isidentifier():
            self.fail(f"{value!r} is not KEY=VALUE with KEY a keyword of the model builder", param, ctx)
        try:
            return key, json.loads(text)
        except json.JSONDecodeError:
            return key, text


def option(*names: str, help: str, **settings: Any) -> Callable[[Command], Command]:
    """``click.option`` with a help text always, and the default shown wherever there is one."""
    settings.setdefault("show_default", settings.get("default") is not None and not settings.get("is_flag", False))
    return click.option(*names, help=help, **settings)


def options(*decorators: Callable[[Command], Command]) -> Callable[[Command], Command]:
    """One decorator applying ``decorators`` (click options) in the order they are listed, top first."""

    def decorate(command: Command) -> Command:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return decorate


MODEL_ARG = option(
    "--model-arg",
    "model_args",
    type=KeyValue(),
    multiple=True,
    help="Keyword for the model builder, e.g. l=5 or 'dropout=[0,0.5]'; repeatable.",
)

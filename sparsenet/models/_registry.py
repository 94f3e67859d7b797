"""Model registry: builders register under a name; :func:`build`, :func:`list_models` and
:func:`parameters` read it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from sparsenet.errors import ConfigError

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a keyword-only builder under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def register(builder: Builder) -> Builder:
        if name in _BUILDERS:
            raise ValueError(
                f"model name {name!r} is already registered by {_BUILDERS[name].__module__}."
                f"{_BUILDERS[name].__qualname__}; registered names: {', '.join(list_models())}"
            )
        _BUILDERS[name] = builder
        return builder

    return register


def list_models() -> list[str]:
    """The registered model names, sorted."""
    return sorted(_BUILDERS)


def parameters(name: str) -> tuple[str, ...]:
    """The keyword arguments the builder registered as ``name`` takes (``ConfigError`` for an unknown name)."""
    return tuple(inspect.signature(_builder(name)).parameters)


def _builder(name: str) -> Callable[..., nn.Module]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid names: {', '.join(list_models())}") from None


def build(name: str, **kwargs: Any) -> nn.Module:
    """Builds the model registered as ``name`` with keyword arguments ``kwargs``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones), an argument the builder
            does not take (the message lists the ones it does), or a value it refuses.
    """
    builder = _builder(name)
    signature = inspect.signature(builder)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        raise ConfigError(
            f"model {name!r}: {error}; it takes {', '.join(signature.parameters) or 'no arguments'}"
        ) from None
    try:
        return builder(**kwargs)
    except ValueError as error:  # builders validate their arguments with ValueError
        raise ConfigError(f"model {name!r}: {error}") from None

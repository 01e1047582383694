"""Registry of model builders: every model is a named builder ``build(*, weights="default", **kw)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from ..errors import InputError
from ..weights import get_weights, load_state_dict

Builder = Callable[..., nn.Module]
_B = TypeVar("_B", bound=Builder)
_M = TypeVar("_M", bound=nn.Module)

_MODELS: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[_B], _B]:
    """Decorator: register ``fn`` as the builder called ``name``. Registering a name twice raises."""

    def deco(fn: _B) -> _B:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    return sorted(_MODELS)


def get_model_builder(name: str) -> Builder:
    try:
        return _MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(list_models())}") from None


def build_model(name: str, **kwargs: object) -> nn.Module:
    return get_model_builder(name)(**kwargs)


def with_weights(model: _M, name: str, weights: str | None) -> _M:
    """``model`` with the declared weights ``name`` (``weights="default"``), another declared name, or none
    (``weights=None``: random, for tests and training), in eval mode."""
    if weights is not None:
        model.load_state_dict(load_state_dict(get_weights(name if weights == "default" else weights)))
    return model.eval()

"""Command-line values converted without pydantic on the common path: a start-up cost, not a feature.

typer (0.2x) converts every parameter of the running command through a pydantic ``TypeAdapter``
built on first use, so every command pays for importing pydantic (with ``importlib.metadata`` for its
plugins) and building the adapters — about 0.1 s on a quiet machine, a third of a cold
``specmusic classify``. :func:`install` gives typer's parameters a lighter converter for the types
specmusic's commands use (str, int, float, bool, Path, Enum choices and lists of them) that handles
the plain values a user types, and hands anything else — a value it does not recognise, one out of
range, a type it does not know — to typer's own pydantic converter, so every accepted value and
every error message is exactly typer's (``tests/cli/test_runtime.py`` checks both for every parameter of
every command). With a typer that lacks these internals, :func:`install` does nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["install", "light_runtime_param"]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
Convert = Callable[[Any, Any, Any], Any]  # (value, param, ctx) -> converted value; raises when unsure


class _Unsure(Exception):
    """Raised by a light converter for a value it leaves to typer's own converter."""


def _number(kind: type, lo: float | None, hi: float | None) -> Convert:
    pattern = _INT if kind is int else _FLOAT

    def convert(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and pattern.fullmatch(value):
            number = kind(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int)):
            number = kind(value)
        else:
            raise _Unsure
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            raise _Unsure  # typer words the range error
        return number

    return convert


def _leaf(annotation: Any, info: Any) -> Convert | None:
    """A converter for one value of ``annotation``, or None to leave the parameter to typer."""
    from typer._param_types import (
        choice_coercion_annotation,
        coerce_cli_choice,
        coerce_cli_path,
        lenient_issubclass,
        routes_to_path,
    )

    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    choice = choice_coercion_annotation(annotation, info)
    if choice is not None:
        choices, case_sensitive = choice
        return lambda value, param, ctx: coerce_cli_choice(value, choices=choices, case_sensitive=case_sensitive, ctx=ctx)
    if annotation is bool:
        def as_bool(value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, bool):
                return value
            raise _Unsure
        return as_bool
    if annotation in (int, float):
        return None if info.clamp else _number(annotation, info.min, info.max)
    if annotation is str:
        def as_str(value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, str):
                return value
            raise _Unsure
        return as_str
    if routes_to_path(annotation, info):
        path_type = info.path_type
        if path_type is None and lenient_issubclass(annotation, Path):
            path_type = annotation
        if path_type is not None and path_type is not str and not lenient_issubclass(path_type, Path):
            return None

        def as_path(value: Any, param: Any, ctx: Any) -> Any:
            if not isinstance(value, (str, Path)):
                raise _Unsure
            if path_type is not None and path_type is not str and not isinstance(value, path_type):
                value = path_type(value)
            return coerce_cli_path(value, info, path_type=path_type, param=param, ctx=ctx)
        return as_path
    return None


def _converter(descriptor: Any) -> Convert | None:
    """A converter for a parameter's whole value (a list for ``list[X]``), or None."""
    from typer._typing import get_args, get_origin

    if descriptor.file_annotation is not None:
        return None
    annotation, info = descriptor.annotation, descriptor.parameter_info
    if get_origin(annotation) is list:
        args = get_args(annotation)
        item = _leaf(args[0], info) if len(args) == 1 else None
        if item is None:
            return None

        def as_list(value: Any, param: Any, ctx: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                raise _Unsure
            return [item(v, param, ctx) for v in value]
        return as_list
    return None if get_origin(annotation) is not None else _leaf(annotation, info)


@functools.cache
def _light_param_class() -> type:
    from typer._coercion import RuntimeParam, build_runtime_param

    @dataclass(frozen=True)
    class LightRuntimeParam(RuntimeParam):
        """Tries ``convert``; anything it is unsure of goes to typer's own (pydantic) converter."""

        descriptor: Any = None
        convert: Convert | None = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value, param, ctx)  # type: ignore[misc]
            except Exception:  # noqa: BLE001 — anything unusual: typer decides, with its own message
                return build_runtime_param(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    return LightRuntimeParam


def light_runtime_param(descriptor: Any) -> Any | None:
    """typer's ``RuntimeParam`` for ``descriptor`` that tries the light converter first, or None when
    the parameter's type is not one it knows (typer's own converter is then used as it is)."""
    convert = _converter(descriptor)
    if convert is None:
        return None
    return _light_param_class()(
        parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor,
        convert=convert,
    )  # fmt: skip


def install() -> bool:
    """Make typer's parameters use :func:`light_runtime_param` (once per process); False when this
    typer has no ``_TyperParameter.get_runtime_param`` to wrap (nothing is changed then)."""
    try:
        from typer.core import _TyperParameter
        from typer._coercion import RuntimeParam  # noqa: F401 — present in the typer this was written for
    except ImportError:
        return False
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None:
        return False
    if getattr(original, "_specmusic_light", False):
        return True

    def get_runtime_param(self: Any) -> Any:
        if getattr(self, "_runtime_param", None) is None:
            light = light_runtime_param(self.type_descriptor)
            if light is not None:
                self._runtime_param = light
        return original(self)

    get_runtime_param._specmusic_light = True  # type: ignore[attr-defined]
    _TyperParameter.get_runtime_param = get_runtime_param  # type: ignore[method-assign]
    return True

"""One base for the frozen config dataclasses: JSON-ready ``to_dict`` and a strict ``from_dict``.

Configs travel inside artifacts (ONNX metadata, checkpoints, ``config.json``, ``.npz`` files). A key
this version does not know means the artifact was written by a newer specmusic (or edited by hand):
every config refuses it the same way, with :class:`~specmusic.errors.ConfigError` naming the keys,
rather than silently dropping a setting that changed the result.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

from specmusic.errors import ConfigError

__all__ = ["ConfigBase"]

C = TypeVar("C", bound="ConfigBase")


class ConfigBase:
    """Mixin for config dataclasses.

    Tuple-valued fields become lists in :meth:`to_dict` (JSON has no tuples) and tuples again in
    :meth:`from_dict`; ``what`` names the config in error messages.
    """

    what: ClassVar[str] = "config"

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-ready (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ConfigError
            ``data`` has keys this version does not know (written by a newer specmusic).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - set(fields)
        if unknown:
            raise ConfigError(
                f"{cls.what} has unknown keys {sorted(unknown)} — it was written by a newer specmusic; "
                "upgrade specmusic (pip install -U specmusic) or recreate the file with this version"
            )
        kwargs = {}
        for name, value in data.items():
            if isinstance(value, list) and "tuple" in str(fields[name].type):
                value = tuple(value)
            kwargs[name] = value
        return cls(**kwargs)

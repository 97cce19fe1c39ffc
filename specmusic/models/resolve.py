"""The ``--model`` grammar of ``classify``, ``embed`` and ``recommend``, read in one place.

``MODEL`` is one of:

* ``mfcc`` — MFCC statistics (``embed`` and ``recommend`` only);
* a pretrained network's name (``jamendo-fcn``, ``pons-msd-musicnn``, …; ``pretrained:NAME`` too);
* a path to a model file (``runs/cnn/model.onnx``; anything that exists or ends in ``.onnx``);
* several names or paths joined by ``+`` (``jamendo-fcn+mtat-musicnn``; ``embed`` and ``recommend``),
  unless a file of that very name exists.

:func:`resolve_model` only parses: it imports no network, reads no file but ``os.path.exists``, and
:meth:`ModelRef.ensure_path` finds (or converts, once) the ONNX file of a named network.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from specmusic.errors import ModelError

__all__ = ["ModelRef", "resolve_model", "known_names"]

Kind = Literal["mfcc", "named", "file", "joined"]


def known_names() -> tuple[str, ...]:
    """Every network a name can pick (the registry of pretrained and bundled networks)."""
    from specmusic.models.zoo import registry

    return registry.network_names()


@dataclass(frozen=True)
class ModelRef:
    """One parsed ``--model`` value.

    ``kind``: ``mfcc`` | ``named`` (``name`` is a registry key) | ``file`` (``path``) | ``joined``
    (``members``, each ``named`` or ``file``). ``text``: the value as the user wrote it.
    """

    kind: Kind
    text: str
    name: str | None = None
    path: Path | None = None
    members: tuple[ModelRef, ...] = ()

    def ensure_path(self, *, weights: str | os.PathLike[str] | None = None, progress: bool | None = None) -> Path:
        """The ONNX file of a ``named`` or ``file`` model (a named one bundled, cached or converted once).

        Raises
        ------
        ModelError
            Not one ONNX model (``mfcc``, ``joined``), or the named network cannot be had.
        """
        if self.kind == "file":
            assert self.path is not None
            return self.path
        if self.kind != "named":
            raise ModelError(f"--model {self.text} is not one model file or network name — name one model")
        from specmusic.models.zoo import ensure

        return ensure.ensure_model(self.name, weights=weights, progress=progress)  # type: ignore[arg-type]


def _one(text: str) -> ModelRef:
    name = text.removeprefix("pretrained:")
    if name.lower().endswith(".onnx") or os.path.exists(name):
        return ModelRef("file", text, path=Path(name))
    try:
        names = known_names()
    except ImportError:  # pragma: no cover - a build without the registry
        raise ModelError("pretrained networks are not available in this build — pass a model.onnx path") from None
    if name not in names:
        raise ModelError(
            f"{name!r} is neither a model file nor a pretrained network — use a model.onnx path, 'mfcc', "
            f"or one of {', '.join(names)} (several joined by '+')"
        )
    return ModelRef("named", text, name=name)


def resolve_model(text: str, *, allow: tuple[Kind, ...] = ("mfcc", "named", "file", "joined")) -> ModelRef:
    """Parse one ``--model`` value.

    Parameters
    ----------
    text : the value as given
    allow : the kinds the command takes (``classify``: ``named`` and ``file``)

    Raises
    ------
    ModelError
        An empty part in a ``+`` join, an unknown name that is no file, or a kind the command does not take.
    """
    text = text.strip()
    if text.lower() == "mfcc":
        ref = ModelRef("mfcc", text)
    elif "+" in text and not os.path.exists(text):
        parts = [part.strip() for part in text.split("+")]
        if not all(parts):
            raise ModelError(
                f"--model {text!r} has an empty part — join model names with '+', e.g. jamendo-fcn+mtat-musicnn"
            )
        ref = ModelRef("joined", text, members=tuple(_one(p) for p in parts))
    else:
        ref = _one(text)
    if ref.kind not in allow:
        what = {"mfcc": "MFCC statistics", "joined": "several models joined by '+'"}.get(ref.kind, ref.kind)
        raise ModelError(f"--model {text}: this command takes no {what} — give one model.onnx or network name")
    return ref

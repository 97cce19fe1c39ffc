"""What made a library's vectors: :class:`ModelDescription`, the ``model`` record every library keeps.

The library formats store it as JSON: the ``model`` array of an ``.npz``, the header line of JSON
Lines, ``index.json`` of a sharded library (:mod:`specmusic.embeddings.store`). This module is its
one reader and writer: :meth:`ModelDescription.from_dict` reads what any version wrote,
:meth:`ModelDescription.to_dict` writes back the very dict it read (keys an older library lacks
stay absent, keys this version does not know are kept in :attr:`ModelDescription.extra`), and a
new embedder's description is the dict written today:

    kind        mfcc | onnx (a model.onnx from `train`) | pretrained (a named network) | concat
                (several ONNX models side by side) | tabular (a CSV searched by `recommend`; never stored)
    name        mfcc-stats-N, a network's name, or the members' names joined by "+"
    path        onnx/pretrained: the model file (absolute), sha256: its digest
    arch, feature_config, chunk_frames          onnx/pretrained: from the model's metadata
    feature_config, duration                    mfcc: the MFCC settings and the seconds read per track
    layer       embedding | probabilities (which output is the vector)
    pooling     mean | meanstd | max (how the windows' vectors become one)
    windows     windows analysed per track, or "all" (absent in libraries from before --windows: all)
    dim         the vector size (null until the first track is embedded)
    adapt       {"groups": G}: packed rows, searched in a space learnt from the library
                (:mod:`specmusic.embeddings.search.adapt`); joined models add "blocks": [d_1, …]
    standardize true: search z-scores the columns (or learns the space) from the library first
    members     concat: one description per model, in order
    columns     tabular: the CSV's feature columns

``adapt`` belongs to the description, not to one kind: a concatenation may carry it as well as
one model does (``embed -m a+b --adapt``: each member records it too, and the concatenation's
``"blocks"``, each model's feature size, tell search where each model's block lies: :attr:`ModelDescription.adapt_blocks`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from specmusic.errors import InputError

__all__ = [
    "DEFAULT_POOLING",
    "KINDS",
    "LAYERS",
    "POOLINGS",
    "Adaptation",
    "ModelDescription",
]

#: What a description's ``kind`` may be.
KINDS = ("mfcc", "onnx", "pretrained", "concat", "tabular")
#: Which output of a model becomes the track vector (``embed --layer``).
LAYERS = ("embedding", "probabilities")
#: How a track's window vectors become one vector (``embed --pooling``).
POOLINGS = ("mean", "meanstd", "max")
DEFAULT_POOLING = "mean"

#: The known keys, in the order :meth:`ModelDescription.to_dict` writes them.
_FIELDS = (
    "kind", "name", "path", "sha256", "arch", "feature_config", "chunk_frames", "layer", "pooling", "windows",
    "dim", "adapt", "standardize", "duration", "members", "columns",
)  # fmt: skip
_ONNX_KEYS = frozenset(
    {"path", "sha256", "arch", "feature_config", "chunk_frames", "layer", "pooling", "windows", "dim"}
)
#: Keys today's embedders write even when their value is null, per kind.
_WRITTEN_NULL = {
    "mfcc": frozenset({"name", "feature_config", "duration", "dim", "standardize"}),
    "onnx": _ONNX_KEYS,
    "pretrained": _ONNX_KEYS,
    "concat": frozenset({"name", "members", "layer", "pooling", "windows", "dim", "standardize"}),
    "tabular": frozenset({"columns"}),
}


@dataclass(frozen=True)
class Adaptation:
    """Packed rows (``{"groups": G}``): each row is a track's mean window feature and ``G - 1``
    within-track contrasts, from which search learns its space (:mod:`specmusic.embeddings.search.adapt`).

    ``blocks`` (joined models only, ``{"groups": G, "blocks": [d_1, d_2]}``): each model's feature
    size, in the row's order; search learns one space per model (:attr:`ModelDescription.adapt_blocks`).
    """

    groups: int
    blocks: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """``{"groups": G}`` (and ``"blocks"`` when there are some), as libraries store it."""
        return {"groups": self.groups, "blocks": list(self.blocks)} if self.blocks else {"groups": self.groups}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Adaptation:
        """Read ``{"groups": G}`` (a missing ``groups`` reads as 0: no packed rows; ``blocks`` as none)."""
        blocks = data.get("blocks") or ()
        return cls(int(data.get("groups", 0)), tuple(int(b) for b in blocks) if isinstance(blocks, list) else ())


@dataclass(eq=True)
class ModelDescription:
    """What made a library's vectors (see the module docstring for each field).

    Mutable: an embedder records ``dim`` once its first track is embedded. Compare recipes with
    :meth:`same_as` (``==`` compares every field, paths and names included).
    """

    kind: str | None = None
    name: str | None = None
    path: str | None = None
    sha256: str | None = None
    arch: str | None = None
    feature_config: dict[str, Any] | None = None
    chunk_frames: int | None = None
    layer: str | None = None
    pooling: str | None = None
    windows: int | str | None = None
    dim: int | None = None
    adapt: Adaptation | None = None
    standardize: bool | None = None
    duration: float | None = None
    members: list[ModelDescription] | None = None
    columns: list[str] | None = None
    #: Keys this version does not know, kept as read and written back.
    extra: dict[str, Any] = field(default_factory=dict)
    # Known keys written even when null: today's writer's for a new description, the read dict's otherwise.
    _nulls: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        self._nulls = _WRITTEN_NULL.get(self.kind or "", frozenset())

    # -- the stored dict --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON object libraries store (a description read by :meth:`from_dict` gives back that dict)."""
        out: dict[str, Any] = {}
        for name in _FIELDS:
            value = getattr(self, name)
            if value is None:
                if name in self._nulls:
                    out[name] = None
                continue
            if isinstance(value, Adaptation):
                value = value.to_dict()
            elif name == "members":
                value = [m.to_dict() for m in value]
            elif isinstance(value, (dict, list)):
                value = type(value)(value)  # a copy: the caller may change it
            out[name] = value
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ModelDescription:
        """Read a library's ``model`` record, of any version (``None`` or ``{}``: an unknown model).

        Raises
        ------
        InputError
            ``data`` is not a JSON object.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise InputError(
                "the library's model record is not a JSON object — recreate the library with `specmusic embed`"
            )
        rest = dict(data)
        known: dict[str, Any] = {}
        for name in _FIELDS:
            if name in rest:
                known[name] = rest.pop(name)
        adapt, members = known.get("adapt"), known.get("members")
        if adapt is not None and not isinstance(adapt, Mapping):
            rest["adapt"] = known.pop("adapt")  # not a shape this version reads: kept as it is
        elif adapt is not None:
            known["adapt"] = Adaptation.from_dict(adapt)
        if members is not None and not (isinstance(members, list) and all(isinstance(m, Mapping) for m in members)):
            rest["members"] = known.pop("members")
        elif members is not None:
            known["members"] = [cls.from_dict(m) for m in members]
        out = cls(**known, extra=rest)
        out._nulls = frozenset(name for name in _FIELDS if name in data and data[name] is None)
        return out

    def copy(self) -> ModelDescription:
        """An independent copy (members and settings included) that writes the same dict."""
        return ModelDescription.from_dict(self.to_dict())

    def with_dim(self, dim: int) -> ModelDescription:
        """A copy recording the vector size ``dim``."""
        out = self.copy()
        out.dim = int(dim)
        return out

    # -- what the record says ---------------------------------------------------------------
    @property
    def recorded(self) -> bool:
        """Whether the library says anything of its model (JSON Lines without a header does not)."""
        return bool(self.to_dict())

    @property
    def adapt_groups(self) -> int:
        """``G`` when the rows are packed for a learnt space (:class:`Adaptation`), else 0."""
        return 0 if self.adapt is None else self.adapt.groups

    @property
    def adapt_blocks(self) -> tuple[int, ...]:
        """Joined models' packed rows: each model's feature size, in the row's order (search learns one
        space per model); ``()`` otherwise."""
        return () if self.adapt is None or len(self.adapt.blocks) < 2 else self.adapt.blocks

    @property
    def label(self) -> str:
        """The model as a user names it to ``--model``: ``mfcc``, a network's name (or ``A+B``), a model
        file; followed by `` --adapt`` for packed rows, so that the words are the recipe to type again
        (a model's packing is on by default only while it is ``embed``'s default)."""
        if self.kind == "mfcc":
            return "mfcc"
        name = str(self.name or self.path or self.kind or "another model")
        return f"{name} --adapt" if self.adapt_groups else name

    def same_as(self, other: ModelDescription) -> bool:
        """Whether two descriptions name the same embedding: the same models (by sha256), layer, pooling,
        windows per track (a library from before ``--windows`` analysed every window) and packing."""
        if self.kind != other.kind:
            return False
        if self.kind == "mfcc":
            return self.feature_config == other.feature_config and self.duration == other.duration
        if self.kind == "concat":
            mine, theirs = self.members or [], other.members or []
            return (
                bool(mine) and len(mine) == len(theirs) and all(a.same_as(b) for a, b in zip(mine, theirs, strict=True))
                and self.adapt_groups == other.adapt_groups
            )  # fmt: skip
        return (
            bool(self.sha256)
            and self.sha256 == other.sha256
            and (self.layer or "embedding") == (other.layer or "embedding")
            and (self.pooling or DEFAULT_POOLING) == (other.pooling or DEFAULT_POOLING)
            and self._windows == other._windows
            and self.adapt_groups == other.adapt_groups
        )

    @property
    def _windows(self) -> int | str:
        return self.windows if self.windows is not None else "all"

"""Embedders: one audio file → one vector (and, from a model with labels, its top tags).

Embedding sources (:func:`make_embedder`):

* ``"mfcc"``: mean and standard deviation over time of 20 MFCCs (numpy only, no model); the
  library records ``"standardize": true`` so that ``recommend`` z-scores its columns first.
* a ``model.onnx`` path (specmusic model contract): the track's pooled ``embedding`` output, via
  :mod:`specmusic.inference`.
* a pretrained tagger name (``mtat-musicnn``…): that tagger's pooled penultimate features.
* several of those joined by ``+`` (``jamendo-fcn+mtat-musicnn``): :class:`ConcatEmbedder`, one
  block per model, each block L2-normalised, blocks concatenated; the library records
  ``"standardize": true`` so that search z-scores the columns with the library's own statistics.
* ``None``: :data:`DEFAULT_EMBEDDING` (EfficientAT mn04 and Pons' MSD MusiCNN, joined) with
  ``adapt`` (:data:`DEFAULT_ADAPT`): each network's part of a row keeps the track's mean window
  feature and a few within-track contrasts, and search learns a space per network from the library
  itself without labels (:mod:`specmusic.embeddings.search.adapt`); chosen by
  ``benchmarks/similarity_generalise.py`` on three collections (docs/similarity.md).
* ``adapt`` with one model or several (``-m a+b --adapt``): packed rows, as above.

A model's per-window vectors become one track vector by :func:`pool_windows` (``pooling``:
``mean``, the default, ``meanstd`` or ``max``).

Each embedder records what it is in :attr:`Embedder.description` (a
:class:`~specmusic.embeddings.description.ModelDescription`, the library's ``model``), from which
:func:`embedder_from_description` builds it again to embed a query the same way.

An ONNX model also yields the track's :data:`~specmusic.embeddings.records.TOP_TAGS` most probable
labels (a tagger's tags, a trained model's classes) from the same pass of the network;
``recommend --explain`` names the tags two tracks share.

:meth:`Embedder.embed_file_tagged` also fills ``warnings`` with a line for each reason not to trust
the vector (digital silence, samples far beyond full scale, a clip shorter than the model's window:
:func:`specmusic.audio.signal_warnings`); ``embed`` prints them and keeps them in the library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from specmusic.embeddings.description import DEFAULT_POOLING, LAYERS, POOLINGS, Adaptation, ModelDescription
from specmusic.embeddings.records import Tags, top_tags
from specmusic.embeddings.search.adapt import GROUPS, join_packed, pack_windows
from specmusic.errors import ConfigError, ModelError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, sha256_file
from specmusic.models.resolve import ModelRef, resolve_model
from specmusic.windowing import DEFAULT_WINDOWS

if TYPE_CHECKING:
    from specmusic.inference.analysis import TrackAnalysis

__all__ = [
    "DEFAULT_LAYER",
    "DEFAULT_ADAPT",
    "DEFAULT_EMBEDDING",
    "Embedder",
    "MfccEmbedder",
    "OnnxEmbedder",
    "ConcatEmbedder",
    "make_embedder",
    "embedder_from_description",
    "mfcc_statistics",
    "pool_windows",
    "concat_blocks",
]

#: Which output of a model becomes the track vector when ``--layer`` is not given.
DEFAULT_LAYER = {"pretrained": "embedding", "onnx": "embedding"}
#: What ``embed`` makes without ``--model``: these networks' penultimate features, joined, each packed
#: for a space learnt from the library (``adapt``, :mod:`specmusic.embeddings.search.adapt`); the first
#: gives the library's tags. Chosen by benchmarks/similarity_generalise.py on three collections
#: (docs/similarity.md); before it, ``("pons-msd-musicnn",)`` with adapt. ``audioset-mn04`` is
#: EfficientAT mn04 (AudioSet), bundled by the zoo.
DEFAULT_EMBEDDING: tuple[str, ...] = ("audioset-mn04", "pons-msd-musicnn")
#: Whether the default recipe packs its rows for the learnt space (``embed`` without ``--model``
#: and without ``--no-adapt``; also when DEFAULT_EMBEDDING's models are named, in that order).
DEFAULT_ADAPT = True


def mfcc_statistics(features: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of each MFCC.

    Parameters
    ----------
    features : np.ndarray [shape=(n_mfcc, n_frames)]

    Returns
    -------
    np.ndarray [shape=(2 * n_mfcc,)], float32, not normalised
    """
    f = np.asarray(features, dtype=np.float64)
    return np.concatenate([f.mean(axis=1), f.std(axis=1)]).astype(np.float32)


def pool_windows(windows: np.ndarray, pooling: str = "mean") -> np.ndarray:
    """Pool a track's per-window vectors into one.

    Parameters
    ----------
    windows : np.ndarray [shape=(n_windows, dim)]
    pooling : ``mean``; ``meanstd`` (mean, then the standard deviation over windows: what changes
        along the track; zeros for a one-window track); ``max`` (each feature's largest value)

    Returns
    -------
    np.ndarray [shape=(dim,) or (2 * dim,) for meanstd], float32, not normalised

    Raises
    ------
    ConfigError
        Unknown ``pooling``.
    """
    w = np.asarray(windows, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] == 0:
        raise ConfigError(f"expected window vectors of shape (n_windows>0, dim), got {w.shape}")
    if pooling == "mean":
        out = w.mean(axis=0)
    elif pooling == "meanstd":
        out = np.concatenate([w.mean(axis=0), w.std(axis=0)])
    elif pooling == "max":
        out = w.max(axis=0)
    else:
        raise ConfigError(f"unknown pooling {pooling!r} — use one of {', '.join(POOLINGS)}")
    return out.astype(np.float32)


def concat_blocks(blocks: list[np.ndarray]) -> np.ndarray:
    """Each block L2-normalised, then concatenated (so each model's vector weighs the same).

    Parameters
    ----------
    blocks : one np.ndarray [shape=(dim_b,)] per model

    Returns
    -------
    np.ndarray [shape=(sum of dim_b,)], float32, norm sqrt(number of non-zero blocks)
    """
    parts = []
    for b in blocks:
        b = np.asarray(b, dtype=np.float64).reshape(-1)
        norm = float(np.linalg.norm(b))
        parts.append(b / norm if norm > 0 else b)
    return np.concatenate(parts).astype(np.float32)


class Embedder:
    """Turns one audio file into one vector; ``description`` goes into the library's ``model``."""

    description: ModelDescription

    def embed_file(self, path: str) -> np.ndarray:  # pragma: no cover - interface
        """Return the track's vector [shape=(dim,)], not necessarily normalised."""
        raise NotImplementedError

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        """The track's vector and its top tags (``None``: this embedder has no labels).

        ``warnings`` (when given) receives one line per reason not to trust the vector.
        """
        return self.embed_file(path), None


class MfccEmbedder(Embedder):
    """Model-free: mean + std of MFCCs (``specmusic.features``, kind ``mfcc``)."""

    def __init__(self, config: FeatureConfig | None = None, *, duration: float | None = None) -> None:
        self.config = config or FeatureConfig(kind="mfcc", n_mfcc=20)
        if self.config.kind != "mfcc":
            raise ConfigError(f"MFCC embedding needs kind='mfcc', got {self.config.kind!r} — fix the config")
        self.duration = duration
        self.description = ModelDescription(
            kind="mfcc", name=f"mfcc-stats-{self.config.n_mfcc}", feature_config=self.config.to_dict(),
            duration=duration, dim=2 * self.config.n_mfcc, standardize=True,
        )  # fmt: skip

    def embed_file(self, path: str) -> np.ndarray:
        return self.embed_file_tagged(path)[0]

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        """MFCC statistics (no tags); ``warnings`` gets silence and mis-scaling lines."""
        from specmusic.audio import PeakMeter, signal_warnings, stream_audio
        from specmusic.errors import AudioError
        from specmusic.features import compute_features_stream

        sr = self.config.sample_rate
        meter = PeakMeter(stream_audio(path, sr=sr, mono=True, duration=self.duration))
        features, n = compute_features_stream(meter, self.config)
        if n == 0:
            raise AudioError(f"{display_path(path)}: contains no audio samples — check the file")
        if warnings is not None:
            warnings += signal_warnings(display_path(path), peak=meter.peak, seconds=n / sr)
        return mfcc_statistics(features), None


class OnnxEmbedder(Embedder):
    """A track vector from a specmusic ONNX model (via :mod:`specmusic.inference`).

    ``layer="embedding"``: the pooled penultimate features (the model's ``embedding`` output);
    ``layer="probabilities"``: the track's class/tag probabilities (for a pretrained tagger, its
    50 tags: a semantic space learnt from other labels than yours). ``pooling``: how the vectors of
    the analysed windows become one (:func:`pool_windows`); ``mean`` is L2-normalised per model.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        kind: str = "onnx",
        sha256: str | None = None,
        layer: str = "embedding",
        windows: int | None = DEFAULT_WINDOWS,
        pooling: str = DEFAULT_POOLING,
        threads: int | None = None,
        adapt: int = 0,
    ) -> None:
        from specmusic import inference

        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r} — use one of {', '.join(LAYERS)}")
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r} — use one of {', '.join(POOLINGS)}")
        if adapt and (layer != "embedding" or pooling != "mean"):
            raise ConfigError("--adapt learns its space from the mean of the windows' features — "
                              "leave --layer and --pooling at their defaults, or pass --no-adapt")  # fmt: skip
        self.layer, self.pooling, self.adapt = layer, pooling, adapt
        self.windows = windows  # evenly spread windows analysed per track (None: all); see inference.analyse_track
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{display_path(self.path)}: no such model — check --model (a model.onnx from `specmusic train`)")
        self.model = inference.load_model(self.path, threads=threads)  # None: all cores; 1 in worker processes
        self._inference = inference
        meta = _model_metadata(self.model)
        self.description = ModelDescription(
            kind=kind, path=str(self.path.resolve()), sha256=sha256 or sha256_file(self.path), arch=meta.get("arch"),
            feature_config=meta.get("feature_config"), chunk_frames=meta.get("chunk_frames"), layer=layer,
            pooling=pooling, windows="all" if windows is None else windows, dim=None,
        )  # fmt: skip
        if adapt:  # packed rows; search learns its space from the library ("standardize")
            self.description.adapt = Adaptation(int(adapt))
            self.description.standardize = True

    @property
    def feature_size(self) -> int:
        """The size of one window's ``embedding`` output (``adapt`` packs ``G`` times as many values).

        Raises
        ------
        ModelError
            The model declares no fixed size and one window of zeros cannot be run through it.
        """
        session = self.model.session
        for out in session.get_outputs():
            if out.name == "embedding" and isinstance(out.shape[-1], int) and out.shape[-1] > 0:
                return int(out.shape[-1])
        shape = [1 if not isinstance(n, int) else n for n in session.get_inputs()[0].shape]
        try:
            return int(np.asarray(session.run(["embedding"], {"spec": np.zeros(shape, np.float32)})[0]).shape[-1])
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelError(f"{display_path(self.path)}: cannot tell the size of its embedding ({exc}) — "
                             "re-export the model with a fixed embedding size")  # fmt: skip

    def _keep(self, vec: np.ndarray) -> np.ndarray:
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        if self.description.dim is None:
            self.description.dim = int(vec.shape[0])
        return vec

    def embed_file(self, path: str) -> np.ndarray:
        return self.embed_file_tagged(path)[0]

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        """Vector and top tags from one pass of the network; ``warnings`` as :func:`inference.track_features`."""
        result = self._inference.analyse_track(
            self.model, path, windows=self.windows, outputs=("logits", "embedding"), warnings=warnings
        )
        return self.vector_from_analysis(result)

    def vector_from_analysis(self, result: TrackAnalysis) -> tuple[np.ndarray, Tags]:
        """The track's vector and top tags from the network's outputs over its windows.

        Parameters
        ----------
        result : :func:`specmusic.inference.analyse_track` of this model with ``outputs=("logits",
            "embedding")`` and this embedder's ``windows`` (its ``per_window`` outputs included)

        Returns
        -------
        vector : np.ndarray [shape=(dim,)], float32, as :meth:`embed_file_tagged` gives it
        tags : the track's top labels
        """
        inf = self._inference
        probs = result.probabilities
        assert probs is not None and result.embedding is not None
        if self.adapt:
            vec = pack_windows(result.per_window["embedding"], self.adapt)
        elif self.pooling == "mean":
            vec = probs if self.layer == "probabilities" else result.embedding
        elif self.layer == "probabilities":
            vec = pool_windows(inf.probabilities_from_logits(result.per_window["logits"], self.model.task), self.pooling)
        else:
            vec = pool_windows(result.per_window["embedding"], self.pooling)
        return self._keep(vec), top_tags(probs, list(self.model.labels))


class ConcatEmbedder(Embedder):
    """Several ONNX models side by side: each model's track vector is one block.

    Plain vectors (:func:`concat_blocks`): each block is L2-normalised, so every model weighs the
    same whatever the scale of its features; the library records ``"standardize": true``, so search
    z-scores each column with the library's own statistics first
    (:func:`specmusic.embeddings.search_vectors`: no labels, and nothing fixed in advance, so adding
    tracks never needs the old ones embedded again).

    Packed rows (members made with ``adapt``, ``--adapt``): each model packs its own windows
    (:func:`~specmusic.embeddings.search.adapt.pack_windows`) and :func:`~specmusic.embeddings.search.adapt.join_packed`
    lays the blocks out as one packed row (every model's mean, then every model's contrasts), so
    search learns one space from the joined features, as for one model; the library records
    ``"adapt"`` on the concatenation and on each member. The library's tags are the first model's.

    Raises
    ------
    ConfigError
        Fewer than two models, or members packed differently.
    """

    def __init__(self, members: list[OnnxEmbedder], *, name: str | None = None) -> None:
        if len(members) < 2:
            raise ConfigError("a concatenation needs at least two models — name one model on its own instead")
        if len({m.adapt for m in members}) > 1:
            raise ConfigError("the models of a concatenation must all be packed (--adapt) or none — re-embed the library")
        self.members = members
        self.adapt = members[0].adapt
        first = members[0]
        self.description = ModelDescription(
            kind="concat", name=name or "+".join(str(m.description.name or m.path.name) for m in members),
            members=[m.description for m in members],  # the same objects: each member records its dim
            layer=first.layer, pooling=first.pooling, windows=first.description.windows, dim=None, standardize=True,
        )  # fmt: skip
        if self.adapt:  # where each model's block lies in the joined rows: search learns a space per model
            self.description.adapt = Adaptation(int(self.adapt), tuple(m.feature_size for m in members))

    def embed_file(self, path: str) -> np.ndarray:
        return self.embed_file_tagged(path)[0]

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        """The blocks of every model, joined, and the first model's top tags (``warnings``: its lines)."""
        blocks, tags = [], None
        for i, member in enumerate(self.members):
            vec, member_tags = member.embed_file_tagged(path, warnings=warnings if i == 0 else None)
            blocks.append(vec)
            tags = member_tags if i == 0 else tags
        return self.join(blocks), tags

    def join(self, blocks: list[np.ndarray]) -> np.ndarray:
        """One track's vector from its members' vectors, in member order.

        Parameters
        ----------
        blocks : each member's vector of the track [shape=(dim_m,)] (packed rows when ``adapt``)

        Returns
        -------
        np.ndarray [shape=(sum of dim_m,)], float32: :func:`concat_blocks`, or for packed rows
        :func:`~specmusic.embeddings.search.adapt.join_packed`
        """
        if self.adapt:
            sizes = tuple(int(np.asarray(b).size) // self.adapt for b in blocks)
            if self.description.adapt is not None and sizes != self.description.adapt.blocks:
                raise ModelError(f"the joined models gave blocks of {sizes} features, not the {self.description.adapt.blocks} "
                                 "the library records — re-embed the library")  # fmt: skip
        vec = join_packed(blocks, self.adapt) if self.adapt else concat_blocks(blocks)
        if self.description.dim is None:
            self.description.dim = int(vec.shape[0])
        return vec


def _model_metadata(model: Any) -> dict[str, Any]:
    """The ``specmusic`` metadata of a loaded model, whatever shape inference.load_model returns."""
    for attr in ("metadata", "meta", "info"):
        meta = getattr(model, attr, None)
        if isinstance(meta, dict):
            return meta
        if meta is not None and hasattr(meta, "__dict__"):
            out = dict(vars(meta))
            fc = out.get("feature_config")
            if hasattr(fc, "to_dict"):
                out["feature_config"] = fc.to_dict()
            return out
    return {}


def make_embedder(
    model: str | None,
    *,
    duration: float | None = None,
    weights: str | None = None,
    progress: bool | None = None,
    layer: str | None = None,
    windows: int | None = DEFAULT_WINDOWS,
    pooling: str | None = None,
    adapt: bool | None = None,
) -> Embedder:
    """The embedder named by ``--model``.

    Parameters
    ----------
    model : ``"mfcc"``; a ``.onnx`` path; a pretrained tagger name (``msd-fcn``, ``mtat-musicnn``…,
        optionally ``pretrained:NAME``); several names or paths joined by ``+``
        (:class:`ConcatEmbedder`); or ``None``: :data:`DEFAULT_EMBEDDING`
    duration : MFCC only: seconds read per track
    weights : pretrained taggers: a local checkpoint file or folder (see ``specmusic.models.zoo``)
    layer : ``embedding`` | ``probabilities`` (ONNX models); default :data:`DEFAULT_LAYER` for
        pretrained taggers, ``embedding`` for trained models
    windows : ONNX models: evenly spread windows analysed per track at most (None: all)
    pooling : ONNX models: ``mean`` (default) | ``meanstd`` | ``max`` over the windows (:func:`pool_windows`)
    adapt : ONNX models, one or joined: store packed rows so that search learns a space from the
        library (:mod:`specmusic.embeddings.search.adapt`); default (None): :data:`DEFAULT_ADAPT` for
        the default recipe (:data:`DEFAULT_EMBEDDING`, named or not) with the default layer and
        pooling, off otherwise

    Raises
    ------
    ModelError
        The model is missing or unusable.
    ConfigError
        An unknown layer or pooling, or a pooling other than ``mean`` for MFCC statistics.
    """
    ref = resolve_model(model) if model is not None else None
    if ref is not None and ref.kind == "mfcc":
        if pooling not in (None, DEFAULT_POOLING):
            raise ConfigError("--pooling applies to ONNX models; MFCC statistics are already mean and std over time")
        if adapt:
            raise ConfigError("--adapt applies to ONNX models; MFCC statistics have no windows")
        return MfccEmbedder(duration=duration)
    opts = {"weights": weights, "progress": progress, "layer": layer, "windows": windows, "pooling": pooling or DEFAULT_POOLING}
    if adapt is None:  # on for the default recipe (its models named or not), with the default layer and pooling
        adapt = (DEFAULT_ADAPT and (ref is None or _network_names(ref) == DEFAULT_EMBEDDING)
                 and layer in (None, "embedding") and pooling in (None, DEFAULT_POOLING))  # fmt: skip
    if ref is None:
        ref = resolve_model("+".join(DEFAULT_EMBEDDING))
    packed = GROUPS if adapt else 0
    if ref.kind == "joined":
        return ConcatEmbedder([_onnx_embedder(m, **opts, adapt=packed) for m in ref.members])  # type: ignore[arg-type]
    return _onnx_embedder(ref, **opts, adapt=packed)  # type: ignore[arg-type]


def _network_names(ref: ModelRef) -> tuple[str | None, ...]:
    """The network names a ``--model`` value joins (``None`` for a model file)."""
    return tuple(m.name for m in ref.members) if ref.kind == "joined" else (ref.name,)


def _onnx_embedder(
    ref: ModelRef, *, weights: str | None, progress: bool | None, layer: str | None, windows: int | None, pooling: str,
    adapt: int = 0,
) -> OnnxEmbedder:
    """One ONNX model: a pretrained network (by name) or a ``.onnx`` file."""
    path = ref.ensure_path(weights=weights, progress=progress)
    if ref.kind == "named":
        emb = OnnxEmbedder(
            path, kind="pretrained", layer=layer or DEFAULT_LAYER["pretrained"], windows=windows, pooling=pooling,
            adapt=adapt,
        )  # fmt: skip
        emb.description.name = ref.name
        return emb
    return OnnxEmbedder(path, layer=layer or DEFAULT_LAYER["onnx"], windows=windows, pooling=pooling, adapt=adapt)


def embedder_from_description(model: ModelDescription, *, threads: int | None = None) -> Embedder:
    """Rebuild the embedder that made a library, to embed a new query the same way.

    Parameters
    ----------
    model : the library's model
    threads : onnxruntime threads per model (None: all cores; 1 in worker processes)

    Raises
    ------
    ModelError
        The library does not say how it was made, the model file is gone, or it changed.
    """
    if model.kind == "mfcc":
        return MfccEmbedder(FeatureConfig.from_dict(model.feature_config or {}), duration=model.duration)
    if model.kind in ("onnx", "pretrained"):
        return _onnx_from_description(model, threads)
    if model.kind == "concat" and model.members is not None:
        members = [_onnx_from_description(m, threads, adapt=model.adapt_groups) for m in model.members]
        return ConcatEmbedder(members, name=model.name)
    raise ModelError(
        "the library does not record which model made it (e.g. JSON Lines without a header) — "
        "pass --model to embed the query, or query by an id in the library"
    )


def _onnx_from_description(model: ModelDescription, threads: int | None = None, adapt: int | None = None) -> OnnxEmbedder:
    """One model of a library (``adapt``: a joined library's packing, which its members share)."""
    path = model.path
    if not path or not os.path.isfile(path):
        raise ModelError(
            f"the library's model {path!r} is not there any more — pass --model with the same model.onnx"
        )
    sha = sha256_file(path)
    if model.sha256 and sha != model.sha256:
        raise ModelError(
            f"{display_path(path)} changed since the library was embedded (sha256 differs) — re-embed the library"
        )
    windows = model.windows if model.windows is not None else "all"  # libraries from before --windows: every window
    emb = OnnxEmbedder(path, kind=model.kind or "onnx", sha256=sha, layer=model.layer or "embedding",
                       windows=None if windows == "all" else int(windows),
                       pooling=model.pooling or DEFAULT_POOLING, threads=threads,
                       adapt=model.adapt_groups if adapt is None else adapt)  # fmt: skip
    if model.name:
        emb.description.name = model.name
    return emb

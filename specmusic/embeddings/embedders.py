"""Embedders: one audio file → one vector (and, from a model with labels, its top tags).

Embedding sources (:func:`make_embedder`):

* ``"mfcc"``: mean and standard deviation over time of 20 MFCCs (numpy only, no model); the
  library records ``"standardize": true`` so that ``recommend`` z-scores its columns first.
* a ``model.onnx`` path (specmusic model contract): the track's pooled ``embedding`` output, via
  :mod:`specmusic.inference`.
* ``None``: the default pretrained tagger (:func:`specmusic.models.pretrained.ensure_default_model`).

An ONNX model also yields the track's :data:`TOP_TAGS` most probable labels (a tagger's tags, a
trained model's classes) from the same pass of the network; ``recommend --explain`` names the
tags two tracks share.

:meth:`Embedder.embed_file_tagged` also fills ``warnings`` with a line for each reason not to trust
the vector (digital silence, samples far beyond full scale, a clip shorter than the model's window:
:func:`specmusic.audio.signal_warnings`); ``embed`` prints them and keeps them in the library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.library import Tags
from specmusic.errors import ConfigError, ModelError
from specmusic.features import FeatureConfig
from specmusic.fileio import display_path, sha256_file

__all__ = [
    "LAYERS",
    "DEFAULT_LAYER",
    "TOP_TAGS",
    "Embedder",
    "MfccEmbedder",
    "OnnxEmbedder",
    "make_embedder",
    "embedder_from_description",
    "mfcc_statistics",
    "same_model",
    "top_tags",
]

LAYERS = ("embedding", "probabilities")
#: Which output of a model becomes the track vector when ``--layer`` is not given.
DEFAULT_LAYER = {"pretrained": "embedding", "onnx": "embedding"}
#: Labels kept per track in a library (the most probable first).
TOP_TAGS = 10


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


#: How a track's window vectors become one vector (``embed --pooling``).
POOLINGS = ("mean", "meanstd", "max")


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


def top_tags(probabilities: np.ndarray, labels: list[str], n: int = TOP_TAGS) -> Tags:
    """The ``n`` most probable labels, best first: ``{"rock": 0.62, ...}`` (4 decimals).

    Parameters
    ----------
    probabilities : np.ndarray [shape=(n_classes,)], in ``labels`` order
    """
    p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    order = np.argsort(-p, kind="stable")[:n]
    return {labels[i]: round(float(p[i]), 4) for i in order}


class Embedder:
    """Turns one audio file into one vector; ``description`` goes into the library's ``model``."""

    description: dict[str, Any]

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
        self.description = {
            "kind": "mfcc",
            "name": f"mfcc-stats-{self.config.n_mfcc}",
            "feature_config": self.config.to_dict(),
            "duration": duration,
            "dim": 2 * self.config.n_mfcc,
            "standardize": True,
        }

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
    50 tags: a semantic space learnt from other labels than yours).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        kind: str = "onnx",
        sha256: str | None = None,
        layer: str = "embedding",
    ) -> None:
        from specmusic import inference

        if layer not in LAYERS:
            raise ConfigError(f"unknown layer {layer!r} — use one of {', '.join(LAYERS)}")
        self.layer = layer
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{display_path(self.path)}: no such model — check --model (a model.onnx from `specmusic train`)")
        self.model = inference.load_model(self.path)
        self._inference = inference
        meta = _model_metadata(self.model)
        self.description = {
            "kind": kind,
            "path": str(self.path.resolve()),
            "sha256": sha256 or sha256_file(self.path),
            "arch": meta.get("arch"),
            "feature_config": meta.get("feature_config"),
            "chunk_frames": meta.get("chunk_frames"),
            "layer": layer,
            "dim": None,
        }

    def _keep(self, vec: np.ndarray) -> np.ndarray:
        vec = np.asarray(vec, dtype=np.float32).reshape(-1)
        if self.description.get("dim") is None:
            self.description["dim"] = int(vec.shape[0])
        return vec

    def embed_file(self, path: str) -> np.ndarray:
        run = self._inference.predict_track if self.layer == "probabilities" else self._inference.embed_track
        return self._keep(run(self.model, path))

    def embed_file_tagged(self, path: str, *, warnings: list[str] | None = None) -> tuple[np.ndarray, Tags | None]:
        """Vector and top tags from one pass of the network; ``warnings`` as :func:`inference.track_features`."""
        spec, _ = self._inference.track_features(self.model, path, warnings=warnings)
        emb, probs = self._inference.embed_and_predict_track(self.model, spec)
        vec = self._keep(probs if self.layer == "probabilities" else emb)
        return vec, top_tags(probs, list(self.model.labels))


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
) -> Embedder:
    """The embedder named by ``--model``.

    Parameters
    ----------
    model : ``"mfcc"``; a ``.onnx`` path; a pretrained tagger name (``msd-fcn``, ``mtat-musicnn``…,
        optionally ``pretrained:NAME``); or ``None``: the default pretrained tagger
    duration : MFCC only: seconds read per track
    weights : pretrained taggers: a local checkpoint file or folder (see ``specmusic.models.pretrained``)
    layer : ``embedding`` | ``probabilities`` (ONNX models); default :data:`DEFAULT_LAYER` for
        pretrained taggers, ``embedding`` for trained models

    Raises
    ------
    ModelError
        The model is missing or unusable.
    """
    if model is not None and model.lower() == "mfcc":
        return MfccEmbedder(duration=duration)
    name = model[len("pretrained:") :] if model is not None and model.startswith("pretrained:") else model
    if name is None or (not name.lower().endswith(".onnx") and not os.path.exists(name)):
        try:
            from specmusic.models import pretrained
        except ImportError:
            raise ModelError(
                "pretrained taggers are not available in this build — pass --model mfcc or --model model.onnx"
            ) from None
        if name is not None and name not in pretrained.TAGGERS:
            raise ModelError(
                f"{name!r} is neither a model file nor a pretrained tagger — use a model.onnx path, 'mfcc', "
                f"or one of {', '.join(pretrained.TAGGERS)}"
            )
        path = pretrained.ensure_model(name or pretrained.DEFAULT_TAGGER, weights=weights, progress=progress)
        emb = OnnxEmbedder(path, kind="pretrained", layer=layer or DEFAULT_LAYER["pretrained"])
        emb.description["name"] = name or pretrained.DEFAULT_TAGGER
        return emb
    return OnnxEmbedder(name, layer=layer or DEFAULT_LAYER["onnx"])


def embedder_from_description(model: dict[str, Any]) -> Embedder:
    """Rebuild the embedder that made a library, to embed a new query the same way.

    Raises
    ------
    ModelError
        The library does not say how it was made, the model file is gone, or it changed.
    """
    kind = model.get("kind")
    if kind == "mfcc":
        return MfccEmbedder(FeatureConfig.from_dict(model["feature_config"]), duration=model.get("duration"))
    if kind in ("onnx", "pretrained"):
        path = model.get("path")
        if not path or not os.path.isfile(path):
            raise ModelError(
                f"the library's model {path!r} is not there any more — pass --model with the same model.onnx"
            )
        sha = sha256_file(path)
        if model.get("sha256") and sha != model["sha256"]:
            raise ModelError(
                f"{display_path(path)} changed since the library was embedded (sha256 differs) — re-embed the library"
            )
        return OnnxEmbedder(path, kind=kind, sha256=sha, layer=model.get("layer") or "embedding")
    raise ModelError(
        "the library does not record which model made it (e.g. JSON Lines without a header) — "
        "pass --model to embed the query, or query by an id in the library"
    )


def same_model(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two library ``model`` descriptions name the same embedding."""
    if a.get("kind") != b.get("kind"):
        return False
    if a.get("kind") == "mfcc":
        return a.get("feature_config") == b.get("feature_config") and a.get("duration") == b.get("duration")
    return (
        bool(a.get("sha256"))
        and a.get("sha256") == b.get("sha256")
        and (a.get("layer") or "embedding") == (b.get("layer") or "embedding")
    )

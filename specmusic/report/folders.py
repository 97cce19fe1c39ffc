"""Report builders for the outputs that are folders: ``spectro``, ``train``, ``nmf``, ``generate sample``.

Each ``build_<kind>(path, media)`` reads only what the command wrote (manifests, JSON, arrays,
pictures) and returns a :class:`~specmusic.report.kinds.Report`: ``head`` for the first page,
``items`` (one per track, clip, part or sample) for the paged listing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.report.kinds import Report
from specmusic.report.media import Media, resolve_audio
from specmusic.specfile import ERRORS_NAME, MANIFEST_NAME, load_spectrogram, read_spectro_manifest

__all__ = ["build_generate", "build_nmf", "build_spectro", "build_train", "read_json", "read_jsonl"]


def read_json(path: Path) -> Any:
    """A JSON file a command wrote; a one-line error naming it when it is unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{display_path(path)}: cannot read ({exc}) — rerun the command that wrote it") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON Lines file (lines that do not parse are skipped); [] when it is missing."""
    rows: list[dict[str, Any]] = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        value = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(value, dict):
                        rows.append(value)
    except FileNotFoundError:
        pass
    return rows


def _folder(path: Path) -> Path:
    return path if path.is_dir() else path.parent


def _picture(media: Media, png: Path) -> str | None:
    return media.picture(png) if png.is_file() else None


def _image(src: str | None, *, thumb: bool) -> dict[str, Any] | None:
    """A listed item's picture: a thumbnail drawn here (stretched to the card) or a command's plot (as drawn)."""
    return {"src": src, "thumb": thumb} if src else None


# -- spectro --------------------------------------------------------------------------------
def build_spectro(path: Path, media: Media, limit: int) -> Report:
    """A gallery: per array its picture (the ``--png`` one, else a thumbnail), label, shape and player."""
    folder = _folder(path)
    records = read_spectro_manifest(folder)
    items = []
    for r in records:
        npz = folder / r["path"]
        image = _image(_picture(media, npz.with_suffix(".png")), thumb=False)
        if image is None and npz.is_file():
            try:
                spec, _ = load_spectrogram(npz)
                image = _image(media.thumbnail(spec, f"npz:{os.path.abspath(npz)}"), thumb=True)
            except InputError:
                image = None
        audio = resolve_audio(str(r.get("source", "")), [folder]) if r.get("source") else None
        items.append({
            "name": display_path(r["path"]), "label": r.get("label"), "duration": r.get("duration"),
            "shape": "×".join(str(s) for s in r.get("shape", [])), "kind": r.get("kind"), "image": image,
            "audio": media.audio(audio), "source": display_path(r.get("source") or ""),
        })
    errors = read_jsonl(folder / ERRORS_NAME)
    labels: dict[str, int] = {}
    for r in records:
        labels[str(r.get("label") or "(none)")] = labels.get(str(r.get("label") or "(none)"), 0) + 1
    head = {
        "count": len(records), "labels": sorted(labels.items()),
        "kinds": sorted({str(r.get("kind")) for r in records}),
        "seconds": round(sum(float(r.get("duration") or 0) for r in records), 1),
        "errors": [{"source": display_path(str(e.get("source", ""))), "severity": e.get("severity", "error"),
                    "error": display_path(str(e.get("error", "")))} for e in errors[:limit]],
        "errors_more": max(0, len(errors) - limit),
    }
    return Report("spectro", f"Spectrograms: {display_path(folder.name)}", display_path(folder), head, items, "tracks")


# -- train ----------------------------------------------------------------------------------
def _feature_index(folders: list[Path]) -> dict[str, Path]:
    """abspath of an audio source → its cached array, from the spectro manifests of ``folders``."""
    index: dict[str, Path] = {}
    for folder in folders:
        for r in read_jsonl(folder / MANIFEST_NAME):
            if r.get("source") and r.get("path"):
                index.setdefault(os.path.abspath(str(r["source"])), folder / str(r["path"]))
    return index


def _clip_picture(media: Media, source: str, audio: Path | None, cache: dict[str, Path]) -> str | None:
    from specmusic.specfile import load_spectrogram

    npz = cache.get(os.path.abspath(source)) or (Path(source) if source.endswith(".npz") else None)
    if npz is not None and npz.is_file():
        try:
            spec, _ = load_spectrogram(npz)
            return media.thumbnail(spec, f"npz:{os.path.abspath(npz)}")
        except InputError:
            pass
    return media.audio_thumbnail(audio) if audio is not None else None


def build_train(path: Path, media: Media, limit: int) -> Report:
    """Metrics, per-class F1, the confusion matrix, the curves; every misclassified clip of the test
    split (else the validation split) with its player, true and predicted labels and spectrogram."""
    run = _folder(path)
    metrics = read_json(run / "metrics.json")
    config = read_json(run / "config.json") if (run / "config.json").is_file() else {}
    split = "test" if "test" in metrics else "valid" if "valid" in metrics else None
    labels = [str(x) for x in metrics.get("labels", [])]
    m = metrics.get(split, {}) if split else {}
    data = Path(str(config.get("data", ""))) if config.get("data") else None
    cache = _feature_index([run / "features", *([data] if data is not None and data.is_dir() else [])])
    items = []
    for p in m.get("predictions", []):
        if p.get("correct"):
            continue
        source = str(p.get("source", ""))
        audio = resolve_audio(source, [run] + ([data] if data else [])) if source else None
        probs = p.get("probabilities", {})
        items.append({
            "name": display_path(str(p.get("track", source))), "true": p.get("label"), "predicted": p.get("predicted"),
            "p_true": probs.get(p.get("label")), "p_predicted": probs.get(p.get("predicted")),
            "top": sorted(probs.items(), key=lambda kv: -kv[1])[:3], "audio": media.audio(audio),
            "image": _image(_clip_picture(media, source, audio, cache), thumb=True),
        })
    per_class = [{"label": k, **v} for k, v in m.get("per_class", {}).items()]
    head = {
        "split": split, "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"), "n_tracks": m.get("n_tracks"),
        "per_class": per_class, "labels": labels, "confusion": m.get("confusion", []),
        "pooling": metrics.get("track_pooling"), "accuracy_by_pooling": sorted(m.get("accuracy_by_pooling", {}).items()),
        "facts": [(k, metrics[k]) for k in ("best_epoch", "epochs_run", "chunk_frames", "train_seconds", "device")
                  if k in metrics],
        "arch": (config.get("model") or {}).get("arch"),
        "valid": {k: metrics["valid"].get(k) for k in ("accuracy", "macro_f1", "n_tracks")} if split == "test"
        and "valid" in metrics else None,
        "confusion_png": _picture(media, run / "confusion.png"),
        "curve_png": _picture(media, run / "training_curve.png"),
    }
    return Report("train", f"Training run: {display_path(run.name)}", display_path(run), head, items,
                  "misclassified clips")


# -- nmf ------------------------------------------------------------------------------------
def build_nmf(path: Path, media: Media, limit: int) -> Report:
    """The mix and every part playable, with each part's numbers; W and H as pictures."""
    folder = _folder(path)
    summary = read_json(folder / "summary.json")
    stats = {int(c["component"]): c for c in summary.get("components", []) if "component" in c}
    items = []
    source = str(summary.get("source") or "")
    if source:
        mix = resolve_audio(source, [folder])
        items.append({"name": f"mix: {display_path(os.path.basename(source))}", "role": "mix", "audio": media.audio(mix),
                      "stats": None})
    parts = sorted(folder.glob("component-*.wav"), key=lambda q: q.name)
    for part in parts:
        number = re.search(r"(\d+)", part.stem)
        c = int(number.group(1)) if number else 0
        items.append({"name": part.name, "role": "part", "audio": media.audio(part), "stats": stats.get(c)})
    if (folder / "model.wav").is_file():
        items.append({"name": "model.wav", "role": "model (W·H with the mix's phase)",
                      "audio": media.audio(folder / "model.wav"), "stats": None})
    pictures = {}
    for name in ("W", "H", "loss"):
        pictures[name] = _picture(media, folder / f"{name}.png")
    if (pictures["W"] is None or pictures["H"] is None) and (folder / "nmf.npz").is_file():
        from specmusic.nmf.files import load_nmf

        arrays = load_nmf(folder / "nmf.npz")
        w = np.log10(np.maximum(arrays["W"], 1e-12))
        h = np.log10(np.maximum(arrays["H"], 1e-12))
        pictures["W"] = pictures["W"] or media.thumbnail(np.repeat(w.T, 8, axis=0).T, f"nmfW:{folder.resolve()}")
        pictures["H"] = pictures["H"] or media.thumbnail(np.repeat(h, 8, axis=0), f"nmfH:{folder.resolve()}")
    head = {
        "facts": [(k, summary[k]) for k in ("k", "loss_name", "loss", "iterations", "converged", "sample_rate", "duration_s",
                                            "model_relative_error", "parts_sum_rms_error") if k in summary],
        "pictures": pictures, "notes": sorted(summary.get("file_notes", {}).items()),
        "components": [stats[c] for c in sorted(stats)],
    }
    title = f"NMF: {display_path(os.path.basename(source) or folder.name)}"
    return Report("nmf", title, display_path(folder), head, items, "mix and parts")


# -- generate sample ------------------------------------------------------------------------
_SAMPLE_NAME = re.compile(r"^(?P<stem>.+)_(?P<seed>\d+)_(?P<index>\d{3,})$")


def build_generate(path: Path, media: Media, limit: int) -> Report:
    """Every sample playable, with its spectrogram (the ``.png`` beside it, else drawn from its ``.npy``)."""
    import soundfile as sf

    folder = _folder(path)
    items = []
    for wav in sorted(folder.glob("*.wav"), key=lambda q: q.name):
        match = _SAMPLE_NAME.match(wav.stem)
        image = _image(_picture(media, wav.with_suffix(".png")), thumb=False)
        npy = wav.with_suffix(".npy")
        if image is None and npy.is_file():
            try:
                image = _image(media.thumbnail(np.load(npy, allow_pickle=False), f"npy:{os.path.abspath(npy)}"),
                               thumb=True)
            except (OSError, ValueError):
                image = None
        try:
            seconds: float | None = round(sf.info(os.fsencode(wav)).duration, 2)
        except (RuntimeError, OSError, sf.LibsndfileError):
            seconds = None
        items.append({
            "name": display_path(wav.name), "label": match.group("stem") if match else None,
            "seed": int(match.group("seed")) if match else None, "index": int(match.group("index")) if match else None,
            "seconds": seconds, "image": image, "audio": media.audio(wav),
        })
    labels = sorted({str(i["label"]) for i in items if i["label"]})
    head = {"count": len(items), "labels": labels, "seconds": round(sum(i["seconds"] or 0 for i in items), 1)}
    return Report("generate", f"Generated samples: {display_path(folder.name)}", display_path(folder), head, items,
                  "samples")

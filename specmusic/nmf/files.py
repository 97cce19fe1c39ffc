"""What ``specmusic nmf`` writes: ``nmf.npz``, ``summary.json``, the part WAVs, ``model.wav``, the plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import InputError
from specmusic.fileio import display_path, numpy_load_reason, save_npz_atomic, write_json_atomic
from specmusic.outputs import staged_files
from specmusic.nmf.separate import (
    Decomposition,
    Resynthesis,
    component_stats,
    resynthesize,
)

__all__ = ["FORMAT_VERSION", "FILE_NOTES", "decomposition_files", "load_nmf", "part_names", "save_decomposition"]

FORMAT_VERSION = 1

#: What each file is, as ``summary.json`` says it (``component-NN.wav`` stands for every part).
FILE_NOTES: dict[str, str] = {
    "nmf.npz": "W (templates), H (activations), the loss curve and the axes",
    "component-NN.wav": "the mix through soft mask NN (its share of every time-frequency bin); "
    "the parts add up to the mix (parts_sum_rms_error)",
    "model.wav": "the NMF model W·H heard with the mix's phase: not the mix, but the factorisation's "
    "approximation of it (model_relative_error: RMS of model − mix over RMS of the mix)",
    "W.png": "the templates over a logarithmic frequency axis",
    "H.png": "the activations over time",
    "loss.png": "the divergence per iteration",
}


def save_decomposition(
    out_dir: str | os.PathLike[str], dec: Decomposition, *, source: str = "", plots: bool = True, audio: bool = True,
) -> dict[str, Any]:
    """Write ``nmf.npz`` (W, H, loss curve, axes), ``W.png``/``H.png``/``loss.png``, one
    ``component-NN.wav`` per component, ``model.wav`` and ``summary.json`` into ``out_dir``.

    WAVs are 32-bit float so that the parts sum back to the mix exactly. The set is written whole or
    not at all (:func:`~specmusic.outputs.staged_files`): into a hidden folder first, moved into
    ``out_dir`` once every file is written, ``summary.json`` last — a folder without it holds no
    finished set, and a full disk leaves none of the new files. Returns the summary; with ``audio``
    it holds ``parts_sum_rms_error``, ``model_rms_error``, ``model_relative_error`` and ``mix_rms``,
    and ``file_notes`` says what each file is.

    Raises
    ------
    OSError
        A file cannot be written (a full disk): named by its place in ``out_dir``.
    """

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with staged_files(out, last="summary.json") as stage:
        return _save_set(stage, dec, source=source, plots=plots, audio=audio)


def _save_set(out: Path, dec: Decomposition, *, source: str, plots: bool, audio: bool) -> dict[str, Any]:
    """Every file of :func:`save_decomposition` into ``out``; the summary."""
    _save_arrays(out / "nmf.npz", dec)
    r, spec, sr = dec.result, dec.spec, dec.sr
    summary = r.summary() | {
        "format_version": FORMAT_VERSION,
        "source": source,
        "sample_rate": sr,
        "duration_s": round(len(dec.y) / sr, 3),
        "spectrogram": spec.to_dict(),
    }
    files = ["nmf.npz", "summary.json"]
    if audio:
        audio_files, numbers = _save_audio(out, dec, resynthesize(dec))
        files += audio_files
        summary |= numbers
    if plots:
        from specmusic.nmf.plots import save_nmf_plots

        save_nmf_plots(out, r, sr=sr, hop_length=spec.hop_length, n_fft=spec.n_fft, title=os.path.basename(source))
        files += ["W.png", "H.png", "loss.png"]
    summary["files"] = sorted(files)
    summary["file_notes"] = {name: note for name, note in FILE_NOTES.items()
                             if name in files or (name == "component-NN.wav" and audio)}
    write_json_atomic(out / "summary.json", summary)
    return summary


def _save_arrays(path: Path, dec: Decomposition) -> None:

    r, spec, sr = dec.result, dec.spec, dec.sr
    save_npz_atomic(path, {
        "W": r.W, "H": r.H, "losses": r.losses, "loss_iterations": r.loss_iterations,
        "frequencies_hz": np.fft.rfftfreq(spec.n_fft, 1.0 / sr).astype(np.float32),
        "times_s": (np.arange(r.H.shape[1]) * spec.hop_length / sr).astype(np.float32),
        "sample_rate": np.int64(sr), "n_fft": np.int64(spec.n_fft), "hop_length": np.int64(spec.hop_length),
        "power": np.float64(spec.power), "beta": np.float64(r.beta), "format_version": np.int64(FORMAT_VERSION),
    })


def part_names(k: int) -> list[str]:
    """The part WAVs of a decomposition into ``k`` parts: ``component-01.wav`` … (two digits at least)."""
    width = max(2, len(str(k)))
    return [f"component-{c:0{width}d}.wav" for c in range(1, k + 1)]


def decomposition_files(k: int, *, audio: bool = True, plots: bool = True) -> list[str]:
    """The names :func:`save_decomposition` writes for ``k`` parts."""
    return ["nmf.npz", "summary.json", *(part_names(k) + ["model.wav"] if audio else []),
            *(["W.png", "H.png", "loss.png"] if plots else [])]  # fmt: skip


def _save_audio(out: Path, dec: Decomposition, audio: Resynthesis) -> tuple[list[str], dict[str, Any]]:
    """The part WAVs and ``model.wav``; their names, and the summary's numbers about them."""
    from specmusic.audio import save_audio

    names = part_names(len(audio.parts))
    for name, part in zip(names, audio.parts):
        save_audio(out / name, part, dec.sr, subtype="FLOAT")
    save_audio(out / "model.wav", audio.model, dec.sr, subtype="FLOAT")
    numbers = {
        "mix_rms": audio.mix_rms,
        "parts_sum_rms_error": audio.parts_sum_rms_error,
        "model_rms_error": audio.model_rms_error,
        "model_relative_error": round(audio.model_relative_error, 6),
        "components": component_stats(dec.result.W, dec.result.H, audio.parts, sr=dec.sr,
                                      hop_length=dec.spec.hop_length),
    }
    return [*names, "model.wav"], numbers


def load_nmf(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read an ``nmf.npz`` written by :func:`save_decomposition` (never unpickles).

    Raises
    ------
    InputError
        Not a specmusic NMF file, or a newer format.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(
            f"{display_path(path)}: not a readable .npz ({numpy_load_reason(exc, path)}) — pass an nmf.npz written by "
            "specmusic nmf"
        ) from None
    if "W" not in data or "H" not in data or int(data.get("format_version", 0)) != FORMAT_VERSION:
        raise InputError(f"{display_path(path)}: not a specmusic nmf.npz (format_version {FORMAT_VERSION}) — rerun specmusic nmf")
    return data

"""``specmusic generate invert``: an array file (``.npy``, or a ``specmusic spectro`` ``.npz``) back to an audio file.

:func:`invert_file` reads the array (:func:`specmusic.inversion.load_invertible_array`), inverts it
(:func:`specmusic.inversion.invert_array`: mel → linear NNLS, fast Griffin-Lim) and writes the audio. numpy
only: no torch.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from specmusic.audio import check_audio_output, save_audio
from specmusic.fileio import printable_path
from specmusic.inversion import MAX_INVERSION_GB, invert_array, load_invertible_array
from specmusic.outputs import check_not_an_input

__all__ = ["Inversion", "invert_file", "print_warning"]


@dataclass(frozen=True)
class Inversion:
    """An array turned into audio: what was read, what was written, how close the audio's spectrogram is."""

    input: str  # the array file, as given
    output: str  # the audio file, as given ("-": stdout)
    kind: str  # mel | stft
    shape: tuple[int, int]  # the array's (rows, frames)
    seconds: float  # length of the audio written
    spectral_convergence_db: float  # of the audio's STFT against the array's (lower is better)
    warnings: tuple[str, ...] = ()  # why the audio is not what was hoped (a silent spectrogram)

    def to_dict(self) -> dict[str, Any]:
        """The JSON line of ``specmusic generate invert`` (``warnings`` only when there are some)."""
        out = {"input": self.input, "output": self.output, "seconds": round(self.seconds, 3),
               "spectral_convergence_db": round(self.spectral_convergence_db, 2)}
        return {**out, "warnings": list(self.warnings)} if self.warnings else out


def print_warning(line: str) -> None:
    """``warning: LINE`` on stderr (never stdout: it carries the audio or the JSON line)."""
    sys.stderr.write(f"warning: {line}\n")
    sys.stderr.flush()


def invert_file(
    array: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    kind: str = "mel",
    scale: str = "db",
    sample_rate: int = 22050,
    n_fft: int = 2048,
    hop_length: int = 512,
    n_mels: int | None = None,
    gl_iter: int = 64,
    momentum: float = 0.99,
    seed: int = 0,
    on_warning: Callable[[str], None] | None = print_warning,
    max_gb: float = MAX_INVERSION_GB,
) -> Inversion:
    """Turn the mel or STFT array in ``array`` into audio written to ``output`` (``-``: WAV on stdout).

    A ``spectro`` ``.npz`` carries its own settings; a ``.npy`` is described by ``kind``, ``scale``,
    ``sample_rate``, ``n_fft``, ``hop_length`` and ``n_mels`` (see
    :func:`~specmusic.inversion.load_invertible_array`). ``gl_iter`` Griffin-Lim iterations with
    ``momentum`` (0: plain), seeded by ``seed``. A spectrogram of digital silence becomes silence, and
    ``on_warning`` (default: a ``warning:`` line on stderr) is told. An inversion estimated above
    ``max_gb`` of memory is refused before the work.

    Raises
    ------
    InputError
        An output name no audio format can be written to, or that is the array itself (checked first); a
        missing or unusable array,
        rows no feature config has, or an inversion that would need more memory than ``max_gb``
        (refused before the work, with the frames that fit).
    OSError
        The output cannot be written (a full disk): named, and no partial file is left.
    """
    check_audio_output(output, option="-o")  # before any work: a name no format can be written to
    check_not_an_input(output, [array])
    data, fc, scale_used = load_invertible_array(array, kind=kind, scale=scale, sample_rate=sample_rate,
                                                 n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
    warnings: list[str] = []
    y, sc = invert_array(data, config=fc, scale=scale_used, n_iter=gl_iter, momentum=momentum, seed=seed,
                         name=printable_path(array), warnings=warnings, max_gb=max_gb)
    for line in warnings if on_warning is not None else ():
        on_warning(line)
    save_audio(output, y, fc.sample_rate)
    return Inversion(input=str(array), output=str(output), kind=fc.kind, shape=(data.shape[0], data.shape[1]),
                     seconds=len(y) / fc.sample_rate, spectral_convergence_db=sc, warnings=tuple(warnings))

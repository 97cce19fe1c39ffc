"""How much memory ``specmusic nmf`` and ``nmf mosaic`` need, known from the files' lengths before any decoding.

Everything they hold grows with the length: the signal, its STFT ``X`` (complex64) and ``V`` (float32),
the solver's buffers, the parts. The estimates below add up the arrays alive at the peak of each phase
(decode, spectrogram, fit, resynthesis) from the shapes alone; ``tests/nmf/test_nmf.py`` checks them against
the peak that :mod:`tracemalloc` measures. They count the arrays, not the interpreter and its
libraries (~150 MB more).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

from specmusic.errors import ConfigError
from specmusic.nmf.blocks import BLOCK_FRAMES
from specmusic.nmf.updates import solver_threads

__all__ = [
    "DEFAULT_MAX_MEMORY_GB",
    "MemoryEstimate",
    "check_memory",
    "check_nmf_memory",
    "duration_after",
    "mosaic_memory",
    "nmf_memory",
    "solver_memory",
]

#: The bound ``--max-memory`` has by default (GB).
DEFAULT_MAX_MEMORY_GB = 2.0
_GB = 1e9


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of the arrays of a run, and the bytes that grow with each second of the input."""

    bytes: int
    per_second: float  # of the input that sets the length (the song; the mosaic's target)


def solver_memory(n_freqs: int, n_frames: int, k: int, *, itemsize: int = 4, threads: int = 1,
                  beta: float = 1.0) -> int:
    """Bytes of :class:`specmusic.nmf.updates.Solver`'s buffers, ``W``, ``H`` and their copies.

    Each worker holds its share of the H step (three ``k × n_frames`` arrays) and one or two blocks of
    ``V``'s rows (≈ 2¹⁷ entries); the solver three more ``k × n_frames`` arrays; ``W`` and ``H`` are
    there as started, as copied and as fitted.
    """
    f, n = n_freqs, max(n_frames, 1)
    rows = f if beta == 2 else min(f, max(4, (1 << 17) // n))
    workers = 1 if beta == 2 else max(1, min(threads, math.ceil(f / rows)))
    block = rows * n * ((beta != 2) + (beta not in (1, 2)))
    per_worker = 3 * k * n + block + 2 * rows * k
    return itemsize * (workers * per_worker + 3 * k * n + f * k + 3 * k * (f + n))


def nmf_memory(
    n_samples: int, *, sample_rate: int, n_fft: int = 2048, hop_length: int = 512, power: float = 1.0,
    n_components: int = 4, beta: float = 1.0, itemsize: int = 4, threads: int = 0, init: str = "nndsvda",
    audio: bool = True, compare: bool = False,
) -> MemoryEstimate:
    """Peak bytes of ``specmusic nmf`` on ``n_samples`` samples at ``sample_rate`` (the largest k given).

    Phases: decoding (the blocks and their concatenation, 8 bytes a sample); the spectrogram (the signal,
    ``X`` at 8 bytes a bin, ``V`` at 4, ``|X|`` once more for ``power`` ≠ 1); the fit (the randomised SVD
    of the init reads a float64 copy of ``V``; a float64 or floored copy of ``V``; :func:`solver_memory`);
    the resynthesis (``k`` float32 parts, the model, a float64 signal being overlap-added and the summed
    window, and the block temporaries of :mod:`specmusic.nmf.blocks`).
    """
    def at(n: int) -> int:
        f, t = n_fft // 2 + 1, 1 + n // hop_length
        bins = f * t
        held = 4 * n + 12 * bins  # y, X, V
        decode = 8 * n
        spectrogram = held + (4 * bins if power != 1 else 0) + BLOCK_FRAMES * f * 24
        floored = itemsize * bins * ((itemsize == 8) + (beta <= 1))  # V in float64 / lifted off zero
        svd = 8 * bins if init != "random" else 0
        fit = held + floored + svd + solver_memory(f, t, n_components, itemsize=itemsize,
                                                   threads=solver_threads(threads), beta=beta)
        if compare:  # scikit-learn's NMF(mu): V in the working dtype, W·H, the ratio and its own temporaries
            fit += 6 * itemsize * bins
        resynthesis = held + 4 * n * n_components + 28 * n + BLOCK_FRAMES * f * 96 if audio else 0
        return int(max(decode, spectrogram, fit, resynthesis))

    return _estimate(at, n_samples, sample_rate)


def mosaic_memory(
    source_samples: int, target_samples: int, *, sample_rate: int, n_fft: int = 2048, hop_length: int = 512,
    templates: int = 0, max_source_frames: int = 4000, threads: int = 0, constrained: bool = False,
) -> MemoryEstimate:
    """Peak bytes of ``specmusic nmf mosaic`` (``per_second``: per second of the target).

    ``H`` has one row per source frame (at most ``max_source_frames``; ``templates`` in templates mode)
    and one column per target frame: its start (float32), the solver's copy and buffers
    (:func:`solver_memory` with k = the rows), and the Let-it-Bee constraints' temporaries (up to six
    H-sized arrays while one is applied). Besides: both signals, both STFTs, the source frames as
    templates (a selected, a scaled and a split copy).
    """
    f = n_fft // 2 + 1
    source_frames = 1 + source_samples // hop_length
    rows = templates or min(source_frames, max_source_frames)

    def at(n: int) -> int:
        t = 1 + n // hop_length
        bins = f * t
        held = 4 * (source_samples + n) + 8 * f * source_frames + 12 * bins + 4 * f * rows
        if not templates:
            held += 24 * f * rows  # the source frames chosen, scaled to unit sum, split in real / imaginary
        decode = 4 * source_samples + 8 * n
        fit = held + 8 * rows * t + solver_memory(f, t, rows, threads=solver_threads(threads))
        if constrained:
            fit += 16 * rows * t
        out = held + 4 * rows * t + 28 * n + BLOCK_FRAMES * f * 96
        return int(max(decode, fit, out))

    return _estimate(at, target_samples, sample_rate)


def _estimate(at: Callable[[int], int], n: int, sample_rate: int) -> MemoryEstimate:
    """The estimate at ``n`` samples, and its growth per second (from one more minute)."""
    minute = 60 * sample_rate
    return MemoryEstimate(bytes=at(n), per_second=(at(n + minute) - at(n)) / 60.0)


def check_memory(
    estimate: MemoryEstimate, *, max_gb: float, name: str, seconds: float, sample_rate: int,
    what: str = "", fixes: str = "", otherwise: str = "shorten the input",
) -> None:
    """Refuse a run whose estimated peak is above ``max_gb``, saying by how much and how to cut it.

    ``seconds`` is the length that ``estimate.per_second`` scales (the song, or the mosaic's target);
    ``fixes`` names the options that cut it, ``otherwise`` what to do when even a second is too much.

    Raises
    ------
    ConfigError
        ``NAME: S s at R Hz needs about X GB of memory, more than --max-memory G GB — take at most D s
        (--duration D, with --offset to choose where), …, or raise --max-memory``.
    """
    if estimate.bytes <= max_gb * _GB:
        return
    fixed = estimate.bytes - estimate.per_second * seconds  # what does not grow with the length
    fits = (max_gb * _GB - fixed) / estimate.per_second if estimate.per_second > 0 else 0.0
    cut = f"take at most {_round_down(fits):g} s ({fixes or '--duration'})" if fits >= 1 else otherwise
    raise ConfigError(
        f"{name}: {seconds:.0f} s{what} at {sample_rate} Hz needs about {_size(estimate.bytes)} of memory, "
        f"more than --max-memory {max_gb:g} GB — {cut}, lower --sr, or raise --max-memory "
        f"(each second takes about {_size(estimate.per_second)})"
    )


def _size(n: float) -> str:
    return f"{n / _GB:.1f} GB" if n >= 0.95 * _GB else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e6:.1f} MB"


def _round_down(seconds: float) -> float:
    """A readable length not above ``seconds``: whole minutes above 10 min, whole seconds below."""
    return float(math.floor(seconds / 60) * 60) if seconds >= 600 else float(math.floor(seconds))


def duration_after(path: str | os.PathLike[str], *, offset: float = 0.0, duration: float | None = None) -> float:
    """Seconds that reading ``path`` from ``offset`` for ``duration`` gives, from its header (no decoding).

    Raises
    ------
    AudioError
        Missing, empty or undecodable file.
    """
    from specmusic.audio import read_info

    left = max(read_info(path).duration - max(offset, 0.0), 0.0)
    return left if duration is None else min(left, duration)


def check_nmf_memory(
    path: str | os.PathLike[str], *, sample_rate: int, n_fft: int, hop_length: int, power: float,
    n_components: int, beta: float, itemsize: int, threads: int, init: str, audio: bool, compare: bool,
    offset: float = 0.0, duration: float | None = None, max_gb: float = DEFAULT_MAX_MEMORY_GB,
) -> float:
    """Before decoding ``path``: refuse when ``specmusic nmf`` on it would need more than ``max_gb``.

    Returns the seconds that will be read.

    Raises
    ------
    AudioError
        Missing, empty or undecodable file (from its header).
    ConfigError
        The estimate (:func:`nmf_memory`) is above ``max_gb``; the message gives it, the length that
        fits and the options that cut it.
    """
    from specmusic.fileio import display_path

    seconds = duration_after(path, offset=offset, duration=duration)
    estimate = nmf_memory(round(seconds * sample_rate), sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                          power=power, n_components=n_components, beta=beta, itemsize=itemsize, threads=threads,
                          init=init, audio=audio, compare=compare)
    check_memory(estimate, max_gb=max_gb, name=display_path(path), seconds=seconds, sample_rate=sample_rate,
                 fixes="--duration, with --offset to choose where")
    return seconds

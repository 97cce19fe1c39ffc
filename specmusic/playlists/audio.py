"""Duplicates by their audio (``playlist --dedupe audio``): describe's fingerprint of each track the
playlist is about to take, compared with those of the tracks already in it.

The fingerprint is describe's Haitsma–Kalker one (:mod:`specmusic.describe.fingerprint`: 32 bits per
23 ms from band-energy differences, matched at the best offset), made from the first
:data:`FINGERPRINT_SECONDS` of the track decoded straight to its 5512 Hz mono. It finds what the
stored vectors cannot: another edit of one recording (a cut intro, a radio edit) whose windows no
longer line up (docs/playlists.md: all 24 planted copies, against 16 for the vectors), at the price of
decoding each track the playlist takes. A track that cannot be decoded has no fingerprint and is
taken as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from specmusic.describe.fingerprint import Fingerprint, FingerprintConfig, find_near_duplicates, fingerprint_from_power
from specmusic.errors import AudioError

__all__ = ["FINGERPRINT_SECONDS", "AudioFingerprints", "fingerprint_file"]

#: Seconds of each track fingerprinted (from its start): an edit of a recording shares most of them.
FINGERPRINT_SECONDS = 120.0


def fingerprint_file(path: str, *, config: FingerprintConfig = FingerprintConfig(),
                     seconds: float | None = FINGERPRINT_SECONDS) -> Fingerprint:  # fmt: skip
    """Describe's fingerprint of the first ``seconds`` of ``path`` (None: all of it).

    Raises
    ------
    AudioError
        The file cannot be decoded.
    """
    from specmusic.audio import load_audio
    from specmusic.features import power_spectrogram

    y, _ = load_audio(path, sr=config.sample_rate, mono=True, duration=seconds)
    frames = power_spectrogram(y, n_fft=config.n_fft, hop_length=config.hop_length).T  # [T, bins]
    return fingerprint_from_power(frames, config)


class AudioFingerprints:
    """Fingerprints of tracks, each made once (``cache``: fingerprints already made, by path)."""

    def __init__(self, cache: dict[str, Fingerprint] | None = None, config: FingerprintConfig = FingerprintConfig()) -> None:
        self.config = config
        self._cache: dict[str, Fingerprint | None] = dict(cache or {})

    def get(self, path: str) -> Fingerprint | None:
        """The fingerprint of ``path`` (None when it cannot be decoded)."""
        if path not in self._cache:
            try:
                self._cache[path] = fingerprint_file(path, config=self.config)
            except (AudioError, OSError, MemoryError):
                self._cache[path] = None
        return self._cache[path]

    def same_as_any(self, path: str, others: Sequence[str]) -> bool:
        """Whether ``path`` holds the same audio as one of ``others`` (describe's matching and thresholds)."""
        mine = self.get(path)
        if mine is None:
            return False
        theirs = [fp for fp in (self.get(o) for o in others if o != path) if fp is not None]
        return bool(theirs) and any(m.a == 0 for m in find_near_duplicates([mine, *theirs], self.config))

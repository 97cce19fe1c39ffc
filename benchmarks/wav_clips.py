"""The short-clip set of the speed benchmarks: the soundtrack benchmark's 30 s clips as WAV.

``benchmarks/data/soundtracks`` holds 475 clips of 30 s cut from 9 Debian game soundtracks (Ogg Vorbis,
44.1 or 48 kHz stereo; ``benchmarks/soundtracks.py``). :func:`wav_clips` converts them once to 16-bit
stereo WAV at 44.1 kHz (the 48 kHz ones resampled with soxr HQ) under
``benchmarks/data/wav-clips-44k/`` (gitignored), written atomically, and returns their paths.
WAV input needs no decoder work to speak of, so a benchmark on these clips measures features,
writing, start-up and the per-file cost of the task layer.

    .venv/bin/python benchmarks/wav_clips.py     # convert (once) and print the folder
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "benchmarks" / "data" / "soundtracks"
RATE = 44100


def wav_clips(folder: Path | None = None, *, rate: int = RATE) -> list[Path]:
    """Every clip of ``SOURCE`` as a ``rate`` Hz 16-bit stereo WAV in ``folder`` (converted once).

    Raises
    ------
    SystemExit
        ``SOURCE`` is missing (build it with ``benchmarks/soundtracks.py``).
    """
    import numpy as np
    import soundfile as sf
    import soxr

    folder = folder or ROOT / "benchmarks" / "data" / f"wav-clips-{rate // 1000}k"
    sources = sorted(SOURCE.glob("*/*.ogg"))
    if not sources:
        sys.exit(f"no clips under {SOURCE} — build them with benchmarks/soundtracks.py")
    out = []
    for src in sources:
        dest = folder / src.parent.name / (src.stem + ".wav")
        if not dest.exists():
            y, native = sf.read(src, dtype="float32", always_2d=True)
            if native != rate:
                y = soxr.resample(y, native, rate, quality="HQ")
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.wav")
            sf.write(tmp, np.clip(y, -1.0, 1.0), rate, subtype="PCM_16")
            os.replace(tmp, dest)
        out.append(dest)
    return out


def audio_seconds(paths: list[Path]) -> float:
    """Total duration of ``paths`` (from their headers)."""
    import soundfile as sf

    return sum(sf.info(str(p)).duration for p in paths)


if __name__ == "__main__":
    clips = wav_clips()
    print(f"{len(clips)} clips, {audio_seconds(clips):.0f} s of audio, in {clips[0].parent.parent}")

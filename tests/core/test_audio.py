"""Decoding, mixdown, resampling, windows, saving."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from specmusic.fileio import display_path
from specmusic.audio import load_audio, loudness_normalize, read_info, save_audio, stream_audio
from specmusic.errors import AudioError
from tests.conftest import chirp, write


def test_mono_file_loads_unchanged(chirp_mono: Path) -> None:
    y, sr = load_audio(chirp_mono)
    assert sr == 22050 and y.dtype == np.float32 and y.shape == (44100,)
    ref, _ = sf.read(chirp_mono, dtype="float32")
    np.testing.assert_allclose(y, ref, atol=1e-6)


def test_stereo_is_mixed_down_or_kept(chirp_stereo: Path) -> None:
    y, _ = load_audio(chirp_stereo)
    ref, _ = sf.read(chirp_stereo, dtype="float32")
    np.testing.assert_allclose(y, ref.mean(axis=1), atol=1e-6)
    both, _ = load_audio(chirp_stereo, mono=False)
    assert both.shape == (2, 44100)


def test_44k_is_resampled_with_soxr(chirp_44k: Path) -> None:
    y, sr = load_audio(chirp_44k, sr=22050)
    assert sr == 22050
    assert abs(len(y) - 44100) <= 1
    import soxr

    ref = soxr.resample(sf.read(chirp_44k, dtype="float32")[0], 44100, 22050, quality="HQ")
    n = min(len(ref), len(y))
    assert np.max(np.abs(y[:n] - ref[:n])) < 1e-3


def test_native_rate_when_sr_none(chirp_44k: Path) -> None:
    y, sr = load_audio(chirp_44k, sr=None)
    assert sr == 44100 and len(y) == 88200


def test_offset_and_duration(chirp_mono: Path) -> None:
    y, _ = load_audio(chirp_mono, offset=0.5, duration=0.25)
    full, _ = load_audio(chirp_mono)
    np.testing.assert_allclose(y, full[11025 : 11025 + 5512], atol=1e-6)


def test_blocks_concatenate_to_whole_and_stay_bounded(tmp_path: Path) -> None:
    path = write(tmp_path / "long.wav", chirp(6.0, sr=44100), sr=44100)
    blocks = list(stream_audio(path, sr=22050, block_seconds=1.0))
    assert len(blocks) >= 6
    assert max(len(b) for b in blocks) <= 22050 + 512
    whole, _ = load_audio(path, sr=22050)
    np.testing.assert_allclose(np.concatenate(blocks), whole, atol=1e-6)


def test_read_info(chirp_44k: Path) -> None:
    info = read_info(chirp_44k)
    assert (info.sample_rate, info.channels, info.frames) == (44100, 1, 88200)
    assert info.duration == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("empty", "empty (0 bytes)"),
        ("zero_length", "no audio samples"),
        ("not_audio", "not a readable audio file"),
        ("truncated_mp3", "truncated"),
    ],
)
def test_bad_files_raise_one_line_audio_error(fixture: str, message: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    with pytest.raises(AudioError) as info:
        load_audio(path)
    text = str(info.value)
    assert message in text and "\n" not in text and path.name in text and " — " in text


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "nope.wav")


def test_non_utf8_name_loads_and_displays(non_utf8_name: Path) -> None:
    y, _ = load_audio(non_utf8_name)
    assert len(y) == 22050
    shown = display_path(non_utf8_name)
    shown.encode("utf-8")  # printable
    assert "caf\\xe9-song.wav" in shown


def test_save_audio_is_atomic_and_roundtrips(tmp_path: Path) -> None:
    y = chirp(0.5)
    out = tmp_path / "sub" / "x.wav"
    save_audio(out, y, 22050, subtype="FLOAT")
    back, sr = sf.read(out, dtype="float32")
    assert sr == 22050
    np.testing.assert_allclose(back, y, atol=1e-7)
    assert sorted(os.listdir(out.parent)) == ["x.wav"]


def test_save_audio_to_stdout(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    save_audio("-", chirp(0.2), 22050)
    data = capfdbinary.readouterr().out
    back, sr = sf.read(io.BytesIO(data))
    assert sr == 22050 and len(back) == 4410


def test_loudness_normalize_no_clip_no_dc() -> None:
    y = 3.0 * chirp(1.0) + 0.5
    out = loudness_normalize(y, peak_db=-1.0)
    assert abs(float(out.mean())) < 1e-3
    assert np.max(np.abs(out)) <= 10 ** (-1 / 20) + 1e-6
    assert not np.any(loudness_normalize(np.zeros(100)))


def test_atomic_writes_get_umask_permissions(tmp_path):
    """Finished files are not left with mkstemp's private 0600 mode; failures leave no temp file."""
    import os

    import pytest

    from specmusic.fileio import atomic_write

    old = os.umask(0o022)
    try:
        target = tmp_path / "out.txt"
        atomic_write(target, lambda f: f.write("hello"), "w")
        assert target.read_text() == "hello"
        assert (target.stat().st_mode & 0o777) == 0o644

        def boom(f):
            f.write("partial")
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError):
            atomic_write(target, boom, "w")
        assert target.read_text() == "hello"
        assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    finally:
        os.umask(old)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_stream_audio_frames_seeks_to_the_sample(tmp_path: Path, ext: str) -> None:
    """A read from native sample ``start`` (where ``start * sr / native`` is whole) lies on the whole decode's grid."""
    from specmusic.audio import stream_audio_frames

    y = chirp(8.0, sr=44100)
    path = tmp_path / f"long.{ext}"
    with sf.SoundFile(str(path), "w", samplerate=44100, channels=1, format=ext.upper()) as f:
        for i in range(0, len(y), 8192):
            f.write(y[i : i + 8192])
    whole = np.concatenate(list(stream_audio(path, sr=16000)))
    start = 441 * 300  # 3 s: 160 * 300 samples at 16 kHz
    part = np.concatenate(list(stream_audio_frames(path, start=start, stop=start + 44100, sr=16000)))
    assert len(part) == 16000
    ref = whole[160 * 300 : 160 * 300 + 16000]
    np.testing.assert_allclose(part[400:-400], ref[400:-400], atol=2e-4)  # the edges: the resampler's warm-up
    native = np.concatenate(list(stream_audio_frames(path, start=start, stop=start + 1000, sr=None)))
    np.testing.assert_array_equal(native, sf.read(str(path), dtype="float32")[0][start : start + 1000])


def test_stream_audio_frames_reports_a_file_shorter_than_its_header(truncated_mp3: Path) -> None:
    from specmusic.audio import stream_audio_frames

    frames = read_info(truncated_mp3).frames
    with pytest.raises(AudioError, match="truncated") as info:
        list(stream_audio_frames(truncated_mp3, start=frames // 2, stop=frames))
    assert "\n" not in str(info.value) and "decoding stops at" in str(info.value)


def test_mpeg_quiet_restores_stderr_when_threads_overlap() -> None:
    """Decoding threads enter and leave in any order; fd 2 is the terminal again after the last leaves."""
    import threading

    from specmusic.audio import mpeg_quiet

    before = os.fstat(2)
    entered, release = threading.Barrier(3), threading.Event()

    def hold() -> None:
        with mpeg_quiet("x.mp3"):
            entered.wait()
            release.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    assert os.fstat(2).st_ino != before.st_ino  # silenced while any thread decodes MPEG
    release.set()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 8])
def test_mix_down_is_numpys_float32_mean_bit_for_bit(channels: int) -> None:
    """The column sum gives exactly ``x.mean(axis=1, dtype=float32)`` (the values decoding always gave)."""
    from specmusic.audio import mix_down

    x = np.random.default_rng(channels).standard_normal((44_101, channels)).astype(np.float32)
    want = x.mean(axis=1, dtype=np.float32)
    got = mix_down(x)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)

"""``specmusic describe``: BS.1770 loudness against the standard's values, the duplicate fingerprint, leakage, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soxr
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.data import discover_tracks
from specmusic.describe import (
    LoudnessMeter,
    assign_splits,
    describe_tracks,
    description_record,
    integrated_loudness,
    k_weighting,
)
from specmusic.errors import InputError
from tests.conftest import melody, write

SR = 22050


def run(*args: object, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def sine(db: float, seconds: float, sr: int = 48000, freq: float = 1000.0) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return 10 ** (db / 20) * np.sin(2 * np.pi * freq * t)


# -- loudness (ITU-R BS.1770-4; EBU Tech 3341 test signals) --------------------------------------------
def test_k_weighting_is_the_standards_filter_at_48k() -> None:
    (b1, a1), (b2, a2) = k_weighting(48000)
    np.testing.assert_allclose(b1, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
    np.testing.assert_allclose(a1, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(b2, [1.0, -2.0, 1.0])
    np.testing.assert_allclose(a2, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize("sr", [48000, 44100])
def test_full_scale_997_hz_sine_reads_minus_3_01_lufs(sr: int) -> None:
    assert integrated_loudness(sine(0.0, 5.0, sr, freq=997.0), sr) == pytest.approx(-3.01, abs=0.02)


def test_stereo_1_khz_sine_at_minus_23_dbfs_reads_minus_23_lufs() -> None:
    y = sine(-23.0, 20.0)
    assert integrated_loudness(np.stack([y, y]), 48000) == pytest.approx(-23.0, abs=0.05)


def test_gates_drop_quiet_passages_and_silence() -> None:
    # EBU 3341 case 3 (relative gate) and case 4 (absolute gate at -70 LUFS): both read -23 LUFS.
    case3 = np.concatenate([sine(-36, 10), sine(-23, 60), sine(-36, 10)])
    case4 = np.concatenate([sine(-72, 10), sine(-36, 10), sine(-23, 60), sine(-36, 10), sine(-72, 10)])
    for y in (case3, case4):
        assert integrated_loudness(np.stack([y, y]), 48000) == pytest.approx(-23.0, abs=0.05)
    # Digital silence is gated out (only the blocks straddling the sine's ends count a little).
    with_silence = np.concatenate([np.zeros(48000 * 30), sine(-23, 40), np.zeros(48000 * 30)])
    assert integrated_loudness(np.stack([with_silence] * 2), 48000) == pytest.approx(-23.0, abs=0.05)
    assert integrated_loudness(np.zeros(48000), 48000) is None  # every block under the absolute gate
    assert integrated_loudness(sine(-10, 0.3), 48000) is None  # shorter than one 400 ms block


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_noise_matches_the_loudness_its_spectrum_predicts(colour: str) -> None:
    from scipy.signal import freqz

    sr, n = 48000, 48000 * 20
    rng = np.random.default_rng(3)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / sr)
    if colour == "pink":
        spectrum[1:] /= np.sqrt(freqs[1:] / freqs[1])
        spectrum[0] = 0
    y = np.fft.irfft(spectrum, n)
    y *= 10 ** (-20 / 20) / np.sqrt(np.mean(y**2))  # -20 dBFS RMS
    (b1, a1), (b2, a2) = k_weighting(sr)
    _, h1 = freqz(b1, a1, worN=freqs, fs=sr)
    _, h2 = freqz(b2, a2, worN=freqs, fs=sr)
    power = np.abs(np.fft.rfft(y)) ** 2
    expected = -0.691 + 10 * np.log10(np.sum(power * np.abs(h1 * h2) ** 2) / np.sum(power) * np.mean(y**2))
    assert integrated_loudness(y, sr) == pytest.approx(expected, abs=0.1)


def test_peak_clipping_and_silence_in_blocks_equal_one_pass() -> None:
    loud = np.clip(sine(0.0, 2.0, SR, 440.0) * 2.0, -1.0, 1.0)  # flat tops: clipped
    y = np.concatenate([np.zeros(SR * 2), loud])
    whole = LoudnessMeter(SR, 1)
    whole.add(y)
    streamed = LoudnessMeter(SR, 1)
    for block in np.array_split(y, 7):
        streamed.add(block[None, :])
    a, b = whole.result(), streamed.result()
    assert a.peak_dbfs == pytest.approx(0.0, abs=1e-6)
    assert a.silence_share == pytest.approx(0.5, abs=0.03)
    assert 0.3 < a.clipping_share < 0.5  # 2x overdrive keeps ~2/3 of each half-period on the rail
    assert a.lufs == pytest.approx(b.lufs, abs=1e-9) and a.silence_share == b.silence_share
    quiet = LoudnessMeter(SR, 1)
    quiet.add(0.5 * sine(0.0, 1.0, SR, 440.0))
    assert quiet.result().peak_dbfs == pytest.approx(-6.02, abs=0.01) and quiet.result().clipping_share == 0


# -- duplicates -----------------------------------------------------------------------------------
@pytest.fixture
def dupes(tmp_path: Path) -> Path:
    """label a: an original and its copies under other names; label b: other music (none a duplicate)."""
    root = tmp_path / "data"
    y = melody(seed=1)
    write(root / "a" / "orig.wav", y)
    write(root / "b" / "exact.wav", y)  # same PCM, another label and name
    write(root / "a" / "gain.wav", 0.3 * y)
    write(root / "a" / "resampled.wav", soxr.resample(y, SR, 44100), sr=44100)
    write(root / "a" / "vorbis.ogg", y, format="OGG")
    write(root / "a" / "mpeg.mp3", y, format="MP3")
    write(root / "a" / "shifted.wav", y[int(1.37 * SR) :])  # starts 1.37 s later
    for seed in (2, 3, 4):
        write(root / "b" / f"other{seed}.wav", melody(seed=seed))
    noise = np.random.default_rng(9).standard_normal(10 * SR).astype(np.float32)
    write(root / "b" / "noise.wav", 0.1 * noise)
    other_noise = np.random.default_rng(10).standard_normal(10 * SR).astype(np.float32)
    write(root / "b" / "mix.wav", 0.5 * melody(seed=5) + 0.1 * other_noise)
    return root


def test_fingerprint_finds_every_copy_and_no_different_music(dupes: Path) -> None:
    tracks, _ = discover_tracks([dupes])
    desc = describe_tracks(tracks)
    names = [Path(t.path).name for t in desc.tracks]
    pairs = {frozenset((names[d.a], names[d.b])): d for d in desc.duplicates}
    copies = {"orig.wav", "exact.wav", "gain.wav", "resampled.wav", "vorbis.ogg", "mpeg.mp3", "shifted.wav"}
    expected = {frozenset((a, b)) for a in copies for b in copies if a < b}
    assert set(pairs) == expected  # every copy pairs with every other, and nothing else does
    assert pairs[frozenset(("orig.wav", "exact.wav"))].kind == "exact"
    assert all(d.kind == "near" for k, d in pairs.items() if k != frozenset(("orig.wav", "exact.wav")))
    shifted = pairs[frozenset(("orig.wav", "shifted.wav"))]
    a_is_orig = names[shifted.a] == "orig.wav"
    assert (shifted.offset_seconds if a_is_orig else -shifted.offset_seconds) == pytest.approx(1.37, abs=0.03)
    # Different music sits near chance (0.5 bit agreement) at every offset, far from the 0.75 threshold.
    from specmusic.describe.fingerprint import similarity_at

    fps = {n: a.fingerprint for n, a in zip(names, desc.analyses)}
    unrelated = [max(similarity_at(fps["orig.wav"], fps[o], d)[0] for d in range(-40, 40))
                 for o in ("other2.wav", "other3.wav", "other4.wav", "noise.wav", "mix.wav")]
    assert max(unrelated) < 0.68


def chords(bpm: float, harmonics: list[float], seconds: float = 20.0) -> np.ndarray:
    """A C–G–Am–F progression of sustained, decaying block chords (4 beats each) at ``bpm``."""
    progression = [[261.6, 329.6, 392.0], [392.0, 493.9, 587.3], [220.0, 261.6, 329.6], [349.2, 440.0, 523.3]]
    bar = int(4 * 60 / bpm * SR)
    t = np.arange(bar) / SR
    out = []
    while sum(map(len, out)) < seconds * SR:
        for chord in progression:
            out.append(sum(w * np.sin(2 * np.pi * f * (k + 1) * t) for f in chord for k, w in enumerate(harmonics))
                       * np.exp(-3 * t) / 3)
    return (0.3 * np.concatenate(out)[: int(seconds * SR)]).astype(np.float32)


def test_the_same_progression_at_another_tempo_or_the_same_samples_at_another_rate_are_not_duplicates(
    tmp_path: Path,
) -> None:
    # Sustained chords match almost as well at every offset: the best offset must stand out (min_contrast).
    write(tmp_path / "a" / "piano_100.wav", chords(100, [1, 0.5, 0.3, 0.2, 0.1]))
    write(tmp_path / "b" / "organ_100.wav", chords(100, [1, 0, 0.6, 0, 0.4]))
    write(tmp_path / "b" / "piano_120.wav", chords(120, [1, 0.5, 0.3, 0.2, 0.1]))
    # The same samples read at twice the rate: an octave up, half as long — not the same audio.
    y = melody(6.0, seed=11)
    write(tmp_path / "a" / "native.wav", y)
    write(tmp_path / "b" / "octave_up.wav", y, sr=2 * SR)
    desc = describe_tracks(discover_tracks([tmp_path])[0])
    assert desc.duplicates == []


def test_leakage_pair_across_split_lists_is_reported_with_both_paths(dupes: Path, tmp_path: Path) -> None:
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("a/orig.wav\nb/other2.wav\n")
    test.write_text("a/mpeg.mp3\nb/other3.wav\n")
    r = run("describe", dupes, "--split-file", train, "--test-file", test, "--json")
    assert r.exit_code == 0, r.stderr
    record = json.loads(r.stdout)
    leaks = [d for d in record["duplicates"] if d["leakage"]]
    assert len(leaks) == 1
    assert {Path(leaks[0]["a"]).name, Path(leaks[0]["b"]).name} == {"orig.wav", "mpeg.mp3"}
    assert sorted(leaks[0]["splits"]) == ["test", "train"]
    assert any(w.startswith("leakage: 1 duplicate pair") for w in record["warnings"])
    table = run("describe", dupes, "--split-file", train, "--test-file", test)
    assert "LEAK near" in table.stdout and "orig.wav" in table.stdout and "mpeg.mp3" in table.stdout


def test_splits_follow_trains_lists(genre_tree: Path, tmp_path: Path) -> None:
    tracks, _ = discover_tracks([genre_tree])
    test = tmp_path / "test.txt"
    test.write_text("low/low.00000.wav\nmid/mid.00001.wav\n")
    splits, notes = assign_splits(tracks, {"test": test})  # no train list: the rest are training tracks
    assert sorted(s for s in splits if s) == ["test"] * 2 + ["train"] * 10 and notes == []
    train = tmp_path / "train.txt"
    train.write_text("low/low.00001.wav\n")
    splits, _ = assign_splits(tracks, {"train": train, "test": test})  # with one: unlisted are in none
    assert splits.count(None) == 9
    (tmp_path / "both.txt").write_text("low/low.00000.wav\n")
    with pytest.raises(InputError, match="in both"):
        assign_splits(tracks, {"train": tmp_path / "both.txt", "test": test})
    nothing = tmp_path / "nothing.txt"
    nothing.write_text("jazz/jazz.00000.wav\n")
    assert "no track matches the valid list" in assign_splits(tracks, {"valid": nothing})[1][0]


def test_imbalance_warning_states_its_rule(tmp_path: Path) -> None:
    root = tmp_path / "set"
    for label, n in (("big", 4), ("mid", 4), ("tiny", 1)):
        for i in range(n):
            write(root / label / f"{label}{i}.wav", melody(2.0, seed=hash((label, i)) % 1000))
    record = description_record(describe_tracks(discover_tracks([root])[0]), inputs=[str(root)])
    imbalance = [w for w in record["warnings"] if w.startswith("imbalance")]
    assert len(imbalance) == 1 and "'tiny' has 1 clips" in imbalance[0] and "median" in imbalance[0]
    assert record["labels"]["tiny"]["clips"] == 1


# -- the command --------------------------------------------------------------------------------
def test_cli_table_json_file_and_plots(genre_tree: Path, tmp_path: Path) -> None:
    out, plots = tmp_path / "out" / "describe.json", tmp_path / "plots"
    r = run("describe", genre_tree, "-o", out, "--plots", plots, "--jobs", "2")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.splitlines()[0].split()[:3] == ["label", "clips", "groups"]
    assert any(line.split()[:2] == ["low", "4"] for line in r.stdout.splitlines())
    assert "describe: 12 clips described" in r.stderr
    record = json.loads(out.read_text())
    for key in ("kind", "version", "inputs", "clips", "failed", "labels", "files", "formats", "sample_rates",
                "channels", "duplicates", "warnings", "plots"):
        assert key in record, key
    assert record["kind"] == "specmusic-describe" and record["version"] == 1 and record["clips"] == 12
    low = record["labels"]["low"]
    assert {"clips", "groups", "duration", "loudness_lufs", "clipping_clips", "silent_clips"} <= set(low)
    assert low["duration"]["total"] == pytest.approx(6.0, abs=0.01) and low["groups"] == 4
    f = record["files"][0]
    assert {"path", "label", "group", "split", "duration", "sample_rate", "channels", "format", "lufs", "peak_dbfs",
            "clipping_share", "silence_share"} <= set(f)
    assert record["sample_rates"] == {"22050": 12} and record["formats"] == {"wav": 12}
    assert set(record["plots"]) == {"clips_per_label", "durations", "loudness", "mean_spectrograms"}
    for rel in record["plots"].values():
        png = (out.parent / rel).resolve()
        assert png.is_file() and png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_corrupt_file_is_listed_exit_1_and_the_rest_described(genre_tree: Path) -> None:
    (genre_tree / "mid" / "broken.wav").write_text("not audio")
    write(genre_tree / "mid" / "quiet.wav", np.zeros(SR, dtype=np.float32))
    r = run("describe", genre_tree, "--json")
    assert r.exit_code == 1
    record = json.loads(r.stdout)
    assert record["clips"] == 13 and len(record["failed"]) == 1
    assert record["failed"][0]["path"].endswith("broken.wav") and "broken.wav" in r.stderr
    assert record["labels"]["mid"]["silent_clips"] == 1
    assert any(w.startswith("silence: 1 clip") for w in record["warnings"])
    quiet = next(f for f in record["files"] if f["path"].endswith("quiet.wav"))
    assert quiet["lufs"] is None and quiet["silence_share"] == 1.0


def test_no_input_is_a_one_line_error(tmp_path: Path) -> None:
    r = run("describe", tmp_path / "missing")
    assert r.exit_code == 1 and "no such file" in r.stderr


def test_a_manifest_group_in_two_splits_is_group_leakage(genre_tree: Path, tmp_path: Path) -> None:
    from specmusic.data import read_manifest

    manifest = genre_tree / "clips.csv"
    manifest.write_text("path,label,group\nlow/low.00000.wav,low,artist1\nlow/low.00001.wav,low,artist1\n"
                        "mid/mid.00000.wav,mid,artist2\nmid/mid.00001.wav,mid,artist3\n")
    test = tmp_path / "test.txt"
    test.write_text("low/low.00001.wav\nmid/mid.00001.wav\n")
    desc = describe_tracks(read_manifest(manifest), split_lists={"test": test})
    record = description_record(desc, inputs=[str(manifest)])
    assert record["labels"]["low"]["groups"] == 1 and record["labels"]["mid"]["groups"] == 2
    leaks = [w for w in record["warnings"] if w.startswith("group leakage")]
    assert len(leaks) == 1 and "'artist1' (test, train)" in leaks[0]

"""onnxruntime inference: model loading and validation, chunking, track predictions, no torch/librosa."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.conftest import chirp, write
from specmusic.errors import AudioError, ConfigError, ModelError
from specmusic.features import FeatureConfig, chunk_features, chunk_starts, compute_features
from specmusic.inference import (
    embed_track,
    load_model,
    predict_files,
    predict_track,
    top_k,
)

FC = FeatureConfig(n_mels=32)


def export_tiny_classifier(path: Path, labels: list[str], fc: FeatureConfig = FC, chunk: int = 40,
                           norm=(-40.0, 15.0)) -> Path:
    """A seeded, untrained two-block SpecCNN exported to ``path`` with the contract's metadata (torch needed);
    shared by the classify CLI tests, the fault corpus and ``benchmarks/failure_table.py``."""
    import torch

    from specmusic.export import export_onnx, model_metadata
    from specmusic.models.cnn import CNNConfig, SpecCNN

    torch.manual_seed(1)
    net = SpecCNN(CNNConfig(n_classes=len(labels), channels=(8, 16)))
    meta = model_metadata(labels=labels, feature_config=fc, chunk_frames=chunk, chunk_hop_frames=chunk // 2,
                          input_norm=norm, arch="cnn")
    return export_onnx(net, path, n_rows=fc.n_rows, metadata=meta)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_classifier(tmp_path_factory.mktemp("model") / "model.onnx", ["low", "mid", "high"])


def _identity_onnx(path: Path, metadata: str | None) -> Path:
    x = helper.make_tensor_value_info("spec", TensorProto.FLOAT, ["b", 1, 32, 40])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1, 32, 40])
    graph = helper.make_graph([helper.make_node("Identity", ["spec"], ["logits"])], "g", [x], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    if metadata is not None:
        helper.set_model_props(proto, {"specmusic": metadata})
    onnx.save(proto, str(path))
    return path


def test_load_model_reads_metadata(model_path: Path) -> None:
    model = load_model(model_path)
    assert model.labels == ["low", "mid", "high"] and model.task == "multiclass"
    assert model.feature_config == FC and model.chunk_frames == 40 and model.chunk_hop_frames == 20
    assert model.input_norm == (-40.0, 15.0) and model.meta["arch"] == "cnn"


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.onnx")


def test_not_onnx(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_text("definitely not protobuf\n")
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        load_model(bad)


def test_onnx_without_metadata(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no 'specmusic' metadata"):
        load_model(_identity_onnx(tmp_path / "plain.onnx", None))


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"format_version": 1, "task": "multiclass"}), "lacks labels"),
        (json.dumps({"format_version": 99, "task": "multiclass", "labels": ["a"], "feature_config": {},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "newer"),
        (json.dumps({"format_version": 1, "task": "regression", "labels": ["a"], "feature_config": {},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "unknown task"),
        (json.dumps({"format_version": 1, "task": "multiclass", "labels": ["a"], "feature_config": {"kind": "wavelet"},
                     "chunk_frames": 4, "chunk_hop_frames": 2}), "bad feature_config"),
    ],
)
def test_malformed_metadata(tmp_path: Path, meta: str, message: str) -> None:
    with pytest.raises(ModelError, match=message):
        load_model(_identity_onnx(tmp_path / "m.onnx", meta))


def test_chunk_starts_cover_the_track() -> None:
    assert chunk_starts(10, 40, 20).tolist() == [0]
    assert chunk_starts(100, 40, 20).tolist() == [0, 20, 40, 60]
    assert chunk_starts(105, 40, 20).tolist() == [0, 20, 40, 60, 65]  # last chunk ends at the end


def test_chunk_features_wraps_short_tracks() -> None:
    spec = np.arange(3 * 7, dtype=np.float32).reshape(3, 7)
    chunks = chunk_features(spec, 16, 8)
    assert chunks.shape == (1, 1, 3, 16)
    np.testing.assert_array_equal(chunks[0, 0, :, 7:14], spec)
    long = np.random.default_rng(0).standard_normal((3, 50)).astype(np.float32)
    chunks = chunk_features(long, 16, 8)
    np.testing.assert_array_equal(chunks[-1, 0], long[:, -16:])


def test_predict_track_from_audio_and_features(model_path: Path, chirp_mono: Path) -> None:
    model = load_model(model_path)
    probs = predict_track(model, chirp_mono)
    assert probs.shape == (3,) and probs.dtype == np.float32
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    spec = compute_features(chirp(2.0), FC)
    np.testing.assert_allclose(predict_track(model, spec), probs, atol=1e-6)
    assert [lab for lab, _ in top_k(model, probs, 2)] == [model.labels[i] for i in np.argsort(-probs)[:2]]


def test_embed_track_is_unit_norm(model_path: Path, chirp_mono: Path) -> None:
    emb = embed_track(load_model(model_path), chirp_mono)
    assert emb.shape == (32,)  # 2 * last channel count
    assert np.linalg.norm(emb) == pytest.approx(1.0, abs=1e-5)


def test_npz_with_other_features_is_rejected(model_path: Path, tmp_path: Path, chirp_mono: Path) -> None:
    from specmusic.data import discover_tracks
    from specmusic.spectro import run_spectro

    tracks, _ = discover_tracks([chirp_mono])
    run_spectro(tracks, tmp_path / "specs", config=FeatureConfig(n_mels=64), progress=False)
    with pytest.raises(ConfigError, match="other features"):
        predict_track(load_model(model_path), tmp_path / "specs" / "chirp_mono.npz")
    run_spectro(tracks, tmp_path / "same", config=FC, progress=False)
    np.testing.assert_allclose(
        predict_track(load_model(model_path), tmp_path / "same" / "chirp_mono.npz"),
        predict_track(load_model(model_path), chirp_mono), atol=1e-6,
    )


def test_predict_files_reports_bad_files_and_keeps_order(model_path: Path, tmp_path: Path, not_audio: Path) -> None:
    good = [write(tmp_path / f"g{i}.wav", chirp(1.0, seed=i)) for i in range(3)]
    paths = [str(good[0]), str(not_audio), str(good[1]), str(good[2])]
    for jobs in (1, 2):
        results = list(predict_files(load_model(model_path), paths, jobs=jobs, progress=False))
        assert [r.path for r in results] == paths
        assert [r.ok for r in results] == [True, False, True, True]
        assert "not a readable audio file" in results[1].error
        np.testing.assert_allclose(results[0].probabilities, predict_track(load_model(model_path), good[0]), atol=1e-6)


def test_inference_path_imports_no_torch_or_librosa(model_path: Path, chirp_mono: Path) -> None:
    code = (
        "import sys\n"
        "from specmusic.cli.app import app\n"
        "import specmusic.inference as inf\n"
        f"m = inf.load_model({str(model_path)!r})\n"
        f"inf.predict_track(m, {str(chirp_mono)!r})\n"
        f"app(['classify', {str(chirp_mono)!r}, '--model', {str(model_path)!r}], standalone_mode=False)\n"
        "heavy = [n for n in ('torch', 'librosa', 'sklearn', 'matplotlib') if n in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert "chirp_mono.wav" in out.stdout


def test_corrupt_audio_raises_audio_error(model_path: Path, truncated_mp3: Path) -> None:
    with pytest.raises(AudioError):
        predict_track(load_model(model_path), truncated_mp3)


# -- windows, seeking, batches ----------------------------------------------------------------
FC_NOFLOOR = FeatureConfig(n_mels=32, top_db=None)  # the pretrained taggers' kind: no floor relative to the track


@pytest.fixture(scope="module")
def nofloor_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_classifier(tmp_path_factory.mktemp("nofloor") / "model.onnx", ["low", "mid", "high"],
                                  fc=FC_NOFLOOR)


def _song(seconds: float, sr: int = 44100, seed: int = 0) -> np.ndarray:
    """A stereo "song": a slow chirp, a pitch that changes every second, seeded noise — [2, n]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 220 * (1 + 0.5 * np.sin(0.3 * t)) * t)
    y += 0.2 * np.sin(2 * np.pi * (110 * 2 ** ((t.astype(int) % 12) / 12)) * t) + 0.02 * rng.standard_normal(len(t))
    return np.stack([y, np.roll(y, 5)]).astype(np.float32)


@pytest.fixture(scope="module")
def song_44k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("song") / "song_44k.wav", _song(30.0), sr=44100)


@pytest.fixture(scope="module")
def song_ogg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import soundfile as sf

    path = tmp_path_factory.mktemp("ogg") / "song.ogg"
    y = _song(20.0, sr=48000).T
    with sf.SoundFile(str(path), "w", samplerate=48000, channels=2, format="OGG") as f:
        for i in range(0, len(y), 8192):  # libsndfile's Vorbis encoder wants small writes
            f.write(y[i : i + 8192])
    return path


class _Recorder:
    """Wraps an onnxruntime session: keeps every batch it is given."""

    def __init__(self, session) -> None:  # noqa: ANN001
        self.session, self.batches = session, []

    def run(self, names, feeds):  # noqa: ANN001, ANN201
        self.batches.append(feeds["spec"].copy())
        return self.session.run(names, feeds)

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self.session, name)


def _recorded(path: Path, **kw) -> tuple:  # noqa: ANN003
    from specmusic.inference import load_model

    model = load_model(path, **kw)
    model.session = _Recorder(model.session)
    return model, model.session


def test_parse_windows() -> None:
    from specmusic.errors import InputError
    from specmusic.inference import DEFAULT_WINDOWS, parse_windows

    assert parse_windows(None) == DEFAULT_WINDOWS and parse_windows("all") is None and parse_windows(" ALL ") is None
    assert parse_windows("3") == 3 and parse_windows(5) == 5
    for bad in ("0", "-2", "many", "1.5"):
        with pytest.raises(InputError, match="positive whole number"):
            parse_windows(bad)


def test_select_windows_spreads_evenly_and_keeps_short_tracks_whole() -> None:
    from specmusic.inference import select_windows

    assert select_windows(105, 40, 20, None).tolist() == chunk_starts(105, 40, 20).tolist()
    assert select_windows(105, 40, 20, 5).tolist() == chunk_starts(105, 40, 20).tolist()  # no more chunks than 5
    assert select_windows(10, 40, 20, 3).tolist() == [0]
    starts = select_windows(10_040, 40, 20, 4)
    assert starts.tolist() == [1250, 3750, 6250, 8750]  # the centres of four equal shares of the track
    assert select_windows(10_040, 40, 20, 1).tolist() == [5000]  # one window: the middle
    gaps = np.diff(select_windows(100_000, 1813, 906, 16))
    assert gaps.min() >= gaps.max() - 1


@pytest.mark.parametrize("song", ["song_44k", "song_ogg"])
def test_windows_decoded_by_seeking_match_the_whole_decode(nofloor_path: Path, song: str,
                                                           request: pytest.FixtureRequest) -> None:
    """The features of each window, decoded alone, are those of the same frames of the whole track."""
    from specmusic.inference import analyse_track, select_windows, track_features

    path = request.getfixturevalue(song)
    whole, _ = track_features(load_model(nofloor_path), path)
    for windows in (1, 3, 7):
        model, rec = _recorded(nofloor_path)
        got = analyse_track(model, path, windows=windows, outputs=("logits", "embedding"))
        seen = np.concatenate(rec.batches)[:, 0]
        starts = select_windows(whole.shape[1], model.chunk_frames, model.chunk_hop_frames, windows)
        mean, std = model.input_norm
        want = np.stack([(whole[:, s : s + model.chunk_frames] - mean) / std for s in starts])
        assert got.windows == windows == len(seen) and got.total_windows > windows
        np.testing.assert_allclose(seen * std, want * std, atol=0.02)  # dB; resampler ripple at the band edge
        assert np.median(np.abs(seen - want)) * std < 1e-3  # 48 kHz → 22050 Hz: seeks rounded to a sample
        ref = analyse_track(load_model(nofloor_path), whole, windows=windows, outputs=("logits", "embedding"))
        np.testing.assert_allclose(got.probabilities, ref.probabilities, atol=1e-4)
        np.testing.assert_allclose(got.embedding, ref.embedding, atol=1e-4)


def test_only_the_windows_are_decoded(nofloor_path: Path, song_44k: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import soundfile as sf

    from specmusic import audio
    from specmusic.inference import analyse_track

    reads: list[tuple[int, int | None]] = []
    real = audio.stream_audio_frames

    def spy(path, *, start=0, stop=None, **kw):  # noqa: ANN001, ANN003, ANN202
        reads.append((start, stop))
        return real(path, start=start, stop=stop, **kw)

    monkeypatch.setattr(audio, "stream_audio_frames", spy)
    monkeypatch.setattr(audio, "stream_audio", None)  # never the whole file
    analyse_track(load_model(nofloor_path), song_44k, windows=2)
    frames = sf.info(str(song_44k)).frames
    assert len(reads) == 2 and all(0 < start and stop is not None for start, stop in reads)
    assert sum(stop - start for start, stop in reads) < 0.15 * frames  # two ~0.9 s windows of 30 s


def test_windows_all_is_every_chunk_as_before(model_path: Path, nofloor_path: Path, song_44k: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """``windows=None`` gives what the whole-track path gave (every chunk), in pieces or not, on 1 or 2 threads."""
    from specmusic import windowing
    from specmusic.inference import analyse_track, track_features

    monkeypatch.setattr(windowing, "_PIECE_SECONDS", 2.0)  # many pieces, decoded on two threads
    for path in (model_path, nofloor_path):  # top_db: the whole track's features; none: pieces
        before = predict_track(load_model(path), track_features(load_model(path), song_44k)[0], windows=None)
        for threads in (1, None):
            got = analyse_track(load_model(path, threads=threads), song_44k, windows=None)
            assert got.windows == got.total_windows > 10
            np.testing.assert_allclose(got.probabilities, before, atol=1e-5)


def test_batches_give_the_outputs_of_one_big_batch(nofloor_path: Path, song_44k: Path) -> None:
    from specmusic.inference import analyse_track

    results = []
    for batch in (1, 3, 64):
        model, rec = _recorded(nofloor_path)
        model.batch_size = batch
        results.append(analyse_track(model, song_44k, windows=None, outputs=("logits", "embedding")))
        assert max(len(b) for b in rec.batches) <= batch
    for r in results[1:]:
        np.testing.assert_allclose(r.probabilities, results[0].probabilities, atol=1e-6)
        np.testing.assert_allclose(r.embedding, results[0].embedding, atol=1e-6)


def test_memory_is_bounded_by_pieces_and_windows(nofloor_path: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A long file: features are computed piece by piece, never for the whole track; N windows reach the network."""
    from specmusic import features
    from specmusic.inference import analyse_track
    from specmusic.windowing import _PIECE_SECONDS

    long = write(tmp_path / "long.wav", _song(180.0, sr=8000)[0], sr=8000)  # 3 minutes, small on disk
    sizes: list[int] = []
    real = features.compute_features_stream

    def spy(blocks, config):  # noqa: ANN001, ANN202
        spec, n = real(blocks, config)
        sizes.append(n)
        return spec, n

    monkeypatch.setattr(features, "compute_features_stream", spy)
    model, rec = _recorded(nofloor_path)
    got = analyse_track(model, long, windows=6)
    assert got.windows == 6 == sum(len(b) for b in rec.batches) and got.total_windows > 200
    assert got.duration == pytest.approx(180.0, abs=0.01)
    sizes.clear()
    every = analyse_track(load_model(nofloor_path), long, windows=None)
    assert every.windows == every.total_windows
    assert len(sizes) > 5 and max(sizes) <= (_PIECE_SECONDS + 1.0) * 22050  # a piece plus its margins


def test_pieces_in_flight_are_bounded_and_ordered() -> None:
    import threading
    import time

    from specmusic.windowing import ordered

    lock, live, most = threading.Lock(), [0], [0]

    def work(i: int) -> int:
        with lock:
            live[0] += 1
            most[0] = max(most[0], live[0])
        time.sleep(0.005 * (i % 3))
        return i * i

    out = []
    for item, result in ordered(work, list(range(20)), 2):
        out.append((item, result))
        with lock:
            live[0] -= 1
    assert out == [(i, i * i) for i in range(20)]
    assert most[0] <= 3  # workers + 1 pieces held at once


def test_a_header_that_overstates_the_length_is_planned_again(nofloor_path: Path, song_44k: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from specmusic import audio
    from specmusic.inference import analyse_track

    honest = analyse_track(load_model(nofloor_path), song_44k, windows=None)
    real = audio.read_info
    monkeypatch.setattr(audio, "read_info", lambda p: dataclasses.replace(real(p), frames=int(real(p).frames * 1.03)))
    lying = analyse_track(load_model(nofloor_path), song_44k, windows=None)
    assert lying.windows == honest.windows and lying.duration == pytest.approx(honest.duration)
    np.testing.assert_allclose(lying.probabilities, honest.probabilities, atol=1e-6)


def test_top_db_is_floored_at_the_loudest_window(model_path: Path, song_44k: Path) -> None:
    from specmusic.inference import analyse_track, select_windows, track_features

    whole, _ = track_features(load_model(model_path), song_44k)  # floored at the track's loudest frame
    model, rec = _recorded(model_path)
    analyse_track(model, song_44k, windows=4)
    mean, std = model.input_norm
    seen = np.concatenate(rec.batches)[:, 0] * std + mean
    starts = select_windows(whole.shape[1], model.chunk_frames, model.chunk_hop_frames, 4)
    want = np.stack([whole[:, s : s + model.chunk_frames] for s in starts])
    assert seen.min() >= seen.max() - 80.0 - 1e-3
    np.testing.assert_allclose(seen, np.maximum(want, seen.max() - 80.0), atol=0.02)


def test_truncated_long_ogg_is_one_line_error(nofloor_path: Path, song_ogg: Path, tmp_path: Path) -> None:
    from specmusic.inference import analyse_track

    cut = tmp_path / "cut.ogg"
    cut.write_bytes(song_ogg.read_bytes()[: song_ogg.stat().st_size // 2])
    for windows in (2, None):
        with pytest.raises(AudioError) as info:
            analyse_track(load_model(nofloor_path), cut, windows=windows)
        assert "truncated" in str(info.value) and "\n" not in str(info.value) and "cut.ogg" in str(info.value)


def test_analysis_keeps_every_window_output(nofloor_path: Path, song_44k: Path) -> None:
    from specmusic.inference import analyse_track, probabilities_from_logits

    got = analyse_track(load_model(nofloor_path), song_44k, windows=4, outputs=("logits", "embedding"))
    assert got.per_window["logits"].shape == (4, 3) and got.per_window["embedding"].shape[0] == 4
    np.testing.assert_allclose(probabilities_from_logits(got.per_window["logits"], "multiclass").mean(axis=0),
                               got.probabilities, atol=1e-6)

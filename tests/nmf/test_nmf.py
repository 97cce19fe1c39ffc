"""specmusic.nmf: monotone multiplicative updates, recovery, separation, masks, mosaic, bad input."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest

from specmusic.errors import ConfigError, InputError
from specmusic.nmf import (
    MosaicConfig,
    NMFConfig,
    beta_divergence,
    decompose,
    fit_nmf,
    initialize_nmf,
    load_nmf,
    mosaic,
    mosaic_files,
    mosaic_to_file,
    parse_components,
    resynthesize,
    save_decomposition,
    separate_components,
    soft_masks,
    SpectrogramConfig,
    sweep_nmf,
)
from specmusic.nmf import updates
from specmusic.nmf.plots import log_frequency_ticks, templates_figure
from specmusic.nmf.solver import relax_after_undo
from specmusic.stft import istft, stft
from tests.conftest import tone, write

BETAS = [2.0, 1.0, 0.0]


def low_rank(f: int = 40, n: int = 60, k: int = 4, seed: int = 0, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    V = rng.gamma(1.0, 1.0, (f, k)) @ rng.gamma(0.5, 1.0, (k, n))
    return V + noise * rng.random((f, n))


@pytest.mark.parametrize("beta", BETAS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loss_never_increases(beta: float, dtype: str) -> None:
    V = low_rank(noise=0.1)
    r = fit_nmf(V, config=NMFConfig(n_components=3, beta=beta, max_iter=150, tol=0, dtype=dtype, init="random"))
    assert r.n_iter == 150 and len(r.losses) == 151
    steps = np.diff(r.losses)
    slack = (1e-9 if dtype == "float64" else 1e-4) * r.losses[0]  # float32 rounding of the tracked loss
    assert steps.max() <= slack, f"loss rose by {steps.max():.3g} at iteration {int(steps.argmax()) + 1}"
    assert r.losses[-1] < 0.5 * r.losses[0]


@pytest.mark.parametrize("beta", BETAS)
def test_h_only_steps_never_increase(beta: float) -> None:
    V = low_rank(noise=0.1, seed=3)
    W0, H0 = initialize_nmf(V, 3, init="random", seed=1, dtype="float64")
    r = fit_nmf(V, config=NMFConfig(beta=beta, max_iter=60, tol=0, dtype="float64"), W=W0, H=H0, fix_W=True)
    assert np.diff(r.losses).max() <= 1e-9 * r.losses[0]
    np.testing.assert_array_equal(r.W, np.maximum(W0, 1e-12))  # W stayed fixed


@pytest.mark.parametrize("beta", BETAS)
def test_tracked_losses_are_the_true_divergence(beta: float) -> None:
    V = low_rank(noise=0.05, seed=1)
    cfg = dict(n_components=3, beta=beta, tol=0, dtype="float64", init="nndsvda")
    long = fit_nmf(V, config=NMFConfig(max_iter=12, **cfg))
    for j in (1, 5, 9):
        short = fit_nmf(V, config=NMFConfig(max_iter=j, **cfg))
        assert long.losses[j] == pytest.approx(beta_divergence(V, short.W, short.H, beta=beta), rel=1e-8)


@pytest.mark.parametrize("beta", [*BETAS, 1.5])
@pytest.mark.parametrize("fix_w", [False, True])
def test_threads_give_the_serial_result(beta: float, fix_w: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many row blocks (2,000 rows of 200 frames, blocks of ≤ 100,000 entries: 6 blocks) shared by 3
    workers: the same updates, the same tracked losses, still non-increasing; only the summation order
    of the H step differs."""
    monkeypatch.setattr(updates, "BLOCK_ENTRIES", 100_000)
    monkeypatch.setattr(updates, "WORKER_ENTRIES", 1)
    V = low_rank(f=2000, n=200, k=4, noise=0.05, seed=2)
    W0, H0 = initialize_nmf(V, 4, init="nndsvda", seed=0, dtype="float64")
    runs = [fit_nmf(V, config=NMFConfig(beta=beta, max_iter=25, tol=0, dtype="float64", threads=t), W=W0, H=H0,
                    fix_W=fix_w) for t in (1, 3)]
    np.testing.assert_allclose(runs[1].W, runs[0].W, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(runs[1].H, runs[0].H, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(runs[1].losses, runs[0].losses, rtol=1e-10)
    assert np.diff(runs[1].losses).max() <= 1e-9 * runs[1].losses[0]
    with pytest.raises(ConfigError, match="threads must be >= 0"):
        NMFConfig(threads=-1)


def test_blocks_are_few_equal_and_bounded() -> None:
    """Every worker gets the same number of near-equal blocks of rows, none above BLOCK_ENTRIES, and a
    small V gets one worker (the hand-offs would cost more than the work)."""
    for f, n, workers in [(1025, 1292, 2), (1025, 1292, 1), (1025, 51_680, 2), (7, 3, 4), (1025, 1292, 5)]:
        rows = updates.block_rows(f, n, workers)
        n_blocks = -(-f // rows)
        assert rows * n <= max(updates.BLOCK_ENTRIES, n)
        assert n_blocks % workers == 0 or n_blocks < workers or rows == 1
    assert updates.block_rows(1025, 1292, 2) == 513  # a 30 s clip: one block per worker
    assert updates.solver_workers(1025, 1292, 2) == 2 and updates.solver_workers(40, 60, 8) == 1
    assert updates.euclidean_blas_threads(40, 60, 4, threads=2) == 1
    assert updates.euclidean_blas_threads(1025, 1292, 64, threads=2) == 2


def test_lift_is_a_maximum_in_place() -> None:
    x = np.array([[-1.0, 0.0, 1e-20], [3.0, np.inf, 2e-12]], dtype=np.float32)
    expected = np.maximum(x, np.float32(1e-12))
    out = updates.lift(x, 1e-12)
    assert out is x and out.dtype == np.float32
    np.testing.assert_array_equal(x, expected)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_over_relaxed_is_keeps_a_non_increasing_curve_and_the_true_loss(dtype: str) -> None:
    """IS default: relax 3, a step exponent of 1.5 (the textbook ½ × 3); the tracked losses (float32 sums
    of rows added in float64) are the true divergence, and the kept curve never rises."""
    V = low_rank(f=70, n=90, k=5, noise=0.3, seed=7)
    cfg = NMFConfig(n_components=5, beta=0.0, tol=0, dtype=dtype, max_iter=60)
    assert cfg.relax_exponent == 3.0 and cfg.step_exponent == 1.5
    assert NMFConfig(beta=1.0).step_exponent == 1.85 and NMFConfig(beta=2.0).step_exponent == 1.0
    runs = _fits(V, 5, 0.0, plain=dict(max_iter=60, relax=1), fast=dict(max_iter=60))
    fast = runs["fast"]
    assert fast.loss <= runs["plain"].loss
    assert np.diff(fast.losses).max() <= 1e-9 * fast.losses[0]
    short = fit_nmf(V, config=dataclasses.replace(cfg, max_iter=7))
    long = fit_nmf(V, config=cfg)
    rel = 1e-8 if dtype == "float64" else 1e-5
    assert long.losses[7] == pytest.approx(beta_divergence(V, short.W, short.H, beta=0.0), rel=rel)


def test_relax_is_bounded_by_the_step_exponent_and_halves_after_an_undo() -> None:
    """relax multiplies the textbook exponent, which may reach 2: up to 4 for IS (½), 2 for KL."""
    assert NMFConfig(beta=0.0, relax=4.0).step_exponent == 2.0
    with pytest.raises(ConfigError, match="up to 4"):
        NMFConfig(beta=0.0, relax=4.5)
    with pytest.raises(ConfigError, match="up to 2"):
        NMFConfig(beta=1.0, relax=2.5)
    assert relax_after_undo(1.85) == pytest.approx(1.425)
    assert relax_after_undo(1.08) == 1.0 and relax_after_undo(1.0) == 1.0


def _fits(V: np.ndarray, k: int, beta: float, **runs: dict) -> dict:
    """``fit_nmf`` of ``V`` from one NNDSVDa init (float64, tol 0) per named run of extra NMFConfig fields."""
    W0, H0 = initialize_nmf(V, k, init="nndsvda", seed=0, dtype="float64")
    return {name: fit_nmf(V, config=NMFConfig(n_components=k, beta=beta, tol=0, dtype="float64", **kw), W=W0, H=H0)
            for name, kw in runs.items()}


def test_accelerated_euclidean_needs_far_fewer_passes() -> None:
    """Euclidean default: 5 W and 5 H steps per pass over V (Gillis & Glineur); 40 passes get below
    200 textbook iterations, every step still non-increasing."""
    V = low_rank(f=80, n=120, k=6, noise=0.3, seed=5)
    runs = _fits(V, 6, 2.0, plain=dict(max_iter=200, inner=1), fast=dict(max_iter=40))
    plain, fast = runs["plain"], runs["fast"]
    assert NMFConfig(beta=2.0).inner_steps == 5 and NMFConfig(beta=1.0).inner_steps == 1
    assert fast.loss <= plain.loss
    assert np.diff(fast.losses).max() <= 1e-9 * fast.losses[0]
    with pytest.raises(ConfigError, match="inner must be >= 0"):
        NMFConfig(inner=-1)


def test_over_relaxed_kl_is_undone_when_it_raises_the_loss() -> None:
    """KL default: steps raised to the power 1.85 (fewer passes to the same divergence); an exponent of 2
    overshoots on this matrix, and every pass that raised the loss is undone, so the kept curve never rises."""
    V = low_rank(f=60, n=90, k=5, noise=0.2, seed=6)
    runs = _fits(V, 5, 1.0, plain=dict(max_iter=200, relax=1), relaxed=dict(max_iter=200),
                 wild=dict(max_iter=100, relax=2.0))
    plain, relaxed, wild = runs["plain"], runs["relaxed"], runs["wild"]
    assert NMFConfig(beta=1.0).relax_exponent == 1.85 and NMFConfig(beta=2.0).relax_exponent == 1.0
    assert relaxed.loss <= plain.loss
    for r in (relaxed, wild):
        assert np.diff(r.losses).max() <= 1e-9 * r.losses[0]
        assert r.loss == pytest.approx(beta_divergence(V, r.W, r.H, beta=1.0), rel=1e-9)
    assert wild.undone >= 1 and wild.n_iter == 100 and wild.summary()["undone_passes"] == wild.undone
    with pytest.raises(ConfigError, match="relax 3"):
        NMFConfig(relax=3.0)


def test_tracked_euclidean_loss_is_accurate_in_float32() -> None:
    """The tracked Euclidean loss is a small difference of large sums; on a float32 matrix with a wide
    range of values (like a magnitude spectrogram) it must still match the float64 divergence (a float32
    ‖V‖² once put it ~1 % off)."""
    rng = np.random.default_rng(0)
    V = (rng.lognormal(0, 1.5, (1025, 6)) @ rng.lognormal(0, 1.5, (6, 1000))
         * (1 + 0.05 * rng.random((1025, 1000)))).astype(np.float32)
    cfg = dict(n_components=6, beta=2.0, tol=0)
    long = fit_nmf(V, config=NMFConfig(max_iter=8, **cfg))
    short = fit_nmf(V, config=NMFConfig(max_iter=5, **cfg))
    assert long.losses[5] == pytest.approx(beta_divergence(V, short.W, short.H, beta=2.0), rel=2e-4)


def test_rank_k_matrix_is_recovered() -> None:
    V = low_rank(f=50, n=70, k=4, seed=2)
    r = fit_nmf(V, config=NMFConfig(n_components=4, beta=2, max_iter=3000, tol=0, dtype="float64"))
    rel = np.linalg.norm(V - r.W @ r.H) / np.linalg.norm(V)
    assert rel < 0.01


@pytest.mark.parametrize("beta", [2.0, 1.0])
def test_same_result_as_sklearn_from_the_same_init(beta: float) -> None:
    from sklearn.decomposition import NMF

    V = low_rank(f=60, n=80, k=5, noise=0.2, seed=4).astype(np.float32)
    W0, H0 = initialize_nmf(V, 5, init="nndsvda")
    ours = fit_nmf(V, config=NMFConfig(n_components=5, beta=beta, max_iter=100, tol=0, inner=1, relax=1),
                   W=W0, H=H0)
    model = NMF(5, solver="mu", beta_loss=beta, init="custom", max_iter=100, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        W = model.fit_transform(V, W=W0.copy(), H=H0.copy())
    theirs = beta_divergence(V, W, model.components_, beta=beta)
    assert ours.loss == pytest.approx(theirs, rel=1e-3)


def test_tolerance_stops_early_and_says_so() -> None:
    r = fit_nmf(low_rank(seed=5), config=NMFConfig(n_components=4, max_iter=5000, tol=1e-3))
    assert r.converged and r.n_iter < 5000 and r.n_iter % 10 == 0


def test_seed_makes_random_init_repeatable() -> None:
    V = low_rank()
    a = fit_nmf(V, config=NMFConfig(n_components=3, init="random", seed=7, max_iter=20))
    b = fit_nmf(V, config=NMFConfig(n_components=3, init="random", seed=7, max_iter=20))
    c = fit_nmf(V, config=NMFConfig(n_components=3, init="random", seed=8, max_iter=20))
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)


@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda"])
def test_inits_are_non_negative_and_shaped(init: str) -> None:
    W, H = initialize_nmf(low_rank(), 4, init=init, seed=0)
    assert W.shape == (40, 4) and H.shape == (4, 60)
    assert W.dtype == np.float32 and (W >= 0).all() and (H >= 0).all()
    if init == "nndsvda":
        assert (W > 0).all() and (H > 0).all()


def test_stft_round_trip_and_librosa_agreement() -> None:
    import librosa

    y = tone(330.0, 0.7, seed=1)
    X = stft(y, n_fft=512, hop_length=128, dtype=np.complex64)
    assert X.dtype == np.complex64 and X.flags.c_contiguous
    back = istft(X, hop_length=128, length=len(y), dtype=np.float32)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, y, atol=1e-5)
    ref = librosa.stft(y, n_fft=512, hop_length=128, pad_mode="constant")
    np.testing.assert_allclose(X, ref, atol=1e-4 * np.abs(ref).max())
    assert stft(y, n_fft=512, hop_length=128).dtype == np.complex128  # the default keeps full precision


@pytest.mark.parametrize("n_fft, hop", [(8, 4), (512, 257), (512, 0)])
def test_stft_refuses_frames_that_cannot_be_resynthesised(n_fft: int, hop: int) -> None:
    with pytest.raises(ConfigError, match="overlap is needed"):
        stft(np.ones(4000), n_fft=n_fft, hop_length=hop)
    with pytest.raises(ConfigError, match="overlap is needed"):
        istft(np.ones((n_fft // 2 + 1, 10), complex), hop_length=hop)


def test_stft_refuses_stereo() -> None:
    with pytest.raises(InputError, match="mono"):
        stft(np.ones((2, 4000)), n_fft=512, hop_length=128)


def test_features_use_the_one_hann_window() -> None:
    from specmusic.features import _hann
    from specmusic.stft import hann

    w = _hann(512)
    assert w.dtype == np.float32 and not w.flags.writeable and _hann(512) is w  # cached
    np.testing.assert_array_equal(w, hann(512).astype(np.float32))


def _two_instruments(sr: int = 8000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A low harmonic tone and a high bright tone, each on and off at different times."""
    seconds = 2.0
    n = int(seconds * sr)
    t = np.arange(n) / sr
    low = sum(0.5 / h * np.sin(2 * np.pi * 196.0 * h * t) for h in (1, 2, 3))
    high = sum(0.3 / h * np.sin(2 * np.pi * 1250.0 * h * t) for h in (1, 2))
    gate_low = ((t % 0.5) < 0.3).astype(float)  # 0.3 s on, 0.2 s off
    gate_high = (((t + 0.15) % 0.4) < 0.15).astype(float)
    a = (low * gate_low).astype(np.float32)
    b = (high * gate_high).astype(np.float32)
    return a + b, a, b


def test_two_instrument_mix_separates_and_parts_sum_to_the_mix() -> None:
    mix, a, b = _two_instruments()
    dec = decompose(mix, sr=8000, config=NMFConfig(n_components=2, beta=1, max_iter=200, tol=0, seed=0))
    parts = separate_components(dec.X, dec.result.W, dec.result.H, hop_length=512, length=len(mix))
    assert parts.shape == (2, len(mix))
    np.testing.assert_allclose(parts.sum(axis=0), mix, atol=1e-5)  # the parts add back to the mix

    def share(part: np.ndarray, src: np.ndarray) -> float:
        # fraction of the part's energy explained by projecting it on one source
        return float(np.dot(part, src) ** 2 / (np.dot(src, src) * np.dot(part, part)))

    scores = np.array([[share(p, s) for s in (a, b)] for p in parts])
    best = scores.argmax(axis=1)
    assert sorted(best) == [0, 1], f"both parts follow the same instrument: {scores}"
    assert scores.max(axis=1).min() > 0.9, scores
    assert (scores.min(axis=1) < 0.05).all(), scores


def test_soft_masks_sum_to_one_even_where_everything_underflows() -> None:
    W = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    H = np.array([[1.0, 0.0, 3.0], [1.0, 1.0, 0.0]])
    masks = soft_masks(W, H, power=2.0)
    np.testing.assert_allclose(masks.sum(axis=0), 1.0)
    assert np.isfinite(masks).all()


def test_save_and_load_decomposition(tmp_path: Path) -> None:
    mix, _, _ = _two_instruments()
    dec = decompose(mix, sr=8000, config=NMFConfig(n_components=2, max_iter=30))
    summary = save_decomposition(tmp_path, dec, source="mix.wav", plots=False)
    data = load_nmf(tmp_path / "nmf.npz")
    assert int(data["format_version"]) == 1 and data["W"].shape == (1025, 2) and data["H"].shape[0] == 2
    assert summary["parts_sum_rms_error"] < 1e-6 * summary["mix_rms"] + 1e-7
    assert {c["component"] for c in summary["components"]} == {1, 2}


def test_model_wav_is_the_model_and_the_summary_says_how_far_it_is_from_the_mix(tmp_path: Path) -> None:
    """Papercut: the parts sum to the mix; model.wav (W·H with the mix's phase) does not, and the
    summary gives its error and says what each file is."""
    import soundfile as sf

    mix, _, _ = _two_instruments()
    dec = decompose(mix, sr=8000, config=NMFConfig(n_components=2, max_iter=30))
    summary = save_decomposition(tmp_path, dec, source="mix.wav", plots=False)
    assert "reconstruction.wav" not in summary["files"] and "model.wav" in summary["files"]
    model, _ = sf.read(tmp_path / "model.wav", dtype="float64")
    parts = sum(sf.read(tmp_path / f"component-0{c}.wav", dtype="float64")[0] for c in (1, 2))
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))
    np.testing.assert_allclose(parts, mix, atol=1e-5)
    assert summary["model_rms_error"] == pytest.approx(rms(model - mix), rel=1e-4)
    assert summary["model_relative_error"] == pytest.approx(rms(model - mix) / rms(mix), abs=1e-5)
    assert 0.01 < summary["model_relative_error"] < 1.0  # a real, stated approximation error
    notes = summary["file_notes"]
    assert "model_relative_error" in notes["model.wav"] and "add up to the mix" in notes["component-NN.wav"]
    res = resynthesize(dec)
    assert res.model_relative_error == pytest.approx(summary["model_relative_error"], abs=1e-5)


def test_w_png_has_a_log_frequency_axis_with_readable_labels() -> None:
    """Papercut: W.png gave everything below 2 kHz a thin strip of a linear axis."""
    W = np.random.default_rng(0).random((1025, 3))
    fig = templates_figure(W, sr=22050, n_fft=2048)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    assert lo == pytest.approx(20.0) and hi == pytest.approx(11025.0)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["20", "50", "100", "200", "500", "1k", "2k", "5k", "10k"]
    # 100 Hz to 1 kHz now takes a third of the height (it was 8 % on the linear axis)
    share = (np.log10(1000) - np.log10(100)) / (np.log10(hi) - np.log10(lo))
    assert share > 0.3
    assert log_frequency_ticks(30.0, 4000.0) == ([50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0],
                                                ["50", "100", "200", "500", "1k", "2k"])
    import matplotlib.pyplot as plt

    plt.close(fig)


# -- bad input -------------------------------------------------------------------------------
def test_k_larger_than_the_matrix_allows() -> None:
    with pytest.raises(ConfigError, match=r"k = 9 .*rank ≤ 6"):
        fit_nmf(np.ones((6, 20)), config=NMFConfig(n_components=9))


@pytest.mark.parametrize("bad, words", [(-1.0, "negative"), (np.nan, "NaN"), (np.inf, "infinite")])
def test_negative_or_nan_input(bad: float, words: str) -> None:
    V = low_rank()
    V[3, 4] = bad
    with pytest.raises(InputError, match=words):
        fit_nmf(V, config=NMFConfig(n_components=2))


def test_silence_is_a_clear_error_not_nan() -> None:
    with pytest.raises(InputError, match="all zeros"):
        fit_nmf(np.zeros((20, 30)), config=NMFConfig(n_components=2))
    with pytest.raises(InputError, match="silent"):
        decompose(np.zeros(8000, dtype=np.float32), sr=8000)


@pytest.mark.parametrize("beta", BETAS)
def test_partly_silent_input_has_no_division_by_zero(beta: float) -> None:
    V = low_rank()
    V[:, 10:25] = 0.0  # silent frames
    V[30:, :] = 0.0  # empty frequency rows (low-passed audio)
    with np.errstate(divide="raise", invalid="raise", over="raise"):
        r = fit_nmf(V, config=NMFConfig(n_components=3, beta=beta, max_iter=50))
    assert np.isfinite(r.W).all() and np.isfinite(r.H).all() and np.isfinite(r.losses).all()


@pytest.mark.parametrize("beta", [*BETAS, 1.5])
@pytest.mark.parametrize("zeros", [False, True])
def test_beta_divergence_is_the_textbook_sum(beta: float, zeros: bool) -> None:
    """beta_divergence (blocks of rows, float32 products, its KL fast path when V has no zeros) against the
    definition written out in float64, zeros contributing their limits."""
    rng = np.random.default_rng(9)
    V = (rng.gamma(1.0, 1.0, (300, 500)) + 1e-3).astype(np.float32)
    if zeros:
        V[::7, ::3] = 0.0
    W, H = (rng.random((300, 6)) + 0.1).astype(np.float32), (rng.random((6, 500)) + 0.1).astype(np.float32)
    Vd, WH = V.astype(np.float64), W.astype(np.float64) @ H.astype(np.float64)
    pos = Vd > 0
    if beta == 2:
        ref = 0.5 * np.sum((Vd - WH) ** 2)
    elif beta == 1:
        ref = np.sum(Vd[pos] * np.log(Vd[pos] / WH[pos])) - Vd.sum() + WH.sum()
    elif beta == 0:
        r = np.maximum(Vd, np.finfo(np.float32).tiny) / WH
        ref = np.sum(r - np.log(r) - 1)
    else:
        ref = np.sum(Vd**beta + (beta - 1) * WH**beta - beta * Vd * WH ** (beta - 1)) / (beta * (beta - 1))
    assert beta_divergence(V, W, H, beta=beta) == pytest.approx(ref, rel=1e-6)


def test_mosaic_resamples_a_different_rate_and_says_so(tmp_path: Path) -> None:
    src = write(tmp_path / "src44.wav", tone(660.0, 1.0, sr=44100, seed=2), sr=44100)
    tgt = write(tmp_path / "tgt22.wav", tone(440.0, 0.8, sr=22050, seed=3), sr=22050)
    notes: list[str] = []
    res = mosaic_files(src, tgt, config=MosaicConfig(n_iter=10), on_note=notes.append)
    assert res.sr == 22050 and len(res.y) == int(0.8 * 22050)
    assert len(notes) == 1 and "44100 Hz" in notes[0] and "resampled to 22050" in notes[0]
    assert np.isfinite(res.y).all() and np.abs(res.y).max() > 0


def test_mosaic_of_a_signal_by_itself_sounds_like_it() -> None:
    y = np.concatenate([tone(220.0, 0.5, sr=8000), tone(880.0, 0.5, sr=8000, seed=1)])
    cfg = MosaicConfig(n_fft=512, hop_length=128, n_iter=40, repetition=2, polyphony=5, continuity=2)
    res = mosaic(y, y, sr=8000, config=cfg)
    S_in, S_out = np.abs(stft(y, n_fft=512, hop_length=128)), np.abs(stft(res.y, n_fft=512, hop_length=128))
    corr = np.corrcoef(S_in.ravel(), S_out.ravel())[0, 1]
    assert corr > 0.9
    assert res.fit.H.shape == (res.info["source_frames_used"], S_in.shape[1])


def test_let_it_bee_defaults_live_in_the_library() -> None:
    paper = MosaicConfig.with_constraints(let_it_bee=True)
    assert (paper.repetition, paper.polyphony, paper.continuity) == (3, 10, 3)
    mixed = MosaicConfig.with_constraints(let_it_bee=True, repetition=0, polyphony=4)
    assert (mixed.repetition, mixed.polyphony, mixed.continuity) == (0, 4, 3)  # given values win, 0 included
    learned = MosaicConfig.with_constraints(let_it_bee=True, templates=8)
    assert learned.continuity == 0 and learned.repetition == 3  # templates have no frame order
    plain = MosaicConfig.with_constraints(n_iter=5)
    assert (plain.repetition, plain.polyphony, plain.continuity, plain.n_iter) == (0, 0, 0, 5)


def test_mosaic_rejects_bad_options_and_silence() -> None:
    with pytest.raises(ConfigError, match="continuity"):
        MosaicConfig(templates=8, continuity=3)
    with pytest.raises(InputError, match="silent"):
        mosaic(np.zeros(4000, np.float32), tone(440.0, 0.5, sr=8000), sr=8000, config=MosaicConfig(n_fft=512, hop_length=128))


def test_loss_every_records_a_sparser_curve_with_the_same_result() -> None:
    V = low_rank(seed=6)
    dense = fit_nmf(V, config=NMFConfig(n_components=3, max_iter=35, tol=0))
    sparse = fit_nmf(V, config=NMFConfig(n_components=3, max_iter=35, tol=0, loss_every=10))
    assert list(sparse.loss_iterations) == [0, 10, 20, 30, 35]
    np.testing.assert_allclose(sparse.losses, dense.losses[[0, 10, 20, 30, 35]], rtol=1e-5)
    np.testing.assert_array_equal(sparse.W, dense.W)


def test_load_nmf_refuses_other_npz(tmp_path: Path) -> None:
    np.savez(tmp_path / "other.npz", spec=np.zeros(3))
    with pytest.raises(InputError, match="not a specmusic nmf.npz"):
        load_nmf(tmp_path / "other.npz")


# -- long signals: blocked STFT pair, bounded memory, estimates that hold --------------------
@pytest.mark.parametrize(("n_fft", "hop", "n"), [(2048, 512, 50_000), (100, 30, 777), (64, 16, 10)])
def test_blocked_stft_pair_is_the_one_stft_pair(n_fft: int, hop: int, n: int) -> None:
    from specmusic.nmf.blocks import istft_blocks, stft_blocks

    y = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    X = stft(y, n_fft=n_fft, hop_length=hop, dtype=np.complex64)
    np.testing.assert_array_equal(stft_blocks(y, n_fft=n_fft, hop_length=hop, block_frames=7), X)  # bit for bit
    X64 = X.astype(np.complex128)
    back = istft_blocks(lambda t0, t1: X64[:, t0:t1], n_fft=n_fft, n_frames=X.shape[1], hop_length=hop, length=n,
                        block_frames=5)
    np.testing.assert_allclose(back, istft(X64, hop_length=hop, length=n), atol=1e-12)


def _peak_bytes(fn) -> int:
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_nmf_memory_estimate_bounds_the_measured_peak(tmp_path: Path) -> None:
    from specmusic.nmf import Decomposition, SpectrogramConfig, load_spectrogram_for_nmf
    from specmusic.nmf.memory import nmf_memory

    song = write(tmp_path / "song.wav", np.concatenate([tone(220.0, 30.0), tone(330.0, 30.0, seed=1)]))
    spec = SpectrogramConfig()

    def run() -> None:  # what `specmusic nmf song.wav -c 4 -o out` does
        y, X, V = load_spectrogram_for_nmf(song, spec=spec)
        result = fit_nmf(V, config=NMFConfig(n_components=4, max_iter=3, threads=2))
        save_decomposition(tmp_path / "out", Decomposition(y=y, X=X, V=V, result=result, spec=spec, sr=22050))

    measured = _peak_bytes(run)
    estimate = nmf_memory(60 * 22050, sample_rate=22050, n_components=4, threads=2).bytes
    assert measured <= estimate <= 1.6 * measured, (measured, estimate)
    # the parts are computed a block of frames at a time: no spectrogram-sized float64 or complex128
    # temporaries (≈ 80 bytes a bin before, which made a 1-hour song need 5.9 GB)
    bins = 1025 * (1 + 60 * 22050 // 512)
    assert measured < 40 * bins


def test_mosaic_memory_estimate_bounds_the_measured_peak(tmp_path: Path) -> None:
    from specmusic.nmf.memory import mosaic_memory

    src, tgt = write(tmp_path / "s.wav", tone(440.0, 10.0)), write(tmp_path / "t.wav", tone(330.0, 30.0, seed=1))
    config = MosaicConfig.with_constraints(let_it_bee=True, n_iter=2, threads=2)
    measured = _peak_bytes(lambda: mosaic_files(src, tgt, config=config))
    estimate = mosaic_memory(10 * 22050, 30 * 22050, sample_rate=22050, threads=2, constrained=True).bytes
    assert measured <= estimate <= 1.6 * measured, (measured, estimate)


def test_mosaic_takes_fewer_threads_when_that_fits_the_memory_bound(tmp_path: Path) -> None:
    from specmusic.nmf.memory import mosaic_memory

    src, tgt = write(tmp_path / "s.wav", tone(440.0, 30.0)), write(tmp_path / "t.wav", tone(330.0, 20.0, seed=1))
    one, four = (mosaic_memory(30 * 22050, 20 * 22050, sample_rate=22050, threads=t).bytes for t in (1, 4))
    assert four > one
    notes: list[str] = []
    res = mosaic_files(src, tgt, config=MosaicConfig(n_iter=2, threads=4), max_memory_gb=(one + four) / 2e9,
                       on_note=notes.append)
    assert np.isfinite(res.y).all()
    assert any("instead of 4" in n and "--max-memory" in n for n in notes), notes
    with pytest.raises(ConfigError, match="more than --max-memory"):
        mosaic_files(src, tgt, config=MosaicConfig(n_iter=2, threads=4), max_memory_gb=one / 2e9)


# -- the sweep and the mosaic as the commands run them, without Typer ----------------------------------------
def test_parse_components_sorts_and_refuses_what_is_no_k() -> None:
    assert parse_components(["4,6", "8", " 4 ", "2"]) == [2, 4, 6, 8]
    for bad in (["0"], ["4,x"], ["-3"], [","]):
        with pytest.raises(ConfigError, match="--components"):
            parse_components(bad)


def test_sweep_nmf_fits_each_k_from_one_decoding_and_returns_what_the_command_prints(tmp_path: Path) -> None:
    song = write(tmp_path / "duet.wav", np.concatenate([tone(196.0, 0.6, sr=8000), tone(1318.0, 0.6, sr=8000, seed=1)]),
                 sr=8000)
    seen, lines = [], []
    sweep = sweep_nmf(song, ks=[2, 3], spectrogram=SpectrogramConfig(sample_rate=8000, n_fft=512, hop_length=128),
                      config=NMFConfig(beta=2.0, max_iter=20), output=tmp_path / "out", report=True, plots=False,
                      log=lines.append, on_run=seen.append)
    assert [r.k for r in sweep.runs] == [2, 3] and seen == sweep.runs  # each k handed over as it is done
    rows = [r.to_dict() for r in sweep.runs]
    assert {"k", "loss_name", "loss", "initial_loss", "iterations", "converged", "seconds", "output",
            "model_relative_error"} == set(rows[0])
    assert rows[0]["loss_name"] == "euclidean" and rows[1]["loss"] <= rows[1]["initial_loss"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"k2", "k3", "report.png"}  # one folder per k
    assert (tmp_path / "out" / "k3" / "component-03.wav").is_file() and sweep.report_png == tmp_path / "out" / "report.png"
    table = sweep.table()
    assert table[0].split() == ["k", "final", "euclidean", "vs", "k=2", "iterations", "seconds"]
    assert [line.split()[0] for line in table[1:]] == ["2", "3"] and table[1].split()[2] == "1.000"
    assert lines[0].startswith("nmf: ") and "k = 2 3" in lines[0]
    bare = sweep_nmf(song, ks=[2], spectrogram=SpectrogramConfig(sample_rate=8000, n_fft=512, hop_length=128),
                     config=NMFConfig(max_iter=5))  # nothing written without an output folder
    assert bare.report_png is None and set(bare.runs[0].to_dict()) == set(rows[0]) - {"output", "model_relative_error"}


def test_mosaic_to_file_writes_the_audio_and_its_pictures(tmp_path: Path) -> None:
    src = write(tmp_path / "src.wav", tone(660.0, 0.6, sr=8000, seed=2), sr=8000)
    tgt = write(tmp_path / "tgt.wav", tone(440.0, 0.5, sr=8000, seed=3), sr=8000)
    config = MosaicConfig(n_fft=512, hop_length=128, n_iter=5)
    info = mosaic_to_file(src, tgt, tmp_path / "m.wav", config=config)
    assert (tmp_path / "m.wav").is_file() and (tmp_path / "m.png").is_file() and (tmp_path / "m.loss.png").is_file()
    assert info["iterations"] == 5 and info["sample_rate"] == 8000 and len(info["plots"]) == 2
    with pytest.raises(ConfigError, match="--plots"):
        mosaic_to_file(src, tgt, "-", config=config, plots=True)
    with pytest.raises(InputError):
        mosaic_to_file(src, tgt, tmp_path / "m.txt", config=config)

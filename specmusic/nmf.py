"""Non-negative matrix factorisation of spectrograms, and audio mosaicing, in numpy alone.

``V ≈ W @ H`` with ``V`` a magnitude (or power) spectrogram [shape=(n_freqs, n_frames)], ``W`` the
spectral templates [shape=(n_freqs, k)] and ``H`` their activations over time [shape=(k, n_frames)].
The solver is the multiplicative-update (MU) algorithm for the β-divergence family (Lee & Seung 2001
for Euclidean and Kullback–Leibler; Févotte & Idier 2011 for general β, with their exponent
``gamma`` that makes every step non-increasing).

Why it reaches scikit-learn's ``NMF(solver="mu")`` divergence several times sooner:

- more descent per pass over ``V`` (the expensive part: products of ``k``-wide matrices with the whole
  spectrogram). Euclidean: 10 W steps and 10 H steps per pass (accelerated MU, Gillis & Glineur 2012):
  every W step for fixed H reuses ``V·Hᵀ`` and every H step reuses ``Wᵀ·V``, so the extra steps cost
  ``k``-sized work only. KL: each step's factor is raised to the power 1.5 (over-relaxation); a pass that
  raises the loss is undone and the steps fall back to the textbook exponent, so the kept iterates never
  get worse. ``inner=1, relax=1`` is the textbook update, the same arithmetic as scikit-learn's;
- one fused pass over ``V`` per iteration for the other β: the W update is separable by frequency rows,
  so each block of ``V`` (≈ 512 KiB) gives ``W[b] @ H``, ``V[b] / WH[b]``, the new ``W[b]``, ``W[b] @ H``
  again and its share of the H numerator while it is in cache (see :class:`_Solver`);
- the blocks are shared out among threads, one per CPU, each with one BLAS thread (scikit-learn's
  element-wise steps run on one core whatever BLAS does); Euclidean, whose time is two big products
  per pass, runs serially with one BLAS thread per CPU instead;
- no ``(n_freqs, n_frames)`` temporaries, copies or ``eps`` guard passes: ``W`` and ``H`` are kept
  above a tiny floor (a ``k``-sized clip), which keeps ``W @ H`` strictly positive; KL denominators
  are ``W.sum(axis=0)`` / ``H.sum(axis=1)``;
- the loss of every iteration comes almost free: KL reuses the ratio ``V / WH`` the update needs
  anyway (one log pass), Euclidean uses ``‖V‖² − 2⟨W, VHᵀ⟩ + ⟨WᵀW, HHᵀ⟩`` on ``k``-sized arrays.

Defaults (one block)::

    n_components = 8          # k, the number of templates
    beta         = 1.0        # 2 Euclidean, 1 Kullback–Leibler, 0 Itakura–Saito (any real β works)
    max_iter     = 200        # multiplicative iterations at most (one W step + one H step each)
    tol          = 1e-4       # stop once 10 iterations lower the loss by < tol × the initial loss; 0: never
    init         = "nndsvda"  # random | nndsvd | nndsvda (NNDSVD with zeros filled by the mean)
    seed         = 0          # random init and the randomised SVD of NNDSVD
    dtype        = "float32"  # float32 (fast) or float64
    loss_every   = 1          # record the loss every this many iterations (1: the whole curve)
    threads      = 0          # solver threads, each on its own rows of V with one BLAS thread; 0 = every
                              # CPU this process may use, 1 = serial (same numbers up to summation order)
    inner        = 0          # multiplicative steps per factor and iteration; 0 = auto: 10 for Euclidean
                              # (accelerated MU, Gillis & Glineur 2012: further W steps reuse V·Hᵀ and
                              # further H steps reuse Wᵀ·V, at ~1 % of a pass each), 1 for other β, whose
                              # every step needs a new V / WH; 1 = the textbook update (= scikit-learn's)
    relax        = 0.0        # exponent on each multiplicative step (over-relaxation); 0 = auto: 1.5 for KL,
                              # 1 otherwise. An iteration that raises the loss is undone and the exponent
                              # drops to 1 for good, so the kept iterates never get worse; 1 = textbook

Spectrograms: :func:`stft` / :func:`istft` are one consistent numpy pair (periodic Hann window,
centred frames, window-square normalised overlap-add), so soft masks that sum to one give parts
that sum back to the mix sample for sample.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from specmusic import stft as _stft
from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError

__all__ = [
    "LOSSES",
    "NMFConfig",
    "NMFResult",
    "MosaicConfig",
    "loss_beta",
    "beta_divergence",
    "initialize_nmf",
    "fit_nmf",
    "stft",
    "istft",
    "magnitude",
    "soft_masks",
    "separate_components",
    "component_stats",
    "reconstruct",
    "SpectrogramConfig",
    "Decomposition",
    "load_spectrogram_for_nmf",
    "decompose",
    "save_decomposition",
    "load_nmf",
    "save_nmf_plots",
    "save_report_plot",
    "MosaicResult",
    "mosaic",
    "mosaic_files",
]

#: Loss names accepted by the CLI, and their β.
LOSSES: dict[str, float] = {"euclidean": 2.0, "kl": 1.0, "is": 0.0}

_FLOOR = 1e-12  # W and H never go below this: W @ H stays > 0 in float32 (k · 1e-24 ≫ 1e-38)
_WH_FLOOR_IS = 1e-15  # β < 1 raises W @ H to negative powers; keep its square a normal float32


def loss_beta(loss: str | float) -> float:
    """β of a loss name (``euclidean``, ``kl``, ``is``) or of a number given as text.

    Raises
    ------
    ConfigError
        Unknown name.
    """
    if isinstance(loss, (int, float)):
        return float(loss)
    key = str(loss).strip().lower()
    aliases = {"frobenius": "euclidean", "kullback-leibler": "kl", "itakura-saito": "is"}
    key = aliases.get(key, key)
    if key in LOSSES:
        return LOSSES[key]
    try:
        return float(key)
    except ValueError:
        raise ConfigError(f"unknown loss {loss!r} — use euclidean, kl, is, or a number β") from None


def _loss_name(beta: float) -> str:
    return {2.0: "euclidean", 1.0: "kl", 0.0: "is"}.get(float(beta), f"beta={beta:g}")


@dataclass(frozen=True)
class NMFConfig(ConfigBase):
    """How :func:`fit_nmf` factorises (see the module docstring for the defaults)."""

    what = "NMF config"

    n_components: int = 8
    beta: float = 1.0
    max_iter: int = 200
    tol: float = 1e-4
    init: str = "nndsvda"
    seed: int = 0
    dtype: str = "float32"
    loss_every: int = 1
    threads: int = 0
    inner: int = 0
    relax: float = 0.0

    def __post_init__(self) -> None:
        if self.n_components < 1:
            raise ConfigError(f"k = {self.n_components} — the number of components must be at least 1")
        if self.max_iter < 0:
            raise ConfigError("max_iter must be >= 0 — give a number of iterations")
        if self.tol < 0:
            raise ConfigError("tol must be >= 0 — 0 runs all max_iter iterations")
        if self.init not in ("random", "nndsvd", "nndsvda"):
            raise ConfigError(f"unknown init {self.init!r} — use random, nndsvd or nndsvda")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype {self.dtype!r} — use float32 or float64")
        if self.relax != 0 and not 1.0 <= self.relax <= 2.0:
            raise ConfigError(f"relax {self.relax:g} — use 0 (auto), 1 (textbook steps) or up to 2")
        if self.inner < 0:
            raise ConfigError("inner must be >= 0 — 0 picks by loss, 1 is the textbook update")
        if self.threads < 0:
            raise ConfigError("threads must be >= 0 — 0 uses every CPU, 1 runs serially")
        if self.loss_every < 1:
            raise ConfigError("loss_every must be >= 1 — 1 records the loss at every iteration")
        if not math.isfinite(self.beta):
            raise ConfigError("beta must be a finite number — 2 Euclidean, 1 KL, 0 IS")

    @property
    def inner_steps(self) -> int:
        """Steps per factor and iteration (:attr:`inner`, with 0 resolved)."""
        if self.inner:
            return self.inner
        return 10 if float(self.beta) == 2.0 else 1

    @property
    def relax_exponent(self) -> float:
        """Step exponent (:attr:`relax`, with 0 resolved)."""
        if self.relax:
            return float(self.relax)
        return 1.5 if float(self.beta) == 1.0 else 1.0


@dataclass
class NMFResult:
    """A factorisation ``V ≈ W @ H``.

    Attributes
    ----------
    W : np.ndarray [shape=(n_freqs, k)] templates
    H : np.ndarray [shape=(k, n_frames)] activations
    losses : np.ndarray [shape=(n_losses,)], float64: the β-divergence at init, then after the
        iterations in ``loss_iterations``
    loss_iterations : np.ndarray [shape=(n_losses,)], int: 0 (init), then the iteration of each loss
    n_iter : iterations run
    seconds : wall time of the iterations (init excluded)
    converged : the tolerance stopped it before ``max_iter``
    beta : the β of the divergence
    undone : over-relaxed passes undone because they raised the loss (then textbook steps follow)
    """

    W: np.ndarray
    H: np.ndarray
    losses: np.ndarray
    n_iter: int
    seconds: float
    converged: bool
    beta: float
    loss_iterations: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    init_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    undone: int = 0

    @property
    def loss(self) -> float:
        """The final divergence."""
        return float(self.losses[-1])

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (no arrays but the loss curve)."""
        return {
            "k": int(self.W.shape[1]),
            "beta": self.beta,
            "loss_name": _loss_name(self.beta),
            "loss": self.loss,
            "initial_loss": float(self.losses[0]),
            "iterations": self.n_iter,
            "converged": self.converged,
            "seconds": round(self.seconds, 6),
            "seconds_per_iteration": round(self.seconds / max(self.n_iter, 1), 9),
            "init_seconds": round(self.init_seconds, 6),
            "undone_passes": self.undone,
            "loss_curve": [float(x) for x in self.losses],
            "loss_curve_iterations": [int(i) for i in self.loss_iterations],
        }


# -- validation ------------------------------------------------------------------------------
def _check_matrix(V: Any, *, name: str = "V") -> np.ndarray:
    """Validate a non-negative 2-D matrix; return it unchanged (no copy)."""
    V = np.asarray(V)
    if V.ndim != 2:
        raise InputError(f"{name} has shape {V.shape}, not (n_freqs, n_frames) — pass a 2-D spectrogram")
    if V.size == 0:
        raise InputError(f"{name} is empty {V.shape} — give audio longer than one frame")
    if not np.issubdtype(V.dtype, np.number) or np.iscomplexobj(V):
        raise InputError(f"{name} has dtype {V.dtype} — pass real, non-negative magnitudes (np.abs of an STFT)")
    lo, hi = float(V.min()), float(V.max())  # two reductions, no temporaries; NaN propagates
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError(f"{name} contains NaN or infinite values — clean the input (np.nan_to_num) first")
    if lo < 0:
        raise InputError(f"{name} has negative values (min {lo:.3g}) — NMF needs magnitudes: pass np.abs(...)")
    if hi == 0:
        raise InputError(f"{name} is all zeros (silence) — there is nothing to decompose; pick a louder excerpt")
    return V


def _check_k(k: int, shape: tuple[int, int]) -> None:
    if k > min(shape):
        raise ConfigError(
            f"k = {k} components is more than the matrix allows: {shape[0]}×{shape[1]} has rank ≤ {min(shape)}"
            f" — use k ≤ {min(shape)} (or a longer excerpt / larger n_fft)"
        )


# -- divergence ------------------------------------------------------------------------------
def beta_divergence(V: np.ndarray, W: np.ndarray, H: np.ndarray, *, beta: float) -> float:
    """The β-divergence ``D_β(V ‖ W @ H)`` (scikit-learn's convention), summed in float64.

    β = 2: ``½‖V − WH‖²``; β = 1: ``Σ V log(V/WH) − V + WH``; β = 0: ``Σ V/WH − log(V/WH) − 1``.
    Entries with ``V = 0`` contribute their limit (0 for the log terms). ``W @ H`` is formed block
    by block in the inputs' precision (float32 inputs: float32 products, float64 sums).
    """
    dt = np.result_type(np.asarray(V).dtype, np.asarray(W).dtype, np.asarray(H).dtype, np.float32)
    V = np.asarray(V, dtype=dt)
    W = np.asarray(W, dtype=dt)
    H = np.asarray(H, dtype=dt)
    tiny = np.finfo(dt).tiny
    rows = int(min(V.shape[0], max(1, (1 << 17) // max(V.shape[1], 1))))
    total = 0.0
    for s in range(0, V.shape[0], rows):
        Vb = V[s : s + rows]
        WH = np.maximum(W[s : s + rows] @ H, tiny)
        if beta == 2:
            d = Vb - WH
            total += 0.5 * float(np.square(d, dtype=np.float64).sum())
        elif beta == 1:
            pos = Vb > 0
            Vp = Vb[pos]
            total += float(np.sum(Vp.astype(np.float64) * np.log(Vp.astype(np.float64) / WH[pos])))
            total += float(WH.sum(dtype=np.float64)) - float(Vb.sum(dtype=np.float64))
        elif beta == 0:
            ratio = np.maximum(Vb, tiny).astype(np.float64) / WH
            total += float(np.sum(ratio - np.log(ratio) - 1.0))
        else:
            Vd, WHd = Vb.astype(np.float64), WH.astype(np.float64)
            total += float(np.sum(Vd**beta + (beta - 1) * WHd**beta - beta * Vd * WHd ** (beta - 1)) / (beta * (beta - 1)))
    return total


# -- initialisation --------------------------------------------------------------------------
def _truncated_svd(V: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-``k`` SVD: exact for small problems, randomised (Halko et al. 2011, 4 power steps) otherwise."""
    m, n = V.shape
    if min(m, n) <= 400 or k > min(m, n) // 4:
        U, S, Vt = np.linalg.svd(V.astype(np.float64), full_matrices=False)
        return U[:, :k], S[:k], Vt[:k]
    A = V.astype(np.float64)
    q = min(k + 10, min(m, n))
    Q = A @ rng.standard_normal((n, q))
    for _ in range(4):
        Q, _ = np.linalg.qr(Q)
        Q, _ = np.linalg.qr(A.T @ Q)
        Q = A @ Q
    Q, _ = np.linalg.qr(Q)
    Ub, S, Vt = np.linalg.svd(Q.T @ A, full_matrices=False)
    return (Q @ Ub)[:, :k], S[:k], Vt[:k]


def initialize_nmf(
    V: np.ndarray, k: int, *, init: str = "nndsvda", seed: int = 0, dtype: str = "float32"
) -> tuple[np.ndarray, np.ndarray]:
    """Starting ``W`` [shape=(n_freqs, k)] and ``H`` [shape=(k, n_frames)].

    ``random``: ``|N(0, 1)| · sqrt(mean(V) / k)`` (scikit-learn's scaling); ``nndsvd``: Boutsidis &
    Gallopoulos (2008) non-negative double SVD; ``nndsvda``: the same with its zeros set to ``mean(V)``.

    Raises
    ------
    InputError
        ``V`` is not a finite, non-negative, non-silent 2-D matrix.
    ConfigError
        ``k`` larger than ``min(V.shape)``, or an unknown ``init``.
    """
    V = _check_matrix(V)
    _check_k(k, V.shape)
    rng = np.random.default_rng(seed)
    mean = float(V.mean(dtype=np.float64))
    if init == "random":
        avg = math.sqrt(mean / k)
        H = avg * np.abs(rng.standard_normal((k, V.shape[1])))
        W = avg * np.abs(rng.standard_normal((V.shape[0], k)))
        return W.astype(dtype), H.astype(dtype)
    if init not in ("nndsvd", "nndsvda"):
        raise ConfigError(f"unknown init {init!r} — use random, nndsvd or nndsvda")
    U, S, Vt = _truncated_svd(V, k, rng)
    W = np.zeros((V.shape[0], k))
    H = np.zeros((k, V.shape[1]))
    W[:, 0] = math.sqrt(S[0]) * np.abs(U[:, 0])
    H[0, :] = math.sqrt(S[0]) * np.abs(Vt[0, :])
    for j in range(1, k):
        x, y = U[:, j], Vt[j, :]
        xp, yp = np.maximum(x, 0), np.maximum(y, 0)
        xn, yn = np.abs(np.minimum(x, 0)), np.abs(np.minimum(y, 0))
        xpn, ypn, xnn, ynn = (float(np.linalg.norm(a)) for a in (xp, yp, xn, yn))
        mp, mn = xpn * ypn, xnn * ynn
        if mp > mn:
            u, v, sigma = xp / max(xpn, 1e-300), yp / max(ypn, 1e-300), mp
        else:
            u, v, sigma = xn / max(xnn, 1e-300), yn / max(ynn, 1e-300), mn
        lbd = math.sqrt(S[j] * sigma)
        W[:, j] = lbd * u
        H[j, :] = lbd * v
    tiny = 1e-6 * max(float(W.max()), float(H.max()), 1e-300)
    W[W < tiny] = 0.0
    H[H < tiny] = 0.0
    if init == "nndsvda":
        W[W == 0] = mean
        H[H == 0] = mean
    return W.astype(dtype), H.astype(dtype)


# -- the solver ------------------------------------------------------------------------------
def _gamma(beta: float) -> float:
    """Exponent of the MM update that makes each step non-increasing (Févotte & Idier 2011)."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


class _Buffers:
    """Scratch arrays of one worker: a block of ``V``-sized rows, k-sized rows, its share of the H step."""

    def __init__(self, rows: int, n: int, k: int, beta: float, dt: np.dtype) -> None:
        self.x = np.empty((rows if beta != 2 else 0, n), dtype=dt)  # Euclidean needs no V-sized buffer
        self.x2 = np.empty((rows, n), dtype=dt) if beta not in (1, 2) else np.empty((0, n), dtype=dt)
        self.g = np.empty((rows, k), dtype=dt)
        self.g2 = np.empty((rows, k), dtype=dt)
        self.part = np.empty((k, n), dtype=dt)
        self.hnum = np.empty((k, n), dtype=dt)
        self.hden = np.empty((k, n), dtype=dt)


def solver_threads(threads: int = 0) -> int:
    """Worker threads for ``threads`` (0: the CPUs this process may use)."""
    if threads > 0:
        return threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class _Solver:
    """One fused pass over ``V`` per iteration: the W step, then the H step, block by block.

    The W update is separable by rows: ``W[b]`` needs only ``V[b]`` (a block of frequency rows)
    and the old ``H``. So each block of ``V`` is read from memory once per iteration, while it is
    in cache: ``W[b] @ H`` → ``V[b] / WH[b]`` → the new ``W[b]`` → ``W[b] @ H`` again → its share
    of the H step's numerator ``W[b]ᵀ (V[b] / WH[b])``, with no ``(n_freqs, n_frames)`` temporaries.
    With ``inner=1, relax=1`` the arithmetic is exactly the textbook W-then-H update (scikit-learn's);
    ``inner`` > 1 adds Euclidean steps that reuse the pass's products, ``relax`` raises every step's
    factor to that power. With ``track`` the loss of the state *before* the pass comes from the same
    intermediates.

    With ``threads`` > 1 the blocks are shared out among worker threads (numpy's matrix products
    and ufuncs release the GIL), each with its own buffers and its own share of the H numerator;
    the shares are summed in a fixed order, so results do not depend on thread timing; BLAS must then
    run one thread (:func:`fit_nmf` sets :attr:`blas_threads`). Euclidean is one block on one thread,
    and ``threads`` become BLAS threads instead.
    """

    def __init__(self, V: np.ndarray, W: np.ndarray, H: np.ndarray, beta: float, threads: int = 1,
                 inner: int = 1, relax: float = 1.0) -> None:
        self.beta = beta
        self.relax = relax  # over-relaxation: each step's factor is raised to gamma · relax
        self.inner = max(1, inner) if beta == 2 else 1  # only Euclidean steps can reuse a pass
        self.gamma = _gamma(beta)
        self.V, self.W, self.H = V, W, H
        f, n = V.shape
        k = W.shape[1]
        # a block of V ≈ 512 KiB of float32; Euclidean is two big products per pass (V·Hᵀ, Wᵀ·V) and
        # k-sized steps: one block, no worker threads, and BLAS's own threads split the products
        rows = f if beta == 2 else int(min(f, max(4, (1 << 17) // max(n, 1))))
        blocks = [(s, min(f, s + rows)) for s in range(0, f, rows)]
        self.blocks = blocks
        workers = 1 if beta == 2 else max(1, min(threads, len(blocks)))
        self.blas_threads = max(1, threads) if beta == 2 else 1
        # blocks dealt out in turn: rows of similar cost (low vs high frequencies) spread over the workers
        self.shares = [blocks[i::workers] for i in range(workers)]
        # sums of V, accumulated in float64 one block of rows at a time (no float64 copy of all of V): the
        # Euclidean loss ½(‖V‖² − 2⟨W, VHᵀ⟩ + ⟨WᵀW, HHᵀ⟩) is a small difference of large terms, and a float32
        # dot product of ‖V‖² was off by ~1e-4 of it — nearly 1 % of the loss on a real spectrogram
        step = max(1, (1 << 17) // max(n, 1))
        self.v_sq = sum(float(np.square(V[s : s + step], dtype=np.float64).sum()) for s in range(0, f, step)) if beta == 2 else 0.0
        self.v_sum = float(V.sum(dtype=np.float64)) if beta == 1 else 0.0
        self.v_log_sum = float(np.log(V).sum(dtype=np.float64)) if beta == 0 else 0.0
        dt = V.dtype
        self.bufs = [_Buffers(rows, n, k, beta, dt) for _ in range(workers)]
        self.HT = np.empty((n, k), dtype=dt)
        self.hden = np.empty((k, n), dtype=dt)
        self.hnum_step = np.empty((k, n), dtype=dt)
        self.P = np.empty((f, k), dtype=dt)
        self._pool: ThreadPoolExecutor | None = ThreadPoolExecutor(workers - 1) if workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _map(self, fn: Callable[[list[tuple[int, int]], _Buffers], float]) -> float:
        """``fn(blocks, buffers)`` for every worker's share; the sum of what they return."""
        if self._pool is None:
            return fn(self.shares[0], self.bufs[0])
        # the calling thread takes the first share itself: one hand-off per worker and iteration, and
        # the thread that is already running (and its core, awake) does a full share of the work
        futures = [self._pool.submit(fn, blocks, buf) for blocks, buf in zip(self.shares[1:], self.bufs[1:])]
        first = fn(self.shares[0], self.bufs[0])
        return first + sum(f.result() for f in futures)

    def _gather(self, name: str) -> np.ndarray:
        """The workers' shares of ``hnum`` or ``hden`` summed, in worker order."""
        out = getattr(self.bufs[0], name)
        for b in self.bufs[1:]:
            out += getattr(b, name)
        return out

    def _finish(self, X: np.ndarray, num: np.ndarray, den: np.ndarray) -> None:
        """``X *= (num / den) ** gamma`` in place, then lift ``X`` to the floor."""
        num /= np.maximum(den, _FLOOR, out=den)
        if self.gamma * self.relax != 1.0:
            num **= self.gamma * self.relax
        X *= num
        np.maximum(X, _FLOOR, out=X)

    def iterate(self, *, update_w: bool, track: bool) -> float:
        """One W step (unless ``update_w`` is False) and one H step; the loss before them, or NaN."""
        if self.beta == 2:
            return self._iterate_euclidean(update_w, track)
        return self._iterate_beta(update_w, track)

    def _iterate_euclidean(self, update_w: bool, track: bool) -> float:
        V, W, H = self.V, self.W, self.H
        np.copyto(self.HT, H.T)
        HHt = H @ self.HT
        W_old = W.copy() if track and update_w else W
        P = self.P

        def work(blocks: list[tuple[int, int]], buf: _Buffers) -> float:
            buf.hnum.fill(0.0)
            for s, e in blocks:
                Vb, Wb = V[s:e], W[s:e]
                if update_w:
                    p = np.matmul(Vb, self.HT, out=P[s:e])  # V[b] Hᵀ
                    for _ in range(self.inner):  # W[b] steps for fixed H: each reuses V[b] Hᵀ
                        den = np.matmul(Wb, HHt, out=buf.g2[: e - s])
                        np.divide(p, np.maximum(den, _FLOOR, out=den), out=buf.g[: e - s])
                        if self.relax != 1.0:
                            buf.g[: e - s] **= self.relax
                        Wb *= buf.g[: e - s]
                        np.maximum(Wb, _FLOOR, out=Wb)
                buf.hnum += np.matmul(Wb.T, Vb, out=buf.part)  # Wᵀ V, block by block, V[b] still in cache
            return 0.0

        self._map(work)
        hnum = self._gather("hnum")
        loss = math.nan
        if track:
            # ½‖V − WH‖² = ½(‖V‖² − 2⟨W, V Hᵀ⟩ + ⟨WᵀW, H Hᵀ⟩), all on k-sized arrays
            W64 = W_old.astype(np.float64)
            cross = float(np.vdot(W64, P.astype(np.float64))) if update_w else float(
                np.vdot(H.astype(np.float64), hnum.astype(np.float64)))
            loss = 0.5 * (self.v_sq - 2.0 * cross + float(np.vdot(W64.T @ W64, HHt.astype(np.float64))))
        WtW = W.T @ W

        for _ in range(self.inner):  # H steps for fixed W: each reuses Wᵀ V (k-sized work, serial)
            num = np.divide(hnum, np.maximum(np.matmul(WtW, H, out=self.hden), _FLOOR), out=self.hnum_step)
            if self.relax != 1.0:
                num **= self.relax
            H *= num
            np.maximum(H, _FLOOR, out=H)
        return loss

    def _ratio(self, Wb: np.ndarray, Vb: np.ndarray, x: np.ndarray, x2: np.ndarray, track: bool) -> tuple:
        """For one block (β ∉ {1, 2}): ``top = V · WH^(β−2)`` and ``bottom = WH^(β−1)``, plus the
        block's share of the loss of the current state."""
        beta = self.beta
        np.matmul(Wb, self.H, out=x)
        share = 0.0
        if beta < 1:
            np.maximum(x, _WH_FLOOR_IS, out=x)
        if beta == 0:
            inv = np.divide(1.0, x, out=x2)
            ratio = np.multiply(Vb, inv, out=x)  # V / WH
            if track:
                share = float(ratio.sum(dtype=np.float64)) - float(np.log(inv).sum(dtype=np.float64))
            return np.multiply(ratio, inv, out=ratio), inv, share
        if track:
            share = float(
                np.sum((beta - 1) * np.power(x, beta) - beta * Vb * np.power(x, beta - 1), dtype=np.float64)
            )
        bottom = np.power(x, beta - 1, out=x2)
        top = np.divide(bottom, x, out=x)
        top *= Vb
        return top, bottom, share

    def _kl_blocks(self, blocks: list[tuple[int, int]], buf: _Buffers, hsum: np.ndarray, update_w: bool,
                   track: bool) -> float:
        """KL on a run of row blocks: W step, then each block's share of the H numerator.

        The log for the loss is taken in place once the ratio has been used (no second buffer).
        Returns the blocks' ``Σ V log(V / WH)`` for the state before the step (0 without ``track``).
        """
        H, W, V = self.H, self.W, self.V
        buf.hnum.fill(0.0)
        share = 0.0
        for s, e in blocks:
            Vb, Wb, x = V[s:e], W[s:e], buf.x[: e - s]
            ratio = np.divide(Vb, np.matmul(Wb, H, out=x), out=x)  # W, H >= floor: WH > 0, no guard pass
            if update_w:
                num = np.matmul(ratio, self.HT, out=buf.g[: e - s])
                if track:
                    share += float(np.vdot(Vb.ravel(), np.log(ratio, out=ratio).ravel()))
                num /= hsum
                if self.relax != 1.0:
                    num **= self.relax
                Wb *= num
                np.maximum(Wb, _FLOOR, out=Wb)
                ratio = np.divide(Vb, np.matmul(Wb, H, out=x), out=x)
                buf.hnum += np.matmul(Wb.T, ratio, out=buf.part)
            else:
                buf.hnum += np.matmul(Wb.T, ratio, out=buf.part)
                if track:
                    share += float(np.vdot(Vb.ravel(), np.log(ratio, out=ratio).ravel()))
        return share

    def _beta_blocks(self, blocks: list[tuple[int, int]], buf: _Buffers, update_w: bool, track: bool) -> float:
        """β ∉ {1, 2} on a run of row blocks (see :meth:`_kl_blocks`)."""
        V, W = self.V, self.W
        buf.hnum.fill(0.0)
        buf.hden.fill(0.0)
        total = 0.0
        for s, e in blocks:
            Vb, Wb = V[s:e], W[s:e]
            x, x2 = buf.x[: e - s], buf.x2[: e - s]
            top, bottom, share = self._ratio(Wb, Vb, x, x2, track)
            total += share
            if update_w:
                num = np.matmul(top, self.HT, out=buf.g[: e - s])
                self._finish(Wb, num, np.matmul(bottom, self.HT, out=buf.g2[: e - s]))
                top, bottom, _ = self._ratio(Wb, Vb, x, x2, False)
            buf.hnum += np.matmul(Wb.T, top, out=buf.part)
            buf.hden += np.matmul(Wb.T, bottom, out=buf.part)
        return total

    def _iterate_beta(self, update_w: bool, track: bool) -> float:
        V, W, H, beta = self.V, self.W, self.H, self.beta
        np.copyto(self.HT, H.T)
        kl = beta == 1
        wh_sum = float(W.sum(axis=0, dtype=np.float64) @ H.sum(axis=1, dtype=np.float64)) if track and kl else 0.0
        if kl:
            hsum = np.maximum(H.sum(axis=1), _FLOOR)
            total = self._map(lambda blocks, buf: self._kl_blocks(blocks, buf, hsum, update_w, track))
        else:
            total = self._map(lambda blocks, buf: self._beta_blocks(blocks, buf, update_w, track))
        hnum = self._gather("hnum")
        loss = math.nan
        if track:
            if kl:
                loss = total - self.v_sum + wh_sum
            elif beta == 0:
                loss = total - self.v_log_sum - V.size
            else:
                loss = (total + float(np.sum(np.power(V, beta, dtype=np.float64)))) / (beta * (beta - 1))
        if kl:
            self._finish(H, hnum, np.broadcast_to(W.sum(axis=0)[:, None], H.shape).copy())
        else:
            self._finish(H, hnum, self._gather("hden"))
        return loss

    def exact_loss(self) -> float:
        return beta_divergence(self.V, self.W, self.H, beta=self.beta)


def fit_nmf(
    V: np.ndarray,
    *,
    config: NMFConfig | None = None,
    W: np.ndarray | None = None,
    H: np.ndarray | None = None,
    fix_W: bool = False,
    track_loss: bool = True,
    h_hook: Callable[[np.ndarray, int], None] | None = None,
    progress: bool | None = False,
) -> NMFResult:
    """Factorise ``V ≈ W @ H`` by multiplicative updates of the β-divergence.

    Parameters
    ----------
    V : np.ndarray [shape=(n_freqs, n_frames)], finite, non-negative, not all zero
    config : :class:`NMFConfig` (k, β, iterations, tolerance, init, seed, dtype)
    W, H : optional starting matrices [shape=(n_freqs, k)], [shape=(k, n_frames)] (copied);
        missing ones come from ``config.init``
    fix_W : keep ``W`` fixed and learn ``H`` only (mosaicing, or known templates)
    track_loss : record the loss every ``config.loss_every`` iterations (cheap: it reuses the
        update's intermediates); ``False`` records only the first and the last, and disables ``tol``
    h_hook : ``h_hook(H, iteration)`` may change ``H`` in place before each iteration (constraints;
        the loss is then no longer guaranteed to decrease)
    progress : a progress bar on stderr (``None``: only on a terminal)

    Returns
    -------
    :class:`NMFResult`: ``losses[0]`` is the loss at init, ``losses[-1]`` the final loss (recomputed by
    :func:`beta_divergence`); the others come from the update's own intermediates (float32 by default).

    Raises
    ------
    InputError
        ``V`` not 2-D, negative, NaN/inf, or all zero (silence); a negative starting ``W``/``H``.
    ConfigError
        ``k`` larger than ``min(V.shape)``, or ``W``/``H`` of the wrong shape.
    """
    from tqdm import tqdm

    config = config or NMFConfig()
    V = _check_matrix(V)
    beta = float(config.beta)
    dtype = np.dtype(config.dtype)
    k = config.n_components if W is None else np.asarray(W).shape[1]
    if not fix_W:
        _check_k(k, V.shape)
    t0 = time.perf_counter()
    Vw = np.asarray(V, dtype=dtype, order="C")  # read only: no copy when V is already right
    if beta <= 1 and float(Vw.min()) <= 0:
        # V = 0 entries: V·log(V/WH) → 0 for KL and IS stays finite; 1e-30 changes nothing else.
        Vw = np.maximum(Vw, 1e-30 if beta == 1 else float(Vw.max()) * 1e-10)
    if W is None or H is None:
        W0, H0 = initialize_nmf(V, k, init=config.init, seed=config.seed, dtype=config.dtype)
        W = W0 if W is None else W
        H = H0 if H is None else H
    W = np.array(W, dtype=dtype, order="C", copy=True)
    H = np.array(H, dtype=dtype, order="C", copy=True)
    if W.shape != (V.shape[0], k) or H.shape != (k, V.shape[1]):
        raise ConfigError(
            f"W {W.shape} and H {H.shape} do not fit V {V.shape} — need ({V.shape[0]}, k) and (k, {V.shape[1]})"
        )
    for name, X in (("W", W), ("H", H)):
        if not np.isfinite(X).all() or (X < 0).any():
            raise InputError(f"the starting {name} has negative or non-finite values — pass a non-negative {name}")
    np.maximum(W, _FLOOR, out=W)
    np.maximum(H, _FLOOR, out=H)
    solver = _Solver(Vw, W, H, beta, solver_threads(config.threads), config.inner_steps,
                     1.0 if h_hook is not None or not track_loss else config.relax_exponent)
    init_seconds = time.perf_counter() - t0
    # One BLAS thread per worker: the solver's own threads are its parallelism (BLAS threads on top of
    # them only oversubscribe the cores), and threads=1 really uses one core. Euclidean runs serially
    # with `threads` BLAS threads instead: its time is two big products, which BLAS splits best.
    from threadpoolctl import threadpool_limits

    blas = threadpool_limits(limits=solver.blas_threads)

    losses: list[float] = [] if track_loss else [solver.exact_loss()]
    iters: list[int] = [] if track_loss else [0]
    converged = False
    n_iter = 0
    every = config.loss_every
    bar = tqdm(total=config.max_iter, desc="nmf", unit="it", file=sys.stderr, leave=False,
               disable=None if progress is None else not progress)
    start = time.perf_counter()
    kept: tuple[np.ndarray, np.ndarray, int] | None = None  # last state whose loss was accepted
    rejected = 0
    try:
        with blas:
            it = 0
            while it < config.max_iter:
                it += 1
                # The pass of iteration `it` yields the loss after iteration it-1 at little cost.
                track = track_loss and (it - 1) % every == 0
                if h_hook is not None:
                    h_hook(H, it)
                state = (W.copy(), H.copy(), it - 1) if track and solver.relax != 1.0 else None
                loss = solver.iterate(update_w=not fix_W, track=track)
                bar.update(1)
                if state is not None and kept is not None and losses and loss > losses[-1]:
                    # over-relaxed steps raised the loss: undo them (back to the last accepted state)
                    # and take textbook steps from there on; the loss of that state is recorded anew
                    W[...], H[...], it = kept
                    losses.pop()
                    iters.pop()
                    solver.relax = 1.0
                    rejected += 1
                    continue
                if track:
                    losses.append(loss)
                    iters.append(it - 1)
                    kept = state
                n_iter = it
                if config.tol > 0 and it % 10 == 0 and it < config.max_iter and track_loss:
                    # the tolerance test: loss over the last ~10 iterations fell by < tol × initial loss
                    back = [j for j, i in enumerate(iters) if i <= iters[-1] - 10]
                    if back and iters[-1] > 0 and losses[back[-1]] - losses[-1] < config.tol * losses[0]:
                        converged = True
                        break
            final = solver.exact_loss()
            if kept is not None and solver.relax != 1.0 and losses and final > losses[-1]:
                W[...], H[...], n_iter = kept  # the last relaxed steps did not pay: keep the state before them
                losses.pop()
                iters.pop()
                rejected += 1
                final = solver.exact_loss()
    finally:
        bar.close()
        solver.close()
    seconds = time.perf_counter() - start
    losses.append(final)
    iters.append(n_iter)
    return NMFResult(
        W=W, H=H, losses=np.asarray(losses, dtype=np.float64), n_iter=n_iter, seconds=seconds,
        converged=converged, beta=beta, loss_iterations=np.asarray(iters, dtype=np.int64),
        init_seconds=init_seconds, undone=rejected,
    )


# -- spectrograms ----------------------------------------------------------------------------
def _check_fft(n_fft: int, hop_length: int) -> None:
    if n_fft < 16 or hop_length < 1 or hop_length > n_fft // 2:
        raise ConfigError(
            f"n_fft={n_fft}, hop_length={hop_length} — need n_fft >= 16 and 1 <= hop_length <= n_fft/2 "
            "(overlap is needed to resynthesise)"
        )


def stft(y: np.ndarray, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Complex STFT of a mono signal: periodic Hann window, frames centred (zero padding of n_fft/2).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]

    Returns
    -------
    X : np.ndarray [shape=(1 + n_fft // 2, 1 + n // hop_length)], complex64
        Frame ``t`` is centred on sample ``t * hop_length``, as ``librosa.stft(center=True,
        pad_mode="constant")`` (:func:`specmusic.stft.stft`).

    Raises
    ------
    ConfigError
        ``hop_length`` larger than ``n_fft / 2`` (no perfect reconstruction).
    """
    _check_fft(n_fft, hop_length)
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1:
        raise InputError(f"signal has shape {y.shape} — pass mono audio (load_audio(mono=True))")
    return np.ascontiguousarray(_stft.stft(y, n_fft=n_fft, hop_length=hop_length), dtype=np.complex64)


def istft(X: np.ndarray, *, hop_length: int = 512, length: int | None = None) -> np.ndarray:
    """Inverse of :func:`stft`: windowed overlap-add divided by the summed squared window.

    Parameters
    ----------
    X : np.ndarray [shape=(1 + n_fft // 2, n_frames)], complex
    length : samples of the output (default ``(n_frames - 1) * hop_length``)

    Returns
    -------
    y : np.ndarray [shape=(length,)], float32; ``istft(stft(y), length=len(y)) == y`` to float32
    precision, and it is linear: the ISTFTs of parts that sum to ``X`` sum to the ISTFT of ``X``.
    """
    _check_fft(2 * (X.shape[0] - 1), hop_length)
    return _stft.istft(X, hop_length=hop_length, length=length).astype(np.float32)


def magnitude(X: np.ndarray, *, power: float = 1.0) -> np.ndarray:
    """``|X| ** power`` as float32 [shape=X.shape]."""
    mag = np.abs(X).astype(np.float32)
    return mag if power == 1 else np.power(mag, power, dtype=np.float32)


# -- parts of a mix --------------------------------------------------------------------------
def _mask_parts(W: np.ndarray, H: np.ndarray, power: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``W^p``, ``H^p`` and the safe denominator ``Σ_j (W_j H_j)^p`` (zeros → 0, handled by the caller)."""
    if power <= 0:
        raise ConfigError(f"mask power {power:g} — use a positive exponent (1: ratio mask, 2: Wiener-like)")
    Wp = np.power(np.asarray(W, dtype=np.float64), power)
    Hp = np.power(np.asarray(H, dtype=np.float64), power)
    return Wp, Hp, Wp @ Hp  # Σ_c (w_fc h_cn)^p, since (w h)^p = w^p h^p


def _mask(Wp: np.ndarray, Hp: np.ndarray, den: np.ndarray, c: int) -> np.ndarray:
    """The mask of component ``c`` [shape=(n_freqs, n_frames)]; ``1/k`` where every component underflows."""
    zero = den <= 0
    m = np.outer(Wp[:, c], Hp[c]) / np.where(zero, 1.0, den)
    m[zero] = 1.0 / Wp.shape[1]
    return m


def soft_masks(W: np.ndarray, H: np.ndarray, *, power: float = 2.0) -> np.ndarray:
    """Wiener-like masks ``(W_c H_c)^p / Σ_j (W_j H_j)^p`` for every component ``c``.

    Returns
    -------
    masks : np.ndarray [shape=(k, n_freqs, n_frames)], float64, each in [0, 1]; they sum to exactly 1
        at every bin (bins where every component underflows get ``1 / k`` each).
    """
    Wp, Hp, den = _mask_parts(W, H, power)
    return np.stack([_mask(Wp, Hp, den, c) for c in range(Wp.shape[1])])


def separate_components(
    X: np.ndarray, W: np.ndarray, H: np.ndarray, *, hop_length: int, length: int, mask_power: float = 2.0
) -> np.ndarray:
    """One signal per component by soft-masking the mix's complex STFT (one mask in memory at a time).

    Parameters
    ----------
    X : np.ndarray [shape=(n_freqs, n_frames)], complex: the mix's :func:`stft`
    W, H : the factorisation of ``|X|`` (or ``|X|²``)
    length : samples of each output signal (the mix's length)

    Returns
    -------
    parts : np.ndarray [shape=(k, length)], float32; ``parts.sum(axis=0)`` equals ``istft(X)``
        (the mix) to float32 rounding, because the masks sum to one and the ISTFT is linear.
    """
    Wp, Hp, den = _mask_parts(W, H, mask_power)
    return np.stack([
        istft(X * _mask(Wp, Hp, den, c), hop_length=hop_length, length=length) for c in range(Wp.shape[1])
    ])


def reconstruct(X: np.ndarray, W: np.ndarray, H: np.ndarray, *, hop_length: int, length: int,
                power: float = 1.0) -> np.ndarray:
    """The model ``W @ H`` heard through the mix's phase: ``istft((WH)^(1/power) · e^{i∠X})`` [shape=(length,)]."""
    mag = np.power(np.maximum(np.asarray(W, np.float64) @ np.asarray(H, np.float64), 0.0), 1.0 / power)
    return istft(mag * np.exp(1j * np.angle(X)), hop_length=hop_length, length=length)


def component_stats(W: np.ndarray, H: np.ndarray, parts: np.ndarray, *, sr: int, hop_length: int) -> list[dict[str, Any]]:
    """Numbers that say what each part sounds like.

    Returns one dict per component: ``energy_share`` (of the parts' total energy), ``rms_db``,
    ``centroid_hz`` (spectral centroid of the template), ``peak_hz`` (its strongest bin),
    ``active_share`` (frames where the activation exceeds 10 % of its maximum) and ``onsets_per_s``
    (upward crossings of that threshold per second: high for percussive parts).
    """
    n_fft = 2 * (W.shape[0] - 1)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    energy = np.square(parts.astype(np.float64)).sum(axis=1)
    total = float(energy.sum()) or 1.0
    seconds = H.shape[1] * hop_length / sr
    out = []
    for c in range(W.shape[1]):
        w = W[:, c].astype(np.float64)
        h = H[c].astype(np.float64)
        on = h > 0.1 * float(h.max()) if h.max() > 0 else np.zeros_like(h, dtype=bool)
        rms = math.sqrt(energy[c] / max(parts.shape[1], 1))
        out.append({
            "component": c + 1,
            "energy_share": round(float(energy[c]) / total, 4),
            "rms_db": round(20 * math.log10(max(rms, 1e-10)), 1),
            "centroid_hz": round(float((freqs * w).sum() / max(w.sum(), 1e-30)), 1),
            "peak_hz": round(float(freqs[int(np.argmax(w))]), 1),
            "active_share": round(float(on.mean()), 3),
            "onsets_per_s": round(float(np.count_nonzero(on[1:] & ~on[:-1])) / max(seconds, 1e-9), 2),
        })
    return out


# -- one file → parts ------------------------------------------------------------------------
@dataclass(frozen=True)
class SpectrogramConfig:
    """How audio becomes the matrix ``V`` (defaults as ``spectro``'s STFT)."""

    sample_rate: int = 22050  # Hz; audio is resampled (soxr HQ)
    n_fft: int = 2048  # samples per frame (Hann window, centred)
    hop_length: int = 512  # samples between frames
    power: float = 1.0  # 1: magnitude |X| (default), 2: power |X|²
    mask_power: float = 2.0  # exponent of the soft masks (2: Wiener-like, 1: ratio masks)

    def __post_init__(self) -> None:
        _check_fft(self.n_fft, self.hop_length)
        if self.power <= 0 or self.mask_power <= 0:
            raise ConfigError("power and mask power must be positive — use 1 (magnitude) or 2 (power)")


@dataclass
class Decomposition:
    """A mix, its STFT and its factorisation."""

    y: np.ndarray
    X: np.ndarray
    V: np.ndarray
    result: NMFResult
    spec: SpectrogramConfig
    sr: int


def load_spectrogram_for_nmf(
    path: str | os.PathLike[str], *, spec: SpectrogramConfig, offset: float = 0.0, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode ``path`` (mono, ``spec.sample_rate``) → ``(y, X, V)`` with ``V = |X| ** spec.power``.

    Raises
    ------
    AudioError
        Unreadable audio.
    InputError
        Silence (all zeros) or too short for one frame.
    """
    from specmusic.audio import load_audio
    from specmusic.fileio import display_path

    y, _ = load_audio(path, sr=spec.sample_rate, offset=offset, duration=duration)
    name = display_path(path)
    if len(y) < spec.n_fft // 2:
        raise InputError(f"{name}: only {len(y)} samples — give at least n_fft/2 = {spec.n_fft // 2} samples")
    if not np.any(y):
        raise InputError(f"{name}: is silent (all samples are zero) — there is nothing to decompose; "
                         "pick another file or --offset")
    X = stft(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    return y, X, magnitude(X, power=spec.power)


def decompose(
    y: np.ndarray, *, sr: int, spec: SpectrogramConfig | None = None, config: NMFConfig | None = None,
    progress: bool | None = False,
) -> Decomposition:
    """STFT of ``y`` [shape=(n,)] then :func:`fit_nmf` of its magnitude.

    Raises
    ------
    InputError
        Silence; ConfigError: ``k`` too large for the spectrogram.
    """
    spec = spec or SpectrogramConfig(sample_rate=sr)
    if not np.any(y):
        raise InputError("the audio is silent (all samples are zero) — there is nothing to decompose")
    X = stft(y, n_fft=spec.n_fft, hop_length=spec.hop_length)
    V = magnitude(X, power=spec.power)
    return Decomposition(y=y, X=X, V=V, result=fit_nmf(V, config=config, progress=progress), spec=spec, sr=sr)


FORMAT_VERSION = 1


def save_decomposition(
    out_dir: str | os.PathLike[str], dec: Decomposition, *, source: str = "", plots: bool = True, audio: bool = True,
) -> dict[str, Any]:
    """Write ``nmf.npz`` (W, H, loss curve, axes), ``W.png``/``H.png``/``loss.png``, one
    ``component-NN.wav`` per component, ``reconstruction.wav`` and ``summary.json`` into ``out_dir``.

    WAVs are 32-bit float so that the parts sum back to the mix exactly. Every file is written
    atomically. Returns the summary.
    """
    from pathlib import Path

    from specmusic.audio import save_audio
    from specmusic.fileio import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    r, spec, sr = dec.result, dec.spec, dec.sr
    freqs = np.fft.rfftfreq(spec.n_fft, 1.0 / sr).astype(np.float32)
    times = (np.arange(r.H.shape[1]) * spec.hop_length / sr).astype(np.float32)
    _save_npz_atomic(out / "nmf.npz", {
        "W": r.W, "H": r.H, "losses": r.losses, "loss_iterations": r.loss_iterations,
        "frequencies_hz": freqs, "times_s": times, "sample_rate": np.int64(sr), "n_fft": np.int64(spec.n_fft),
        "hop_length": np.int64(spec.hop_length), "power": np.float64(spec.power), "beta": np.float64(r.beta),
        "format_version": np.int64(FORMAT_VERSION),
    })
    summary = r.summary() | {
        "format_version": FORMAT_VERSION,
        "source": source,
        "sample_rate": sr,
        "duration_s": round(len(dec.y) / sr, 3),
        "spectrogram": asdict(spec),
    }
    files = ["nmf.npz", "summary.json"]
    if audio:
        parts = separate_components(dec.X, r.W, r.H, hop_length=spec.hop_length, length=len(dec.y),
                                    mask_power=spec.mask_power)
        width = max(2, len(str(len(parts))))
        for c, part in enumerate(parts, start=1):
            save_audio(out / f"component-{c:0{width}d}.wav", part, sr, subtype="FLOAT")
            files.append(f"component-{c:0{width}d}.wav")
        rec = reconstruct(dec.X, r.W, r.H, hop_length=spec.hop_length, length=len(dec.y), power=spec.power)
        save_audio(out / "reconstruction.wav", rec, sr, subtype="FLOAT")
        files.append("reconstruction.wav")
        mix = dec.y.astype(np.float64)
        err = float(np.sqrt(np.mean((parts.sum(axis=0, dtype=np.float64) - mix) ** 2)))
        summary["parts_sum_rms_error"] = err
        summary["mix_rms"] = float(np.sqrt(np.mean(mix**2)))
        summary["components"] = component_stats(r.W, r.H, parts, sr=sr, hop_length=spec.hop_length)
    if plots:
        save_nmf_plots(out, r, sr=sr, hop_length=spec.hop_length, n_fft=spec.n_fft, title=os.path.basename(source))
        files += ["W.png", "H.png", "loss.png"]
    summary["files"] = sorted(files)
    write_json_atomic(out / "summary.json", summary)
    return summary


def _save_npz_atomic(path: Any, arrays: dict[str, Any]) -> None:
    from specmusic.fileio import atomic_write

    atomic_write(path, lambda f: np.savez(f, **arrays))


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
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc}) — pass an nmf.npz written by specmusic nmf") from None
    if "W" not in data or "H" not in data or int(data.get("format_version", 0)) != FORMAT_VERSION:
        raise InputError(f"{path}: not a specmusic nmf.npz (format_version {FORMAT_VERSION}) — rerun specmusic nmf")
    return data


# -- pictures --------------------------------------------------------------------------------
def save_nmf_plots(out_dir: Any, result: NMFResult, *, sr: int, hop_length: int, n_fft: int, title: str = "") -> None:
    """``W.png`` (templates over frequency in Hz, dB), ``H.png`` (activations over time in s),
    ``loss.png`` (the loss curve)."""
    from pathlib import Path

    from specmusic.plotting import _pyplot, save_figure_atomic

    plt = _pyplot()
    out = Path(out_dir)
    W, H = result.W.astype(np.float64), result.H.astype(np.float64)
    k = W.shape[1]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * k + 3), 4))
    Wn = W / np.maximum(W.max(axis=0, keepdims=True), 1e-30)
    im = ax.imshow(20 * np.log10(np.maximum(Wn, 1e-4)), origin="lower", aspect="auto", cmap="magma",
                   interpolation="nearest", extent=(0.5, k + 0.5, 0.0, sr / 2), vmin=-80, vmax=0)
    ax.set_xlabel("component")
    ax.set_ylabel("frequency (Hz)")
    ax.set_xticks(range(1, k + 1))
    ax.set_title(f"W: spectral templates {title}".strip())
    fig.colorbar(im, ax=ax, label="dB (per template)")
    save_figure_atomic(fig, out / "W.png")

    seconds = H.shape[1] * hop_length / sr
    fig, ax = plt.subplots(figsize=(min(max(6.0, seconds / 3), 16.0), max(2.5, 0.3 * k + 1.5)))
    Hn = H / np.maximum(H.max(axis=1, keepdims=True), 1e-30)
    im = ax.imshow(Hn, origin="lower", aspect="auto", cmap="viridis", interpolation="nearest",
                   extent=(0.0, seconds, 0.5, k + 0.5))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("component")
    ax.set_yticks(range(1, k + 1))
    ax.set_title(f"H: activations {title}".strip())
    fig.colorbar(im, ax=ax, label="activation / row max")
    save_figure_atomic(fig, out / "H.png")

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(result.loss_iterations, result.losses, marker="." if len(result.losses) < 60 else None)
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"{_loss_name(result.beta)} divergence")
    ax.set_title(f"loss, k={k}")
    ax.grid(alpha=0.3)
    save_figure_atomic(fig, out / "loss.png")


def save_report_plot(path: Any, rows: list[dict[str, Any]], *, title: str = "") -> None:
    """Final loss (and seconds) against k, as a PNG."""
    from specmusic.plotting import _pyplot, save_figure_atomic

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ks = [r["k"] for r in rows]
    ax.plot(ks, [r["loss"] for r in rows], marker="o")
    ax.set_xlabel("k (components)")
    ax.set_ylabel(f"final {rows[0]['loss_name']} divergence" if rows else "loss")
    ax.set_xticks(ks)
    ax.grid(alpha=0.3)
    ax.set_title(f"loss vs k {title}".strip())
    save_figure_atomic(fig, path)


# -- mosaicing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MosaicConfig:
    """Rebuild a target from a source's sounds (Driedger, Prätzlich & Müller 2015, "Let it Bee").

    Defaults (one block)::

        n_fft, hop_length = 2048, 512  # STFT of both signals
        n_iter      = 50    # multiplicative H updates (W is fixed)
        beta        = 1.0   # KL, as the paper
        templates   = 0     # 0: every source frame is a template, resynthesised from the source's
                            #    complex frames; > 0: learn this many templates from the source and
                            #    resynthesise W·H with the target's phase
        repetition  = 0     # r: damp activations that are not the largest within ±r frames (paper: 3)
        polyphony   = 0     # p: damp all but the p largest activations of each target frame (paper: 10)
        continuity  = 0     # c: diagonal filter of length 2c+1, favouring source frames in order (paper: 3)
        max_source_frames = 4000  # guard: H has source_frames × target_frames entries
        seed        = 0
        threads     = 0     # solver threads (0: every CPU), as in NMFConfig
    """

    n_fft: int = 2048
    hop_length: int = 512
    n_iter: int = 50
    beta: float = 1.0
    templates: int = 0
    repetition: int = 0
    polyphony: int = 0
    continuity: int = 0
    max_source_frames: int = 4000
    seed: int = 0
    threads: int = 0

    def __post_init__(self) -> None:
        _check_fft(self.n_fft, self.hop_length)
        if self.n_iter < 1:
            raise ConfigError("mosaic needs at least 1 iteration — raise --iterations")
        if min(self.templates, self.repetition, self.polyphony, self.continuity) < 0:
            raise ConfigError("templates, repetition, polyphony and continuity must be >= 0 (0: off)")
        if self.templates and self.continuity:
            raise ConfigError(
                "continuity follows the source's frame order, which learned templates do not have — "
                "drop --continuity or --templates"
            )


def _let_it_bee_hook(config: MosaicConfig) -> Callable[[np.ndarray, int], None] | None:
    """The three constraints of Driedger et al. (2015), applied to H before each update."""
    r, p, c, L = config.repetition, config.polyphony, config.continuity, config.n_iter
    if not (r or p or c):
        return None

    def hook(H: np.ndarray, it: int) -> None:
        # iteration ℓ = it - 1 of L: non-chosen entries shrink by (1 - (ℓ+1)/L), harder over time
        damp = max(0.0, 1.0 - it / L)
        if r:
            padded = np.pad(H, ((0, 0), (r, r)))
            peak = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1, axis=1).max(axis=-1)
            H[H < peak] *= damp
        if p and p < H.shape[0]:
            kth = -np.partition(-H, p - 1, axis=0)[p - 1]
            H[H < kth[None, :]] *= damp
        if c:
            m, n = H.shape
            padded = np.zeros((m + 2 * c, n + 2 * c), dtype=H.dtype)
            padded[c : c + m, c : c + n] = H
            acc = np.zeros_like(H)
            for d in range(-c, c + 1):
                acc += padded[c + d : c + d + m, c + d : c + d + n]
            H[...] = acc
        np.maximum(H, _FLOOR, out=H)

    return hook


@dataclass
class MosaicResult:
    """The mosaic signal and how it was made."""

    y: np.ndarray
    sr: int
    fit: NMFResult
    info: dict[str, Any]


def mosaic(
    source: np.ndarray, target: np.ndarray, *, sr: int, config: MosaicConfig | None = None,
    progress: bool | None = False,
) -> MosaicResult:
    """Rebuild ``target`` [shape=(n,)] out of ``source`` [shape=(m,)] sounds (both at ``sr``).

    Frames mode (``templates = 0``): ``W`` = the source's magnitude frames (silent ones dropped,
    each scaled to unit sum), fixed; learn ``H`` so ``W @ H ≈ |target|``; the output STFT is
    ``X_source @ H``, an H-weighted sum of the source's *complex* frames, as in the paper: the
    source's own phase keeps its transients and timbre, and with the continuity constraint the
    activations run along diagonals, i.e. stretches of the source play in order with coherent phase.
    Templates mode: ``W`` = ``templates`` NMF templates of the source; the output is ``W @ H`` with
    the target's phase (a template has no phase of its own).

    Returns
    -------
    :class:`MosaicResult` with ``y`` [shape=(n,)], float32, loudness-normalised (-20 dBFS RMS).

    Raises
    ------
    InputError
        A silent source or target; ConfigError: too many source frames.
    """
    from specmusic.audio import loudness_normalize

    config = config or MosaicConfig()
    source = np.asarray(source, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    for name, sig in (("source", source), ("target", target)):
        if len(sig) < config.n_fft // 2:
            raise InputError(f"the {name} is only {len(sig)} samples — give at least {config.n_fft // 2}")
        if not np.any(sig):
            raise InputError(f"the {name} is silent (all zeros) — nothing to {'build from' if name == 'source' else 'imitate'}")
    Xs = stft(source, n_fft=config.n_fft, hop_length=config.hop_length)
    Xt = stft(target, n_fft=config.n_fft, hop_length=config.hop_length)
    Vt = magnitude(Xt)
    info: dict[str, Any] = {"target_frames": int(Xt.shape[1]), "source_frames": int(Xs.shape[1])}
    nmf_cfg = NMFConfig(n_components=1, beta=config.beta, max_iter=config.n_iter, tol=0.0, seed=config.seed,
                        threads=config.threads)
    if config.templates:
        Vs = magnitude(Xs)
        k = min(config.templates, min(Vs.shape))
        W = fit_nmf(Vs, config=NMFConfig(n_components=k, beta=config.beta, max_iter=200, seed=config.seed,
                                         threads=config.threads)).W
        W = W / np.maximum(W.sum(axis=0, keepdims=True), _FLOOR)
        info["mode"] = "templates"
    else:
        energy = np.abs(Xs).sum(axis=0)
        keep = energy > 1e-4 * float(energy.max())
        Xs = Xs[:, keep]
        if Xs.shape[1] > config.max_source_frames:
            raise ConfigError(
                f"the source has {Xs.shape[1]} frames, more than max_source_frames={config.max_source_frames} "
                f"— shorten it (--source-duration) or use --templates"
            )
        scale = np.maximum(np.abs(Xs).sum(axis=0), 1e-30)
        Xs = Xs / scale[None, :]
        W = np.abs(Xs).astype(np.float32)
        info["mode"] = "frames"
        info["source_frames_used"] = int(W.shape[1])
    m = W.shape[1]
    rng = np.random.default_rng(config.seed)
    H0 = (rng.random((m, Vt.shape[1])) + 0.5).astype(np.float32) * float(Vt.sum(axis=0).mean()) / m
    fit = fit_nmf(Vt, config=nmf_cfg, W=W, H=H0, fix_W=True, h_hook=_let_it_bee_hook(config), progress=progress)
    H = fit.H
    if config.templates:
        Y = (fit.W.astype(np.float64) @ H.astype(np.float64)) * np.exp(1j * np.angle(Xt))
    else:
        Y = (Xs.real @ H) + 1j * (Xs.imag @ H)
    y = istft(Y, hop_length=config.hop_length, length=len(target))
    info["loss"] = fit.loss
    info["initial_loss"] = float(fit.losses[0])
    info["seconds"] = round(fit.seconds, 3)
    # how much the result's spectrogram follows the target's (Pearson r of the magnitudes)
    got = magnitude(stft(y, n_fft=config.n_fft, hop_length=config.hop_length)).ravel()
    info["spectral_correlation"] = round(float(np.corrcoef(got, Vt.ravel())[0, 1]), 4) if got.std() > 0 else 0.0
    return MosaicResult(y=loudness_normalize(y), sr=sr, fit=fit, info=info)


def mosaic_files(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    sr: int | None = None,
    config: MosaicConfig | None = None,
    source_duration: float | None = None,
    target_duration: float | None = None,
    on_note: Callable[[str], None] | None = None,
    progress: bool | None = False,
) -> MosaicResult:
    """Load both files at one rate (``sr``, default the target's own) and :func:`mosaic` them.

    A file at another rate is resampled (soxr HQ) and ``on_note`` says so.

    Raises
    ------
    AudioError
        Unreadable files; InputError: silence.
    """
    from specmusic.audio import load_audio, read_info
    from specmusic.fileio import display_path

    s_info, t_info = read_info(source), read_info(target)
    rate = int(sr or t_info.sample_rate)
    note = on_note or (lambda _msg: None)
    for role, path, info in (("source", source, s_info), ("target", target, t_info)):
        if info.sample_rate != rate:
            note(f"note: {role} {display_path(path)} is {info.sample_rate} Hz — resampled to {rate} Hz")
    ys, _ = load_audio(source, sr=rate, duration=source_duration)
    yt, _ = load_audio(target, sr=rate, duration=target_duration)
    result = mosaic(ys, yt, sr=rate, config=config, progress=progress)
    result.info |= {"source_sample_rate": s_info.sample_rate, "target_sample_rate": t_info.sample_rate,
                    "sample_rate": rate}
    return result

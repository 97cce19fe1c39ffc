"""Fit ``V ≈ W @ H``: the config, the result, the initialisations and :func:`fit_nmf`.

The passes over ``V`` themselves live in :mod:`specmusic.nmf.updates`; the package docstring
(:mod:`specmusic.nmf`) says why they are fast and lists the defaults.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError, InputError
from specmusic.nmf.divergence import loss_name
from specmusic.nmf.updates import FLOOR, Solver, mm_exponent, solver_threads

__all__ = ["AUTO_INNER", "AUTO_RELAX", "NMFConfig", "NMFResult", "initialize_nmf", "fit_nmf", "relax_after_undo"]

#: ``relax = 0`` (auto) by β: on 30 s of four clips from two collections that share no source (cc-music:
#: Vibe Ace, Hungarian Dance No. 5; GTZAN: blues.00000, metal.00000) × k 4, 16, 64, the largest
#: over-relaxation tried that no pass had to be undone for (KL 1.5 / 1.75 / 1.85 / 2; IS 2 / 2.5 / 3 /
#: 3.5 / 4), which was also the one to reach the textbook update's 200-iteration divergence in the fewest
#: iterations (KL 71–112 of 200, IS 22–94).
AUTO_RELAX: dict[float, float] = {1.0: 1.85, 0.0: 3.0}
#: ``inner = 0`` (auto) for Euclidean: of 3, 5, 7 and 10 steps per pass, those that reached the textbook
#: update's 200-iteration divergence on all 4 clips × 3 k above (10 did not: blues k 16 settled 0.1 % above
#: it), the lowest median CPU time to it (3: 0.38 of the textbook's, 5: 0.27, 7: 0.25), ties within 10 %
#: broken by the worst case (5: 0.43, 7: 0.48).
AUTO_INNER = 5


@dataclass(frozen=True)
class NMFConfig(ConfigBase):
    """How :func:`fit_nmf` factorises.

    Defaults (one block)::

        n_components = 8          # k, the number of templates
        beta         = 1.0        # 2 Euclidean, 1 Kullback–Leibler, 0 Itakura–Saito (any real β works)
        max_iter     = 200        # multiplicative iterations at most (one W step + one H step each)
        tol          = 1e-4       # stop once 10 iterations lower the loss by < tol × the initial loss; 0: never
        init         = "nndsvda"  # random | nndsvd | nndsvda (NNDSVD with zeros filled by the mean)
        seed         = 0          # random init and the randomised SVD of NNDSVD
        dtype        = "float32"  # float32 (fast) or float64
        loss_every   = 1          # record the loss every this many iterations (1: the whole curve)
        threads      = 0          # solver threads, each on its own rows of V with one BLAS thread (at most one
                                  # per 2¹⁸ entries of V); 0 = every CPU this process may use, 1 = serial (same
                                  # numbers up to summation order); Euclidean: BLAS threads instead
        inner        = 0          # multiplicative steps per factor and iteration; 0 = auto: 5 for Euclidean
                                  # (accelerated MU, Gillis & Glineur 2012: further W steps reuse V·Hᵀ and
                                  # further H steps reuse Wᵀ·V, k-sized work), 1 for other β, whose every step
                                  # needs a new V / WH; 1 = the textbook update (= scikit-learn's); how chosen:
                                  # AUTO_INNER
        relax        = 0.0        # power on each multiplicative step (over-relaxation), times the textbook
                                  # exponent (1 for 1 ≤ β ≤ 2; ½ for IS); 0 = auto: 1.85 for KL, 3 for IS (step
                                  # exponent 1.5), 1 otherwise (how chosen: AUTO_RELAX). An iteration that
                                  # raises the loss is undone and the excess over 1 halves, so the kept
                                  # iterates never get worse; 1 = textbook (scikit-learn's steps)
    """

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
        top = 2.0 / mm_exponent(float(self.beta)) if math.isfinite(self.beta) else 2.0
        if self.relax != 0 and not 1.0 <= self.relax <= top:
            raise ConfigError(f"relax {self.relax:g} — use 0 (auto), 1 (textbook steps) or up to {top:g} "
                              "(a step exponent of 2)")
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
        return AUTO_INNER if float(self.beta) == 2.0 else 1

    @property
    def relax_exponent(self) -> float:
        """Over-relaxation (:attr:`relax`, with 0 resolved)."""
        if self.relax:
            return float(self.relax)
        return AUTO_RELAX.get(float(self.beta), 1.0)

    @property
    def step_exponent(self) -> float:
        """The power each multiplicative step is raised to: the textbook exponent times :attr:`relax_exponent`."""
        return mm_exponent(float(self.beta)) * self.relax_exponent


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
    undone : over-relaxed passes undone because they raised the loss (each halves the over-relaxation)
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
            "loss_name": loss_name(self.beta),
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
def _check_matrix(V: Any) -> np.ndarray:
    """Validate a non-negative 2-D matrix; return it unchanged (no copy)."""
    V = np.asarray(V)
    if V.ndim != 2:
        raise InputError(f"V has shape {V.shape}, not (n_freqs, n_frames) — pass a 2-D spectrogram")
    if V.size == 0:
        raise InputError(f"V is empty {V.shape} — give audio longer than one frame")
    if not np.issubdtype(V.dtype, np.number) or np.iscomplexobj(V):
        raise InputError(f"V has dtype {V.dtype} — pass real, non-negative magnitudes (np.abs of an STFT)")
    lo, hi = float(V.min()), float(V.max())  # two reductions, no temporaries; NaN propagates
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise InputError("V contains NaN or infinite values — clean the input (np.nan_to_num) first")
    if lo < 0:
        raise InputError(f"V has negative values (min {lo:.3g}) — NMF needs magnitudes: pass np.abs(...)")
    if hi == 0:
        raise InputError("V is all zeros (silence) — there is nothing to decompose; pick a louder excerpt")
    return V


def _check_k(k: int, shape: tuple[int, int]) -> None:
    if k > min(shape):
        raise ConfigError(
            f"k = {k} components is more than the matrix allows: {shape[0]}×{shape[1]} has rank ≤ {min(shape)}"
            f" — use k ≤ {min(shape)} (or a longer excerpt / larger n_fft)"
        )


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




# -- fit -------------------------------------------------------------------------------------
def fit_nmf(
    V: np.ndarray,
    *,
    config: NMFConfig | None = None,
    W: np.ndarray | None = None,
    H: np.ndarray | None = None,
    fix_W: bool = False,
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
    h_hook : ``h_hook(H, iteration)`` may change ``H`` in place before each iteration (constraints;
        the loss is then no longer guaranteed to decrease, and steps are not over-relaxed)
    progress : a progress bar on stderr (``None``: only on a terminal)

    Returns
    -------
    :class:`NMFResult`: ``losses[0]`` is the loss at init, ``losses[-1]`` the final loss (recomputed by
    :func:`beta_divergence`); the others, one every ``config.loss_every`` iterations, come from the
    update's own intermediates (float32 by default).

    Raises
    ------
    InputError
        ``V`` not 2-D, negative, NaN/inf, or all zero (silence); a negative starting ``W``/``H``.
    ConfigError
        ``k`` larger than ``min(V.shape)``, or ``W``/``H`` of the wrong shape.
    """
    from threadpoolctl import threadpool_limits
    from tqdm import tqdm

    config = config or NMFConfig()
    t0 = time.perf_counter()
    Vw, W, H = _starting_point(V, config, W, H, fix_W)
    relax = 1.0 if h_hook is not None else config.relax_exponent
    solver = Solver(Vw, W, H, float(config.beta), solver_threads(config.threads), config.inner_steps, relax)
    init_seconds = time.perf_counter() - t0
    bar = tqdm(total=config.max_iter, desc="nmf", unit="it", file=sys.stderr, leave=False,
               disable=None if progress is None else not progress)
    start = time.perf_counter()
    try:
        # One BLAS thread per worker: the solver's own threads are its parallelism (BLAS threads on top
        # of them only oversubscribe the cores), and threads=1 really uses one core. Euclidean runs
        # serially with `threads` BLAS threads instead: its time is two big products, which BLAS splits best.
        with threadpool_limits(limits=solver.blas_threads):
            trace = _iterate(solver, config, fix_W=fix_W, h_hook=h_hook, on_step=bar.update)
    finally:
        bar.close()
        solver.close()
    return NMFResult(
        W=W, H=H, losses=np.asarray(trace.losses, dtype=np.float64), n_iter=trace.n_iter,
        seconds=time.perf_counter() - start, converged=trace.converged, beta=float(config.beta),
        loss_iterations=np.asarray(trace.iters, dtype=np.int64), init_seconds=init_seconds, undone=trace.undone,
    )


def _starting_point(
    V: np.ndarray, config: NMFConfig, W: np.ndarray | None, H: np.ndarray | None, fix_W: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked ``V`` in the working dtype, and fresh ``W``, ``H`` lifted to the floor."""
    V = _check_matrix(V)
    dtype = np.dtype(config.dtype)
    k = config.n_components if W is None else np.asarray(W).shape[1]
    if not fix_W:
        _check_k(k, V.shape)
    Vw = np.asarray(V, dtype=dtype, order="C")  # read only: no copy when V is already right
    if config.beta <= 1 and float(Vw.min()) <= 0:
        # V = 0 entries: V·log(V/WH) → 0 for KL and IS stays finite; 1e-30 changes nothing else.
        Vw = np.clip(Vw, 1e-30 if config.beta == 1 else float(Vw.max()) * 1e-10, np.inf)  # a copy; V stays
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
    np.maximum(W, FLOOR, out=W)
    np.maximum(H, FLOOR, out=H)
    return Vw, W, H


def relax_after_undo(relax: float) -> float:
    """The over-relaxation after a pass had to be undone: its excess over 1 halved (1 once below 1.05)."""
    smaller = 1.0 + (relax - 1.0) / 2.0
    return smaller if smaller >= 1.05 else 1.0


@dataclass
class _Trace:
    """The loss curve of the kept iterates, and how the run went."""

    losses: list[float] = field(default_factory=list)
    iters: list[int] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    undone: int = 0
    kept: tuple[np.ndarray, np.ndarray, int] | None = None  # the last state whose loss was accepted

    def record(self, loss: float, iteration: int, state: tuple[np.ndarray, np.ndarray, int] | None) -> None:
        self.losses.append(loss)
        self.iters.append(iteration)
        self.kept = state

    def undo(self, solver: Solver) -> int:
        """Go back to the last accepted state (its loss is recorded anew); return its iteration."""
        assert self.kept is not None
        solver.W[...], solver.H[...], iteration = self.kept
        self.losses.pop()
        self.iters.pop()
        self.undone += 1
        return iteration

    def stalled(self, tol: float) -> bool:
        """The loss over the last ~10 iterations fell by less than ``tol`` × the initial loss."""
        back = [j for j, i in enumerate(self.iters) if i <= self.iters[-1] - 10]
        return bool(back) and self.iters[-1] > 0 and self.losses[back[-1]] - self.losses[-1] < tol * self.losses[0]


def _iterate(
    solver: Solver, config: NMFConfig, *, fix_W: bool, h_hook: Callable[[np.ndarray, int], None] | None,
    on_step: Callable[[int], Any],
) -> _Trace:
    """Run the iterations: record the loss, undo over-relaxed passes that raised it, stop at ``tol``."""
    trace = _Trace()
    W, H = solver.W, solver.H
    it = 0
    while it < config.max_iter:
        it += 1
        # The pass of iteration `it` yields the loss after iteration it-1 at little cost.
        track = (it - 1) % config.loss_every == 0
        if h_hook is not None:
            h_hook(H, it)
        state = (W.copy(), H.copy(), it - 1) if track and solver.relax != 1.0 else None
        loss = solver.iterate(update_w=not fix_W, track=track)
        on_step(1)
        if state is not None and trace.kept is not None and trace.losses and loss > trace.losses[-1]:
            # over-relaxed steps raised the loss: undo them and take gentler steps from there on
            it = trace.undo(solver)
            solver.relax = relax_after_undo(solver.relax)
            continue
        if track:
            trace.record(loss, it - 1, state)
        trace.n_iter = it
        if config.tol > 0 and it % 10 == 0 and it < config.max_iter and trace.stalled(config.tol):
            trace.converged = True
            break
    final = solver.exact_loss()
    if trace.kept is not None and solver.relax != 1.0 and trace.losses and final > trace.losses[-1]:
        trace.n_iter = trace.undo(solver)  # the last relaxed steps did not pay: keep the state before them
        final = solver.exact_loss()
    trace.losses.append(final)
    trace.iters.append(trace.n_iter)
    return trace

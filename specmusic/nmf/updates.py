"""The multiplicative-update passes behind :func:`specmusic.nmf.fit_nmf`: one fused pass over ``V``
per iteration, its row blocks shared out among threads (see :class:`Solver`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from specmusic.nmf.divergence import beta_divergence

__all__ = ["FLOOR", "Solver", "solver_threads"]

FLOOR = 1e-12  # W and H never go below this: W @ H stays > 0 in float32 (k · 1e-24 ≫ 1e-38)
_WH_FLOOR_IS = 1e-15  # β < 1 raises W @ H to negative powers; keep its square a normal float32


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


class Solver:
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
        num /= np.maximum(den, FLOOR, out=den)
        if self.gamma * self.relax != 1.0:
            num **= self.gamma * self.relax
        X *= num
        np.maximum(X, FLOOR, out=X)

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
                        np.divide(p, np.maximum(den, FLOOR, out=den), out=buf.g[: e - s])
                        if self.relax != 1.0:
                            buf.g[: e - s] **= self.relax
                        Wb *= buf.g[: e - s]
                        np.maximum(Wb, FLOOR, out=Wb)
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
            num = np.divide(hnum, np.maximum(np.matmul(WtW, H, out=self.hden), FLOOR), out=self.hnum_step)
            if self.relax != 1.0:
                num **= self.relax
            H *= num
            np.maximum(H, FLOOR, out=H)
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
                np.maximum(Wb, FLOOR, out=Wb)
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
            hsum = np.maximum(H.sum(axis=1), FLOOR)
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


"""The multiplicative-update passes behind :func:`specmusic.nmf.fit_nmf`: one fused pass over ``V``
per iteration, its row blocks shared out among threads (see :class:`Solver`)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from specmusic.nmf.divergence import beta_divergence

__all__ = [
    "BLOCK_ENTRIES", "FLOOR", "Solver", "WORKER_ENTRIES", "block_rows", "euclidean_blas_threads", "lift", "mm_exponent",
    "solver_threads", "solver_workers",
]

FLOOR = 1e-12  # W and H never go below this: W @ H stays > 0 in float32 (k · 1e-24 ≫ 1e-38)
#: Most entries of ``V`` in one block of rows (4 MiB of float32). Few, large blocks: every numpy call
#: of a worker is a GIL hand-off with the others, ~12 a block, and at 2 threads on 30 s (1025 × 1292)
#: one block per worker ran KL 1.15–1.4× faster than 11 blocks of 2¹⁷ entries (1 thread: no change).
BLOCK_ENTRIES = 1 << 20
#: Fewest entries of ``V`` per worker thread: below this a second thread costs more than it saves.
WORKER_ENTRIES = 1 << 18
#: Multiply-adds per Euclidean product below which a second BLAS thread costs more than it saves.
EUCLIDEAN_THREADED_MACS = 1 << 22
_WH_FLOOR_IS = 1e-15  # β < 1 raises W @ H to negative powers; keep its square a normal float32


def mm_exponent(beta: float) -> float:
    """Exponent of the textbook (MM) update that makes each step non-increasing (Févotte & Idier 2011):
    1 for 1 ≤ β ≤ 2, ``1 / (2 − β)`` below (½ for IS), ``1 / (β − 1)`` above."""
    if beta < 1:
        return 1.0 / (2.0 - beta)
    if beta > 2:
        return 1.0 / (beta - 1.0)
    return 1.0


class _Buffers:
    """Scratch arrays of one worker, allocated once and reused by every pass.

    ``x``: a block of ``V``-sized rows (KL: ``V / WH``); for β ∉ {1, 2} two blocks stacked, the
    numerator's ``V · WH^(β−2)`` over the denominator's ``WH^(β−1)``, so that one matrix product
    with ``Hᵀ`` gives both halves of the W step and one batched product with ``W[b]ᵀ`` both halves
    of the H step. ``g``: the W step's ``k``-wide rows (stacked likewise). ``acc``: this worker's
    share of the H step's numerator (and denominator); ``part``: one block's contribution to it.
    """

    def __init__(self, rows: int, n: int, k: int, beta: float, dt: np.dtype) -> None:
        halves = 1 if beta in (1, 2) else 2
        self.x = np.empty((halves * rows if beta != 2 else 0, n), dtype=dt)  # Euclidean needs no V-sized buffer
        self.g = np.empty((halves * rows, k), dtype=dt)
        self.g2 = np.empty((rows if beta == 2 else 0, k), dtype=dt)
        self.part = np.empty((halves, k, n), dtype=dt)
        self.acc = np.empty((halves, k, n), dtype=dt)


def lift(x: np.ndarray, floor: float) -> np.ndarray:
    """``x`` raised to at least ``floor``, in place; returns ``x``.

    ``np.clip`` with both bounds: numpy 2's ``np.maximum(x, scalar)`` takes a slow path, 4–5× the time
    of a multiplication on float32 (measured on 101 × 1292 blocks), where ``clip`` runs at that speed.
    """
    return np.clip(x, floor, np.inf, out=x)


def _sum64(a: np.ndarray) -> float:
    """``Σ a`` over a 2-D float array: float32 (pairwise) sums of each row, added up in float64 — as
    accurate for a loss as a float64 sum and half its time."""
    return float(a.sum(axis=1).sum(dtype=np.float64))


def _dot64(a: np.ndarray, b: np.ndarray) -> float:
    """``Σ a · b`` accumulated in float64, without a float64 copy of either."""
    return float(np.einsum("ij,ij->", a, b, dtype=np.float64))


def euclidean_blas_threads(n_freqs: int, n_frames: int, k: int, threads: int) -> int:
    """BLAS threads for the Euclidean pass (two ``n_freqs × n_frames × k`` products): ``threads``, but one
    when the products are too small for a second thread to pay for waking it."""
    return max(1, threads) if n_freqs * n_frames * k >= EUCLIDEAN_THREADED_MACS else 1


def solver_workers(n_freqs: int, n_frames: int, threads: int) -> int:
    """Worker threads for a pass over ``V`` [shape=(n_freqs, n_frames)] with β ≠ 2: ``threads``, but no
    more than one per :data:`WORKER_ENTRIES` entries of ``V`` (a smaller share does not pay for the
    hand-offs)."""
    return max(1, min(threads, n_freqs * n_frames // WORKER_ENTRIES))


def block_rows(n_freqs: int, n_frames: int, workers: int) -> int:
    """Rows of ``V`` per block: the same number of near-equal blocks for every worker, each at most
    :data:`BLOCK_ENTRIES` entries (one block each while ``V`` is small enough)."""
    per_worker = max(1, math.ceil(n_freqs * n_frames / (workers * BLOCK_ENTRIES)))
    return max(1, math.ceil(n_freqs / (workers * per_worker)))


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
        self.gamma = mm_exponent(beta)
        self.V, self.W, self.H = V, W, H
        f, n = V.shape
        k = W.shape[1]
        # Euclidean is two big products per pass (V·Hᵀ, Wᵀ·V) and k-sized steps: one block, no worker
        # threads, and BLAS's own threads split the products. Other β: a few large blocks per worker.
        # (Euclidean on worker threads instead measured 20-30 % slower at 2 threads on an idle machine,
        # though it degrades more gently than BLAS threads when other processes hold the cores)
        split = beta != 2
        workers = solver_workers(f, n, threads) if split else 1
        rows = block_rows(f, n, workers) if split else f
        blocks = [(s, min(f, s + rows)) for s in range(0, f, rows)]
        self.blocks = blocks
        self.blas_threads = 1 if split else euclidean_blas_threads(f, n, k, threads)
        # blocks dealt out in turn: rows of similar cost (low vs high frequencies) spread over the workers
        self.shares = [blocks[i::workers] for i in range(workers)]
        # sums of V, accumulated in float64 one block of rows at a time (no float64 copy of all of V): the
        # Euclidean loss ½(‖V‖² − 2⟨W, VHᵀ⟩ + ⟨WᵀW, HHᵀ⟩) is a small difference of large terms, and a float32
        # dot product of ‖V‖² was off by ~1e-4 of it — nearly 1 % of the loss on a real spectrogram
        step = max(1, (1 << 17) // max(n, 1))
        self.v_sq = sum(float(np.square(V[s : s + step], dtype=np.float64).sum()) for s in range(0, f, step)) if beta == 2 else 0.0
        self.v_sum = float(V.sum(dtype=np.float64)) if beta == 1 else 0.0
        self.v_log_sum = float(np.log(V).sum(dtype=np.float64)) if beta == 0 else 0.0
        self.v_pow_sum = (float(np.sum(np.power(V, beta, dtype=np.float64))) if beta not in (0, 1, 2) else 0.0)
        dt = V.dtype
        self.bufs = [_Buffers(rows, n, k, beta, dt) for _ in range(workers)]
        self.HT = np.empty((n, k), dtype=dt)  # Hᵀ, C-contiguous: the right operand of every V-sized product
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

    def _gather(self) -> np.ndarray:
        """The workers' shares of the H step [shape=(halves, k, n_frames)] summed, in worker order."""
        out = self.bufs[0].acc
        for b in self.bufs[1:]:
            out += b.acc
        return out

    @staticmethod
    def _accumulate(buf: _Buffers, first: bool, Wb: np.ndarray, x: np.ndarray) -> None:
        """``buf.acc += W[b]ᵀ x`` for each stacked half of ``x`` [shape=(halves · rows, n_frames)]; the
        worker's first block writes ``buf.acc`` directly (no zero fill, no extra pass)."""
        halves = buf.acc.shape[0]
        out = buf.acc if first else buf.part
        np.matmul(Wb.T, x.reshape(halves, x.shape[0] // halves, x.shape[1]), out=out)
        if not first:
            buf.acc += out

    def _finish(self, X: np.ndarray, num: np.ndarray, den: np.ndarray) -> None:
        """``X *= (num / den) ** gamma`` in place, then lift ``X`` to the floor."""
        num /= lift(den, FLOOR)
        if self.gamma * self.relax != 1.0:
            num **= self.gamma * self.relax
        X *= num
        lift(X, FLOOR)

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
            for i, (s, e) in enumerate(blocks):
                Vb, Wb = V[s:e], W[s:e]
                if update_w:
                    p = np.matmul(Vb, self.HT, out=P[s:e])  # V[b] Hᵀ
                    for _ in range(self.inner):  # W[b] steps for fixed H: each reuses V[b] Hᵀ
                        den = np.matmul(Wb, HHt, out=buf.g2[: e - s])
                        # W, H >= FLOOR: W HHᵀ >= FLOOR³ · n_frames > 0, no floor pass needed
                        np.divide(p, den, out=buf.g[: e - s])
                        if self.relax != 1.0:
                            buf.g[: e - s] **= self.relax
                        Wb *= buf.g[: e - s]
                        lift(Wb, FLOOR)
                self._accumulate(buf, i == 0, Wb, Vb)  # Wᵀ V, block by block, V[b] still in cache
            return 0.0

        self._map(work)
        hnum = self._gather()[0]
        loss = math.nan
        if track:
            # ½‖V − WH‖² = ½(‖V‖² − 2⟨W, V Hᵀ⟩ + ⟨WᵀW, H Hᵀ⟩), all on k-sized arrays
            W64 = W_old.astype(np.float64)
            cross = float(np.vdot(W64, P.astype(np.float64))) if update_w else float(
                np.vdot(H.astype(np.float64), hnum.astype(np.float64)))
            loss = 0.5 * (self.v_sq - 2.0 * cross + float(np.vdot(W64.T @ W64, HHt.astype(np.float64))))
        WtW = W.T @ W

        for _ in range(self.inner):  # H steps for fixed W: each reuses Wᵀ V (k-sized work, serial)
            num = np.divide(hnum, np.matmul(WtW, H, out=self.hden), out=self.hnum_step)  # WᵀW H > 0, as above
            if self.relax != 1.0:
                num **= self.relax
            H *= num
            lift(H, FLOOR)
        return loss

    def _kl_blocks(self, blocks: list[tuple[int, int]], buf: _Buffers, hsum: np.ndarray, update_w: bool,
                   track: bool) -> float:
        """KL on a run of row blocks: W step, then each block's share of the H numerator.

        Per block: ``W[b] @ H``, divided into ``V[b]`` in place (one buffer), ``(V/WH)[b] Hᵀ``, the new
        ``W[b]``, then the same two steps again for the H numerator ``W[b]ᵀ (V/WH)[b]``: four matrix
        products and two divisions, nothing else of ``V``'s size. The log for the loss is taken in place
        once the ratio has been used. Returns the blocks' ``Σ V log(V / WH)`` for the state before the
        step (0 without ``track``).
        """
        H, W, V = self.H, self.W, self.V
        share = 0.0
        for i, (s, e) in enumerate(blocks):
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
                lift(Wb, FLOOR)
                ratio = np.divide(Vb, np.matmul(Wb, H, out=x), out=x)
                self._accumulate(buf, i == 0, Wb, ratio)
            else:
                self._accumulate(buf, i == 0, Wb, ratio)
                if track:
                    share += float(np.vdot(Vb.ravel(), np.log(ratio, out=ratio).ravel()))
        return share

    def _ratio(self, Wb: np.ndarray, Vb: np.ndarray, x: np.ndarray, track: bool) -> float:
        """For one block (β ∉ {1, 2}): ``x`` [shape=(2 · rows, n_frames)] becomes ``V · WH^(β−2)`` over
        ``WH^(β−1)``, four passes over the block for IS; returns the block's share of the loss of the
        current state (the β-dependent sums; 0 without ``track``)."""
        beta = self.beta
        r = x.shape[0] // 2
        top, bottom = x[:r], x[r:]
        wh = np.matmul(Wb, self.H, out=top)
        if beta < 1:
            lift(wh, _WH_FLOOR_IS)
        share = 0.0
        if beta == 0:
            if track:  # Σ log WH, taken while WH is still whole, in the buffer its reciprocal goes to next
                share = _sum64(np.log(wh, out=bottom))
            np.divide(1.0, wh, out=bottom)  # 1 / WH
            ratio = np.multiply(Vb, bottom, out=top)  # V / WH
            if track:
                share += _sum64(ratio)
            ratio *= bottom  # V / WH²
            return share
        np.power(wh, beta - 1, out=bottom)  # WH^(β−1)
        if track:  # Σ (β−1) WH^β − β V WH^(β−1), in float64 without a V-sized temporary
            share = (beta - 1) * _dot64(bottom, wh) - beta * _dot64(Vb, bottom)
        np.divide(bottom, wh, out=top)
        top *= Vb  # V · WH^(β−2)
        return share

    def _beta_blocks(self, blocks: list[tuple[int, int]], buf: _Buffers, update_w: bool, track: bool) -> float:
        """β ∉ {1, 2} on a run of row blocks (see :meth:`_kl_blocks`): numerator and denominator halves
        stacked in one buffer, so each step is one matrix product (W) or one batched product (H)."""
        V, W = self.V, self.W
        total = 0.0
        for i, (s, e) in enumerate(blocks):
            Vb, Wb, x = V[s:e], W[s:e], buf.x[: 2 * (e - s)]
            total += self._ratio(Wb, Vb, x, track)
            if update_w:
                g = np.matmul(x, self.HT, out=buf.g[: 2 * (e - s)])  # [V·WH^(β−2); WH^(β−1)] Hᵀ
                self._finish(Wb, g[: e - s], g[e - s :])
                self._ratio(Wb, Vb, x, False)
            self._accumulate(buf, i == 0, Wb, x)
        return total

    def _iterate_beta(self, update_w: bool, track: bool) -> float:
        V, W, H, beta = self.V, self.W, self.H, self.beta
        np.copyto(self.HT, H.T)
        kl = beta == 1
        wh_sum = float(W.sum(axis=0, dtype=np.float64) @ H.sum(axis=1, dtype=np.float64)) if track and kl else 0.0
        if kl:
            hsum = lift(H.sum(axis=1), FLOOR)
            total = self._map(lambda blocks, buf: self._kl_blocks(blocks, buf, hsum, update_w, track))
        else:
            total = self._map(lambda blocks, buf: self._beta_blocks(blocks, buf, update_w, track))
        acc = self._gather()
        loss = math.nan
        if track:
            if kl:
                loss = total - self.v_sum + wh_sum
            elif beta == 0:
                loss = total - self.v_log_sum - V.size
            else:
                loss = (total + self.v_pow_sum) / (beta * (beta - 1))
        if kl:
            np.copyto(self.hden, W.sum(axis=0)[:, None])
            self._finish(H, acc[0], self.hden)
        else:
            self._finish(H, acc[0], acc[1])
        return loss

    def exact_loss(self) -> float:
        return beta_divergence(self.V, self.W, self.H, beta=self.beta)


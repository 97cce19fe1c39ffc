"""The β-divergence family that NMF minimises, and the names of its three common members."""

from __future__ import annotations

import numpy as np

__all__ = ["LOSSES", "loss_name", "beta_divergence"]

#: Loss names accepted by the CLI, and their β.
LOSSES: dict[str, float] = {"euclidean": 2.0, "kl": 1.0, "is": 0.0}


def loss_name(beta: float) -> str:
    """``euclidean``, ``kl``, ``is`` for β = 2, 1, 0; ``beta=<β>`` otherwise."""
    return {2.0: "euclidean", 1.0: "kl", 0.0: "is"}.get(float(beta), f"beta={beta:g}")


def beta_divergence(V: np.ndarray, W: np.ndarray, H: np.ndarray, *, beta: float) -> float:
    """The β-divergence ``D_β(V ‖ W @ H)`` (scikit-learn's convention), summed in float64.

    β = 2: ``½‖V − WH‖²``; β = 1: ``Σ V log(V/WH) − V + WH``; β = 0: ``Σ V/WH − log(V/WH) − 1``.
    Entries with ``V = 0`` contribute their limit (0 for the log terms). ``W @ H`` is formed block
    by block in the inputs' precision (float32 inputs: float32 products, float64 sums).

    Parameters
    ----------
    V : np.ndarray [shape=(n_freqs, n_frames)], non-negative
    W : np.ndarray [shape=(n_freqs, k)]
    H : np.ndarray [shape=(k, n_frames)]
    """
    dt = np.result_type(np.asarray(V).dtype, np.asarray(W).dtype, np.asarray(H).dtype, np.float32)
    V = np.asarray(V, dtype=dt)
    W = np.asarray(W, dtype=dt)
    H = np.asarray(H, dtype=dt)
    tiny = np.finfo(dt).tiny
    rows = int(min(V.shape[0], max(1, (1 << 17) // max(V.shape[1], 1))))
    total = 0.0
    for s in range(0, V.shape[0], rows):
        WH = np.maximum(W[s : s + rows] @ H, tiny)
        total += _block_divergence(V[s : s + rows], WH, beta, tiny)
    return total


def _block_divergence(Vb: np.ndarray, WH: np.ndarray, beta: float, tiny: float) -> float:
    """One block of rows of :func:`beta_divergence`."""
    if beta == 2:
        return 0.5 * float(np.square(Vb - WH, dtype=np.float64).sum())
    if beta == 1:
        wh_minus_v = float(WH.sum(dtype=np.float64)) - float(Vb.sum(dtype=np.float64))
        pos = Vb > 0
        if pos.all():  # the usual case: no gathers, one float64 buffer for the log (3× faster)
            Vd = Vb.astype(np.float64)
            ratio = np.divide(Vd, WH, dtype=np.float64)
            return float(np.vdot(Vd.ravel(), np.log(ratio, out=ratio).ravel())) + wh_minus_v
        Vp = Vb[pos].astype(np.float64)
        return float(np.sum(Vp * np.log(Vp / WH[pos]))) + wh_minus_v
    if beta == 0:
        ratio = np.maximum(Vb, tiny).astype(np.float64) / WH
        return float(np.sum(ratio - np.log(ratio) - 1.0))
    Vd, WHd = Vb.astype(np.float64), WH.astype(np.float64)
    return float(np.sum(Vd**beta + (beta - 1) * WHd**beta - beta * Vd * WHd ** (beta - 1)) / (beta * (beta - 1)))

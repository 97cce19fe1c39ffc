"""``specmusic nmf --compare sklearn``: scikit-learn's ``NMF(solver="mu")`` from the same start, side by side."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from specmusic.errors import ConfigError
from specmusic.nmf.divergence import beta_divergence, loss_name
from specmusic.nmf.solver import NMFConfig, NMFResult
from specmusic.nmf.updates import solver_threads

__all__ = ["SklearnRun", "compare_sklearn", "comparison_table"]


@dataclass
class SklearnRun:
    """scikit-learn's run: wall time, final divergence (by :func:`beta_divergence`), BLAS threads."""

    seconds: float
    loss: float
    blas_threads: int


def compare_sklearn(V: np.ndarray, W0: np.ndarray, H0: np.ndarray, config: NMFConfig) -> SklearnRun:
    """Run ``sklearn.decomposition.NMF(solver="mu", init="custom", tol=0)`` on ``V`` from ``W0``, ``H0``
    for ``config.max_iter`` iterations in ``config.dtype``.

    Raises
    ------
    ConfigError
        scikit-learn is not installed.
    """
    try:
        from sklearn.decomposition import NMF
    except ImportError:
        raise ConfigError("--compare sklearn needs scikit-learn — pip install scikit-learn") from None
    from threadpoolctl import threadpool_info

    Vd = V.astype(config.dtype)
    model = NMF(n_components=config.n_components, solver="mu", beta_loss=config.beta, init="custom",
                max_iter=config.max_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        W = model.fit_transform(Vd, W=W0.astype(config.dtype).copy(), H=H0.astype(config.dtype).copy())
        seconds = time.perf_counter() - t0
    blas = max((i.get("num_threads", 1) for i in threadpool_info() if i.get("user_api") == "blas"), default=1)
    return SklearnRun(seconds=seconds, loss=beta_divergence(Vd, W, model.components_, beta=config.beta),
                      blas_threads=blas)


def comparison_table(config: NMFConfig, ours: NMFResult, theirs: SklearnRun) -> list[str]:
    """The lines ``specmusic nmf --compare sklearn`` prints: settings, both runs, speed-up, divergence ratio, and
    when specmusic's loss curve reached scikit-learn's final divergence (the comparison benchmarks/nmf_speed.py
    times in full: its (b))."""
    n = config.max_iter
    reached = [int(i) for i, loss in zip(ours.loss_iterations, ours.losses) if loss <= theirs.loss and i > 0]
    if reached and ours.n_iter:
        at = reached[0] * ours.seconds / ours.n_iter  # the run's mean time per iteration
        sooner = (f"specmusic reached scikit-learn's final divergence at iteration {reached[0]} of {ours.n_iter} "
                  f"(≈ {at:.3f} s at its mean time per iteration): ×{theirs.seconds / max(at, 1e-12):.2f} sooner")
    else:
        sooner = f"specmusic did not reach scikit-learn's final divergence in {ours.n_iter} iterations"
    return [
        f"k={config.n_components}  {loss_name(ours.beta)}  {n} iterations from the same init, {config.dtype}; "
        f"specmusic {solver_threads(config.threads)} solver thread(s), {config.inner_steps} step(s) per factor and "
        f"pass, step exponent {config.step_exponent:g}; scikit-learn {theirs.blas_threads} BLAS thread(s), "
        "textbook steps",
        f"{'':22s}{'seconds':>10s}{'ms/iter':>10s}{'final divergence':>20s}",
        f"{'specmusic nmf':22s}{ours.seconds:10.3f}{ours.seconds / max(ours.n_iter, 1) * 1e3:10.2f}{ours.loss:20.6g}",
        f"{'sklearn NMF(mu)':22s}{theirs.seconds:10.3f}{theirs.seconds / n * 1e3:10.2f}{theirs.loss:20.6g}",
        f"speed-up ×{theirs.seconds / max(ours.seconds, 1e-12):.2f}   divergence ratio {ours.loss / theirs.loss:.4f}",
        sooner,
    ]

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
  again and its share of the H numerator while it is in cache (see :class:`specmusic.nmf.updates.Solver`);
- the blocks are shared out among threads, one per CPU, each with one BLAS thread (scikit-learn's
  element-wise steps run on one core whatever BLAS does); Euclidean, whose time is two big products
  per pass, runs serially with one BLAS thread per CPU instead;
- no ``(n_freqs, n_frames)`` temporaries, copies or ``eps`` guard passes: ``W`` and ``H`` are kept
  above a tiny floor (a ``k``-sized clip), which keeps ``W @ H`` strictly positive; KL denominators
  are ``W.sum(axis=0)`` / ``H.sum(axis=1)``;
- the loss of every iteration comes almost free: KL reuses the ratio ``V / WH`` the update needs
  anyway (one log pass), Euclidean uses ``‖V‖² − 2⟨W, VHᵀ⟩ + ⟨WᵀW, HHᵀ⟩`` on ``k``-sized arrays.

Modules: :mod:`~specmusic.nmf.solver` (:class:`NMFConfig` with every default, :func:`fit_nmf`),
:mod:`~specmusic.nmf.updates` (the passes over ``V``), :mod:`~specmusic.nmf.divergence`,
:mod:`~specmusic.nmf.separate` (masks, parts of a mix, the model's own signal),
:mod:`~specmusic.nmf.files` (``nmf.npz``, ``summary.json``, WAVs), :mod:`~specmusic.nmf.plots`,
:mod:`~specmusic.nmf.mosaic` ("Let it Bee"), :mod:`~specmusic.nmf.compare` (scikit-learn side by
side) and :mod:`~specmusic.nmf.sweep` (a song for several k, as ``specmusic nmf`` runs it). Spectrograms come from :mod:`specmusic.stft`, one consistent numpy pair, so soft masks that
sum to one give parts that sum back to the mix sample for sample.
"""

from specmusic.nmf.divergence import LOSSES, beta_divergence, loss_name
from specmusic.nmf.files import FORMAT_VERSION, load_nmf, save_decomposition
from specmusic.nmf.mosaic import (
    LET_IT_BEE,
    MosaicConfig,
    MosaicResult,
    mosaic,
    mosaic_files,
    mosaic_plot_paths,
    mosaic_to_file,
)
from specmusic.nmf.plots import save_mosaic_plots, save_nmf_plots, save_report_plot
from specmusic.nmf.separate import (
    Decomposition,
    Resynthesis,
    SpectrogramConfig,
    component_stats,
    decompose,
    load_spectrogram_for_nmf,
    magnitude,
    reconstruct,
    resynthesize,
    separate_components,
    soft_masks,
)
from specmusic.nmf.solver import NMFConfig, NMFResult, fit_nmf, initialize_nmf
from specmusic.nmf.sweep import KRun, NMFSweep, parse_components, sweep_nmf
from specmusic.nmf.updates import solver_threads

__all__ = [
    "LOSSES",
    "loss_name",
    "beta_divergence",
    "NMFConfig",
    "NMFResult",
    "initialize_nmf",
    "fit_nmf",
    "solver_threads",
    "magnitude",
    "soft_masks",
    "separate_components",
    "reconstruct",
    "component_stats",
    "SpectrogramConfig",
    "Decomposition",
    "Resynthesis",
    "load_spectrogram_for_nmf",
    "decompose",
    "resynthesize",
    "FORMAT_VERSION",
    "save_decomposition",
    "load_nmf",
    "save_nmf_plots",
    "save_report_plot",
    "save_mosaic_plots",
    "LET_IT_BEE",
    "MosaicConfig",
    "MosaicResult",
    "mosaic",
    "mosaic_files",
    "mosaic_plot_paths",
    "mosaic_to_file",
    "KRun",
    "NMFSweep",
    "parse_components",
    "sweep_nmf",
]

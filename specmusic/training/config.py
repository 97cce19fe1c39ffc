"""Training settings (numpy only): :class:`TrainConfig`, the default features and the features a model takes.

Defaults (one block, nanoGPT-style)::

    chunk_seconds   = 3.0      # training crop / evaluation chunk length; 0 = whole tracks
    epochs          = 20       # epoch budget, counted from the run's first start (one epoch = every
                               # non-overlapping chunk of every training track); raise it to continue a run
    batch_size      = 32
    lr              = 3e-3     # peak AdamW learning rate (1 epoch linear warm-up, then cosine to 0)
    weight_decay    = 1e-2
    patience        = 10       # stop after this many epochs without a better validation score; the
                               # best epoch (kept) is chosen from epoch epochs//3 on, never earlier
    augment         = ()       # none by default (measured best); of: shift mask gain freqshift mixup
    mixup_alpha     = 0.4
    drop_hard       = 0.0      # fraction of highest-loss training chunks dropped after the warm-up
    drop_hard_after = 3        # warm-up epochs before dropping
    track_pooling   = "mean"   # evaluation: mean of chunk probabilities | vote | center chunk only
    valid_fraction  = 0.1      # of all tracks, carved by group from training when no --valid-file
    test_fraction   = 0.2      # of all tracks, carved by group when no --test-file
    seed            = 0
    threads         = 0        # torch threads; 0 = auto: the cores not busy with other work (load average)
    device          = "auto"   # where the network trains: auto (a CUDA GPU when torch sees one, else cpu), cpu,
                               # cuda, cuda:N, mps; evaluation and the ONNX export are the same either way
    freeze_epochs   = 0        # transfer: epochs training only the new head (backbone frozen, batch-norm
                               # statistics kept); = epochs: a linear probe
    finetune_lr     = None     # transfer: peak lr of the full finetune after the frozen epochs (None: lr / 10);
                               # each phase has its own warm-up + cosine schedule
    freeze_front    = False    # transfer: keep the first layers (model.front_prefixes: a tagger's front end,
                               # a CNN's stem + first stage, a ViT's patch embedding) frozen in the finetune too
    max_seconds     = 0.0      # stop after the epoch that passes this training time (0 = no limit)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from specmusic.config import ConfigBase
from specmusic.errors import ConfigError
from specmusic.features import FeatureConfig

if TYPE_CHECKING:
    from specmusic.models.transfer import ModelSpec

__all__ = [
    "AUGMENTS", "DEFAULT_FEATURES", "POOLINGS", "STOPPING_RULES", "TrainConfig", "model_features", "requested_features",
]

AUGMENTS = ("shift", "mask", "gain", "freqshift", "mixup")
POOLINGS = ("mean", "vote", "center")
#: Features computed from audio input: 64-band log-mel at 22050 Hz, FFT 2048, hop 1024 (~46 ms):
#: a 3 s crop is 64 x 65, cheap enough to train on a 2-core CPU in minutes.
DEFAULT_FEATURES = FeatureConfig(kind="mel", n_mels=64, hop_length=1024)
#: Settings that say when to stop, not what an epoch computes: a run resumes (or continues) across changes to them.
STOPPING_RULES = ("epochs", "patience", "max_seconds")


@dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Training settings; see the module docstring for the defaults."""

    what = "training config"

    chunk_seconds: float = 3.0
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    patience: int = 10
    augment: tuple[str, ...] = ()
    mixup_alpha: float = 0.4
    drop_hard: float = 0.0
    drop_hard_after: int = 3
    track_pooling: str = "mean"
    valid_fraction: float = 0.1
    test_fraction: float = 0.2
    seed: int = 0
    threads: int = 0
    device: str = "auto"
    freeze_epochs: int = 0
    finetune_lr: float | None = None
    freeze_front: bool = False
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "augment", tuple(a for a in self.augment if a and a != "none"))
        unknown = [a for a in self.augment if a not in AUGMENTS]
        if unknown:
            raise ConfigError(f"unknown augmentation {unknown[0]!r} — use a comma list of {','.join(AUGMENTS)} or none")
        if self.track_pooling not in POOLINGS:
            raise ConfigError(f"unknown track pooling {self.track_pooling!r} — use one of {', '.join(POOLINGS)}")
        if self.chunk_seconds < 0 or self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("chunk_seconds >= 0, epochs >= 1, batch_size >= 1 and lr > 0 are required — fix the options")
        if not 0.0 <= self.drop_hard < 1.0:
            raise ConfigError(f"--drop-hard {self.drop_hard} must be in [0, 1) — e.g. 0.1 drops a tenth")
        if self.freeze_epochs < 0 or self.freeze_epochs > self.epochs:
            raise ConfigError(
                f"--freeze-epochs {self.freeze_epochs} must be between 0 and --epochs {self.epochs} — "
                "use --linear-probe to train the head alone for every epoch"
            )
        if (self.finetune_lr is not None and self.finetune_lr <= 0) or self.max_seconds < 0:
            raise ConfigError("--finetune-lr must be > 0 and --time-budget >= 0 — fix the options")
        if not (0 <= self.valid_fraction < 1 and 0 <= self.test_fraction < 1 and self.valid_fraction + self.test_fraction < 1):
            raise ConfigError("valid and test fractions must be in [0, 1) and sum below 1 — fix the options")


def requested_features(*, n_mels: int | None = None, sample_rate: int | None = None) -> FeatureConfig | None:
    """The features ``--n-mels``/``--sr`` ask for: :data:`DEFAULT_FEATURES` with those changed, or None when
    neither is given (:func:`model_features` then decides: the default for audio, the arrays' own for a
    spectro folder, a tagger's own)."""
    if n_mels is None and sample_rate is None:
        return None
    return replace(DEFAULT_FEATURES, n_mels=n_mels or DEFAULT_FEATURES.n_mels,
                   sample_rate=sample_rate or DEFAULT_FEATURES.sample_rate)


def model_features(model_spec: ModelSpec, requested: FeatureConfig | None = None) -> FeatureConfig | None:
    """The features a run trains on, given its model: the one rule for archs with their own front end.

    A music tagger takes its own features (:func:`~specmusic.models.taggers.tagger_feature_config`),
    ``audioset-mn04`` EfficientAT's (:data:`~specmusic.models.efficientat.EFFICIENTAT_FEATURES`); any
    other arch takes ``requested`` (None: :data:`DEFAULT_FEATURES` for audio input, the arrays' own
    for a spectro folder).

    Raises
    ------
    ConfigError
        Other features requested for an arch with its own.
    """
    if model_spec.family == "tagger":
        from specmusic.models.taggers import tagger_feature_config

        own, whose = tagger_feature_config(), "the tagger's"
    elif model_spec.family == "efficientat":
        from specmusic.models.efficientat import EFFICIENTAT_FEATURES

        own, whose = EFFICIENTAT_FEATURES, "EfficientAT's"
    else:
        return requested
    if requested is not None:
        requested.require_same(
            own, fix="drop --n-mels/--sr",
            what=f"--arch {model_spec.arch} takes {whose} own features ({own.sample_rate / 1000:g} kHz, "
                 f"{own.n_mels} mel bands, hop {own.hop_length})",
        )
    return own

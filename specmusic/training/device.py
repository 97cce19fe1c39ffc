"""Where training runs (torch): the device (CPU threads: :func:`specmusic.workers.auto_threads`)."""

from __future__ import annotations

import torch

from specmusic.errors import ConfigError

__all__ = ["resolve_device"]


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device for ``name`` (``auto``: the first CUDA GPU when torch sees one, else the CPU).

    Raises
    ------
    ConfigError
        An unknown device name, or one this torch build cannot use.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r}: unknown device — use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: torch {torch.__version__} sees no CUDA GPU on this machine — use --device cpu "
                "(or install a CUDA build of torch)"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA GPU(s) here — use cuda:0…")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"--device {name}: this torch build has no Apple MPS support here — use --device cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"--device {name!r}: not supported — use auto, cpu, cuda, cuda:N or mps")
    return dev

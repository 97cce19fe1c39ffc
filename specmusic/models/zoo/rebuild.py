"""The maintainer command that rebuilds the bundled networks (``specmusic/models/bundled/``)::

    python -m specmusic.models.zoo --bundle --weights ../shared/weights/sota-music-tagging
    python -m specmusic.models.zoo --bundle pons-msd-musicnn --musicnn-wheel musicnn-0.1.0-py3-none-any.whl
    python -m specmusic.models.zoo --bundle audioset-mn04 --weights ../shared/weights/efficientat/mn04_as_mAP_432.pt

Each network is converted exactly as the cache conversion does it (the conversion is deterministic,
so a library embedded with a cached model matches the bundled one), its line of ``SHA256SUMS``
rewritten and the licence of its weights put into ``LICENSE``. Needs torch and onnx
(``pip install -e '.[train]'``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from specmusic.errors import ConfigError, SpecmusicError
from specmusic.fileio import display_path, sha256_file
from specmusic.models.zoo import bundled
from specmusic.models.zoo.convert import MUSICNN_WHEEL_ENV, conversion_for
from specmusic.models.zoo.cache import WEIGHTS_ENV
from specmusic.models.zoo.registry import PONS_MODELS, bundled_list, bundled_names, get_network

__all__ = ["bundle_network", "main"]


def bundle_network(
    name: str,
    *,
    weights: str | os.PathLike[str] | None = None,
    folder: Path | None = None,
    progress: bool | None = None,
) -> Path:
    """Convert network ``name`` into ``folder`` as package data: ``<name>.onnx``, its line in
    ``SHA256SUMS`` and the licence of its weights in ``LICENSE`` (maintainers; imports torch and onnx).

    The file is exactly what the cache conversion writes (:func:`~specmusic.models.zoo.ensure.ensure_model`).

    Parameters
    ----------
    name : a name of :func:`~specmusic.models.zoo.registry.bundled_names`
    weights : the conversion's source: a tagger's ``best_model.pth`` or a folder of
        ``<dataset>/<arch>/best_model.pth``, an EfficientAT release file (``mn04_as_mAP_432.pt``) or
        its folder (else the cache or a download); a Pons model's musicnn wheel or its unzipped
        folder (else ``$SPECMUSIC_MUSICNN_WHEEL``)
    folder : where to write (default :data:`~specmusic.models.zoo.bundled.BUNDLE_DIR`, the package's ``bundled/``)

    Raises
    ------
    ConfigError
        ``name`` is unknown, or not listed as bundled in the registry.
    ModelError
        The source cannot be found, downloaded or converted, or no licence text is at hand.
    """
    network = get_network(name)
    if name not in bundled_names():
        listed = bundled_list(network)
        raise ConfigError(
            f"{name} is not in {listed} — add it to the tuple in specmusic/models/zoo/registry.py first "
            f"(the one list of bundled {conversion_for(network).noun}s), then rerun --bundle"
        )
    conversion = conversion_for(network)
    source = conversion.bundle_source(network, weights=weights, progress=progress)
    folder = bundled.BUNDLE_DIR if folder is None else folder
    folder.mkdir(parents=True, exist_ok=True)
    conversion.add_licence(source, folder)
    out = conversion.convert(network, source, folder / f"{name}.onnx")
    bundled.record_bundled(out)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m specmusic.models.zoo --bundle [NAME ...] [--weights DIR] [--musicnn-wheel WHEEL]``."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m specmusic.models.zoo",
        description="Rebuild the networks shipped inside the package (specmusic/models/bundled/) from their "
        "checkpoints: ONNX file, SHA256SUMS line, LICENSE. Needs torch and onnx (pip install -e '.[train]').",
    )
    parser.add_argument("--bundle", nargs="*", metavar="NAME", required=True,
                        help=f"networks to rebuild (default: every bundled one: {', '.join(bundled_names())})")
    parser.add_argument("--musicnn-wheel", help="the musicnn wheel or its unzipped folder, for "
                        f"{', '.join(PONS_MODELS)} "
                        f"(default: ${MUSICNN_WHEEL_ENV})")  # fmt: skip
    parser.add_argument("--weights", help="a tagger's best_model.pth or a folder of <dataset>/<arch>/best_model.pth; "
                        "EfficientAT's mn04_as_mAP_432.pt (with its LICENSE beside it) or its folder "
                        f"(default: ${WEIGHTS_ENV}, the cache, else a download)")  # fmt: skip
    args = parser.parse_args(argv)
    sources = {"--weights": args.weights, "--musicnn-wheel": args.musicnn_wheel}  # by Conversion.source_option
    try:
        for name in args.bundle or bundled_names():
            option = conversion_for(get_network(name)).source_option
            out = bundle_network(name, weights=sources[option], progress=True)
            print(f"{sha256_file(out)}  {display_path(out)}  ({out.stat().st_size:,} bytes)")
    except SpecmusicError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0

"""Report builders for outputs that list tracks: ``embed`` (library or map), ``recommend --json``, ``describe --json``.

The embed map is drawn here as an inline SVG, one ``<circle>`` per track, with a few lines of
JavaScript in the page for hover (a tooltip naming the track) and click (the page's one player
plays it). Why not a plotting library (Plotly, Vega, D3): the page must work from ``file://``
with no network, so a library would have to be inlined (hundreds of KB of script for a scatter
plot) or shipped beside the page; an SVG is a few dozen bytes a point, is drawn by the browser
itself, needs no build step, and every point is a DOM element a browser test can hover and click.
Its limit is size: beyond some tens of thousands of points a ``<canvas>`` would be lighter, so the
map draws at most :data:`MAP_POINTS` tracks (an even sample, said on the page).

Defaults (one block)::

    MAP_POINTS = 20000   # tracks drawn on the embed map (an even sample beyond this)
    MAP_SIZE   = (760, 520)  # SVG width, height in CSS pixels
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.report.folders import read_json, read_jsonl
from specmusic.report.kinds import Report
from specmusic.report.media import Media, resolve_audio

__all__ = ["MAP_POINTS", "build_describe", "build_embed", "build_recommend", "map_svg_points"]

MAP_POINTS = 20000
MAP_SIZE = (760, 520)
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
            "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
            "#dbdb8d", "#9edae5"]


def _map_record(path: Path) -> dict[str, Any]:
    """``embed --map``'s JSON as it is, or (a library) clustered and projected now (PCA, KMeans, seed 0)."""
    if path.suffix.lower() == ".json":
        data = read_json(path)
        if isinstance(data, dict) and "points" in data:
            return data
    from specmusic.cluster import cluster_embeddings, cluster_record
    from specmusic.embeddings import read_library, search_vectors

    library = read_library(path)
    if len(library) < 2:
        raise InputError(f"{display_path(path)}: a map needs at least 2 tracks — embed more tracks")
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():  # duplicates make fewer clusters than asked: the map shows it, not stderr
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cluster_embeddings(search_vectors(library), labels=library.labels, ids=library.ids, seed=0)
    return cluster_record(result, ids=library.ids, labels=library.labels)


def map_svg_points(points: list[dict[str, Any]], *, size: tuple[int, int] = MAP_SIZE) -> list[dict[str, Any]]:
    """Each point's ``cx``, ``cy`` in the SVG (y up, a 24 px margin) and its colour (by label, else cluster)."""
    width, height = size
    xy = np.array([[float(p["x"]), float(p["y"])] for p in points], dtype=np.float64).reshape(-1, 2)
    lo, hi = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    margin = 24
    keys = [p.get("label") if any(q.get("label") for q in points) else f"cluster {p.get('cluster')}" for p in points]
    names = sorted({str(k) for k in keys})
    colour = {n: _PALETTE[i % len(_PALETTE)] for i, n in enumerate(names)}
    out = []
    for (x, y), key in zip(xy, keys):
        cx = margin + (x - lo[0]) / span[0] * (width - 2 * margin)
        cy = height - margin - (y - lo[1]) / span[1] * (height - 2 * margin)
        out.append({"cx": round(float(cx), 1), "cy": round(float(cy), 1), "colour": colour[str(key)], "key": str(key)})
    return out


def _legend(svg_points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for p in svg_points:
        seen.setdefault(p["key"], p["colour"])
    return sorted(seen.items())


def build_embed(path: Path, media: Media, limit: int) -> Report:
    """An interactive 2-D map (hover names the track, click plays it), the clusters and the tracks."""
    record = _map_record(path)
    points = list(record.get("points", []))
    step = max(1, -(-len(points) // MAP_POINTS))
    drawn = points[::step]
    bases = [path.parent]
    items = []
    for i, p in enumerate(points):
        audio = resolve_audio(str(p["id"]), bases)
        items.append({"index": i, "name": display_path(str(p["id"])), "label": p.get("label"),
                      "cluster": p.get("cluster"), "audio": media.audio(audio) if audio else media.audio(None),
                      "file": audio})
    svg = map_svg_points(drawn)
    tracks = []
    for j, (p, s) in enumerate(zip(drawn, svg)):
        item = items[j * step]
        tracks.append({"i": j * step, "n": item["name"], "l": display_path(str(p.get("label") or "")),
                       "c": p.get("cluster"), "s": media.link(item["file"]) if item["file"] is not None else None})
        s["i"] = j
    for item in items:
        del item["file"]
    clusters = [{"cluster": c.get("cluster"), "size": c.get("size"),
                 "labels": ", ".join(f"{display_path(str(k))} {v}" for k, v in (c.get("labels") or {}).items()),
                 "examples": [display_path(str(e)) for e in c.get("examples", [])]} for c in record.get("clusters", [])]
    head = {
        "svg": svg, "size": MAP_SIZE, "legend": _legend(svg), "tracks_json": script_json(tracks),
        "drawn": len(drawn), "total": len(points), "projection": record.get("projection"), "k": record.get("k"),
        "metrics": sorted((record.get("metrics") or {}).items()), "clusters": clusters[:limit],
        "clusters_more": max(0, len(clusters) - limit),
    }
    return Report("embed", f"Embedding map: {display_path(path.name)}", display_path(path), head, items, "tracks")


def script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and lone surrogates escaped."""
    text = json.dumps(value, ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# -- recommend ------------------------------------------------------------------------------
def _neighbour(n: dict[str, Any], media: Media, bases: list[Path]) -> dict[str, Any]:
    from specmusic.embeddings.search.explain import explain_text

    audio = resolve_audio(str(n.get("id", "")), bases)
    return {"rank": n.get("rank"), "score": n.get("score"), "name": display_path(str(n.get("id", ""))),
            "label": n.get("label"), "audio": media.audio(audio),
            "explain": explain_text(n["explain"]) if isinstance(n.get("explain"), dict) else None,
            "warnings": [display_path(str(w)) for w in n.get("warnings") or []]}


def build_recommend(path: Path, media: Media, limit: int) -> Report:
    """Each query and its neighbours with scores, all playable."""
    rows = [r for r in read_jsonl(path) if "query" in r and "neighbors" in r]
    if not rows:
        raise InputError(f"{display_path(path)}: no recommend records — write it with `specmusic recommend --json`")
    bases = [path.parent]
    items = []
    for r in rows:
        query = str(r["query"])
        # A query named by a unique tail of a library id ("rock/song.mp3") is looked for beside its neighbours too.
        near = list(dict.fromkeys(Path(str(n.get("id", ""))).parent for n in r.get("neighbors", [])))
        items.append({"name": display_path(query), "audio": media.audio(resolve_audio(query, bases + near)),
                      "warnings": [display_path(str(w)) for w in r.get("warnings") or []],
                      "neighbours": [_neighbour(n, media, bases) for n in r.get("neighbors", [])]})
    head = {"queries": len(rows), "k": max((len(r.get("neighbors", [])) for r in rows), default=0)}
    return Report("recommend", f"Recommendations: {display_path(path.name)}", display_path(path), head, items, "queries")


# -- describe -------------------------------------------------------------------------------
def _text(value: Any) -> Any:
    return display_path(value) if isinstance(value, str) else value


def _is_png(path: Path) -> bool:
    """A readable file that starts with the PNG signature."""
    try:
        with open(path, "rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def build_describe(path: Path, media: Media, limit: int) -> Report:
    """``describe --json``: per-label table, formats, duplicates, warnings, plots, and every file playable."""
    data = read_json(path)
    if not isinstance(data, dict) or data.get("kind") != "specmusic-describe":
        raise InputError(f"{display_path(path)}: not describe --json output — write it with `specmusic describe --json`")
    bases = [path.parent]
    if isinstance(data.get("base"), str):  # where describe ran: its relative paths start there
        bases.insert(0, Path(data["base"]))
    items = []
    for f in data.get("files", []):
        audio = resolve_audio(str(f.get("path", "")), bases)
        items.append({**{k: _text(v) for k, v in f.items()}, "name": display_path(str(f.get("path", ""))),
                      "audio": media.audio(audio)})
    labels = [{"label": display_path(str(k)), **v} for k, v in (data.get("labels") or {}).items()]
    duplicates = []
    for d in (data.get("duplicates") or [])[:limit]:
        a, b = str(d.get("a", "")), str(d.get("b", ""))
        duplicates.append({**{k: _text(v) for k, v in d.items()},
                           "a_audio": media.audio(resolve_audio(a, bases)), "b_audio": media.audio(resolve_audio(b, bases))})
    plots = []
    for name, rel in (data.get("plots") or {}).items():
        png = Path(rel) if os.path.isabs(str(rel)) else path.parent / str(rel)
        if _is_png(png):  # only pictures: a JSON naming another file must not pull it into the page
            plots.append({"name": display_path(str(name)).replace("_", " "), "src": media.picture(png)})
    head = {
        "inputs": [display_path(str(i)) for i in data.get("inputs", [])], "clips": data.get("clips"),
        "labels": labels, "duplicates": duplicates, "warnings": [display_path(str(w)) for w in data.get("warnings", [])],
        "failed": [{"path": display_path(str(f.get("path", ""))), "error": display_path(str(f.get("error", "")))}
                   for f in data.get("failed", [])],
        "tables": [(t, sorted(((display_path(str(k)), v) for k, v in (data.get(t) or {}).items()), key=str))
                   for t in ("formats", "sample_rates", "channels")],
        "plots": plots, "duplicates_more": max(0, len(data.get("duplicates") or []) - limit),
    }
    return Report("describe", f"Dataset: {display_path(path.name)}", display_path(path), head, items, "files")

"""The describe document: per-label statistics, warnings (each with its rule), the JSON and the table.

:func:`description_record` is the ``--json`` document (``kind: specmusic-describe``, ``version: 1``;
``specmusic report`` renders it). Keys are only ever added, never renamed. :func:`format_table`
is the terminal view of the same record, so both always agree.

Warning rules (thresholds in :class:`~specmusic.describe.analyze.DescribeConfig`):

- *imbalance*: a label with fewer than ``imbalance_ratio`` x the median clips per label, or more
  than the median / ``imbalance_ratio`` (defaults: under half, or over twice, the median);
- *split coverage*: a label with no clip in a split that the given lists define;
- *single group*: a label all of whose clips come from one group (it cannot be trained and tested on);
- *group leakage*: a group (a manifest's ``group`` column) with clips in two splits;
- *leakage*: a duplicate pair whose clips are in two different splits; *duplicates*: any other pair;
  *label conflict*: a duplicate pair with two different labels;
- *silence* / *clipping*: clips over ``silent_share`` / ``clipping_share``;
- *mixed formats*: more than one sample rate or channel count (a shortcut a model can learn when it
  follows the labels).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from specmusic.describe.run import SPLIT_NAMES, Description, label_of
from specmusic.fileio import display_path

__all__ = ["KIND", "VERSION", "description_record", "format_table"]

KIND = "specmusic-describe"
VERSION = 1


def _num(x: float | None, digits: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), digits)


def _spread(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "max": None}
    v = np.asarray(values, dtype=np.float64)
    return {"min": _num(v.min()), "median": _num(float(np.median(v))), "max": _num(v.max())}


def _label_rows(desc: Description) -> dict[str, dict[str, Any]]:
    cfg = desc.config
    rows: dict[str, dict[str, Any]] = {}
    by_label: dict[str, list[int]] = {}
    for i, t in enumerate(desc.tracks):
        by_label.setdefault(label_of(t.label), []).append(i)
    for label in sorted(by_label):
        idx = by_label[label]
        an = [desc.analyses[i] for i in idx]
        durations = [a.duration for a in an]
        row: dict[str, Any] = {
            "clips": len(idx),
            "groups": len({desc.tracks[i].group_id for i in idx}),
            "duration": {"total": _num(sum(durations)), **_spread(durations)},
            "loudness_lufs": _spread([a.lufs for a in an if a.lufs is not None]),
            "clipping_clips": sum(a.clipping_share > cfg.clipping_share for a in an),
            "silent_clips": sum(a.silence_share > cfg.silent_share for a in an),
        }
        if desc.split_lists:
            counts = Counter(desc.splits[i] for i in idx)
            row["splits"] = {name: counts.get(name, 0) for name in SPLIT_NAMES} | {"none": counts.get(None, 0)}
        pic = desc.mean_spectrogram(label)
        seen = np.isfinite(pic)
        spectrum = np.where(seen, pic, 0.0).sum(axis=1) / np.maximum(seen.sum(axis=1), 1)
        row["mean_spectrum_db"] = [_num(v, 2) if seen[k].any() else None for k, v in enumerate(spectrum)]
        rows[label] = row
    return rows


def _file_rows(desc: Description) -> list[dict[str, Any]]:
    cfg = desc.config
    return [
        {
            "path": t.path, "label": t.label, "group": t.group_id, "split": split,
            "duration": _num(a.duration), "sample_rate": a.sample_rate, "channels": a.channels, "format": a.format,
            "lufs": _num(a.lufs, 2), "peak_dbfs": _num(a.peak_dbfs, 2),
            "clipping_share": _num(a.clipping_share, 6), "silence_share": _num(a.silence_share, 4),
            "clipping": a.clipping_share > cfg.clipping_share, "silent": a.silence_share > cfg.silent_share,
        }
        for t, a, split in zip(desc.tracks, desc.analyses, desc.splits)
    ]


def _duplicate_rows(desc: Description) -> list[dict[str, Any]]:
    out = []
    for d in desc.duplicates:
        sa, sb = desc.splits[d.a], desc.splits[d.b]
        out.append({
            "a": desc.tracks[d.a].path, "b": desc.tracks[d.b].path, "kind": d.kind,
            "similarity": _num(d.similarity, 4), "offset_seconds": _num(d.offset_seconds, 2),
            "overlap_seconds": _num(d.overlap_seconds, 2), "splits": [sa, sb],
            "leakage": sa is not None and sb is not None and sa != sb,
            "labels": [desc.tracks[d.a].label, desc.tracks[d.b].label],
        })
    return out


def _warnings(desc: Description, labels: dict[str, dict[str, Any]], dups: list[dict[str, Any]]) -> list[str]:
    cfg = desc.config
    out: list[str] = []
    if len(labels) >= 2:
        median = float(np.median([r["clips"] for r in labels.values()]))
        for name, row in labels.items():
            n = row["clips"]
            if n < cfg.imbalance_ratio * median:
                out.append(f"imbalance: label '{name}' has {n} clips, under {cfg.imbalance_ratio:.0%} of the median "
                           f"label's {median:g} (rule: fewer than {cfg.imbalance_ratio:g} x the median clips per label)")
            elif n > median / cfg.imbalance_ratio:
                out.append(f"imbalance: label '{name}' has {n} clips, over {1 / cfg.imbalance_ratio:g} x the median "
                           f"label's {median:g} (rule: more than the median / {cfg.imbalance_ratio:g})")
    for name in desc.split_lists:
        missing = [lab for lab, row in labels.items() if row.get("splits", {}).get(name, 0) == 0]
        if missing:
            out.append(f"split coverage: the {name} split has no clip of {', '.join(repr(m) for m in missing[:5])}"
                       + (f" and {len(missing) - 5} more labels" if len(missing) > 5 else ""))
    single = [lab for lab, row in labels.items() if row["groups"] == 1 and row["clips"] > 1]
    if single:
        out.append(f"single group: {', '.join(repr(s) for s in single[:5])} hold one group each — such a label "
                   "cannot be both trained and tested on without leakage")
    splits_of: dict[str, set[str]] = {}
    for t, split in zip(desc.tracks, desc.splits):
        if split is not None:
            splits_of.setdefault(t.group_id, set()).add(split)
    straddling = sorted(g for g, names in splits_of.items() if len(names) > 1)
    if straddling:
        g = straddling[0]
        out.append(f"group leakage: {len(straddling)} group(s) have clips in two splits, e.g. '{g}' "
                   f"({', '.join(sorted(splits_of[g]))}) — a group (artist, album, source track) belongs in one split")
    leaks = [d for d in dups if d["leakage"]]
    if leaks:
        d = leaks[0]
        out.append(f"leakage: {len(leaks)} duplicate pair(s) straddle two splits, e.g. {display_path(d['a'])} "
                   f"[{d['splits'][0]}] = {display_path(d['b'])} [{d['splits'][1]}] — move or drop one of each pair")
    others = len(dups) - len(leaks)
    if others:
        exact = sum(d["kind"] == "exact" for d in dups if not d["leakage"])
        out.append(f"duplicates: {others} pair(s) hold the same audio ({exact} exact, {others - exact} near) — "
                   "they weigh twice in training and evaluation")
    conflicts = [d for d in dups if d["labels"][0] != d["labels"][1]]
    if conflicts:
        out.append(f"label conflict: {len(conflicts)} duplicate pair(s) carry two labels, e.g. "
                   f"{display_path(conflicts[0]['a'])} ({conflicts[0]['labels'][0]}) = "
                   f"{display_path(conflicts[0]['b'])} ({conflicts[0]['labels'][1]})")
    silent = sum(r["silent_clips"] for r in labels.values())
    if silent:
        out.append(f"silence: {silent} clip(s) are mostly digital silence (over {cfg.silent_share:.0%} of 100 ms "
                   f"segments below {cfg.silence_db:g} dBFS)")
    clipping = sum(r["clipping_clips"] for r in labels.values())
    if clipping:
        out.append(f"clipping: {clipping} clip(s) clip (over {cfg.clipping_share:.1%} of samples in runs of "
                   f"{cfg.clip_run}+ at {cfg.clip_level:g} of full scale)")
    for what, counts in (("sample rates", Counter(a.sample_rate for a in desc.analyses)),
                         ("channel counts", Counter(a.channels for a in desc.analyses))):
        if len(counts) > 1:
            listed = ", ".join(f"{k}: {v}" for k, v in counts.most_common())
            out.append(f"mixed {what} ({listed}) — harmless to specmusic (it resamples and mixes down), but a "
                       "shortcut a model can learn if it follows the labels")
    out.extend(desc.notes)
    if desc.failed:
        out.append(f"unreadable: {len(desc.failed)} file(s) could not be described (listed under 'failed')")
    return out


def description_record(desc: Description, *, inputs: Sequence[str], plots: dict[str, str] | None = None
                       ) -> dict[str, Any]:
    """The ``--json`` document of ``describe`` (see docs/describe.md for every key)."""
    labels = _label_rows(desc)
    dups = _duplicate_rows(desc)
    return {
        "kind": KIND,
        "version": VERSION,
        "inputs": list(inputs),
        "clips": len(desc.tracks),
        "failed": list(desc.failed),
        "duration": {"total": _num(sum(a.duration for a in desc.analyses)),
                     **_spread([a.duration for a in desc.analyses])},
        "labels": labels,
        "files": _file_rows(desc),
        "formats": dict(Counter(a.format for a in desc.analyses).most_common()),
        "sample_rates": {str(k): v for k, v in Counter(a.sample_rate for a in desc.analyses).most_common()},
        "channels": {str(k): v for k, v in Counter(a.channels for a in desc.analyses).most_common()},
        "split_lists": dict(desc.split_lists),
        "duplicates": dups,
        "warnings": _warnings(desc, labels, dups),
        "thresholds": {k: v for k, v in asdict(desc.config).items() if k != "fingerprint"}
        | {"fingerprint": asdict(desc.config.fingerprint)},
        "plots": dict(plots or {}),
    }


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _align(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return ["  ".join(cell.rjust(w) if c in right else cell.ljust(w) for c, (cell, w) in enumerate(zip(r, widths)))
            .rstrip() for r in rows]


def format_table(record: dict[str, Any], *, max_pairs: int = 20) -> str:
    """The terminal view of a :func:`description_record`: a per-label table, totals, duplicates, warnings."""
    splits = bool(record.get("split_lists"))
    head = ["label", "clips", "groups"] + (["train", "valid", "test", "none"] if splits else []) + [
        "total min", "min s", "median s", "max s", "LUFS median", "LUFS range", "clipping", "silent"]
    rows = [head]
    for name, r in record["labels"].items():
        d, lo = r["duration"], r["loudness_lufs"]
        s = r.get("splits", {})
        rows.append([name, str(r["clips"]), str(r["groups"])]
                    + ([str(s.get(k, 0)) for k in (*SPLIT_NAMES, "none")] if splits else [])
                    + [_fmt(d["total"] / 60 if d["total"] is not None else None, ".1f"), _fmt(d["min"], ".1f"),
                       _fmt(d["median"], ".1f"), _fmt(d["max"], ".1f"), _fmt(lo["median"], ".1f"),
                       f"{_fmt(lo['min'], '.1f')} .. {_fmt(lo['max'], '.1f')}", str(r["clipping_clips"]),
                       str(r["silent_clips"])])
    lines = _align(rows, right=set(range(1, len(head))) - {head.index("LUFS range")})
    lines.insert(1, "-" * len(lines[0]))
    total = record["duration"]["total"] or 0.0
    lines.append("")
    lines.append(f"{record['clips']} clips, {total / 3600:.2f} h, {len(record['labels'])} labels; "
                 f"{len(record['failed'])} unreadable")
    for key, unit in (("formats", ""), ("sample_rates", " Hz"), ("channels", " ch")):
        lines.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{k}{unit} x{v}" for k, v in record[key].items()))
    dups = record["duplicates"]
    leaks = sum(d["leakage"] for d in dups)
    exact = sum(d["kind"] == "exact" for d in dups)
    lines.append(f"duplicates: {len(dups)} pair(s) ({exact} exact, {len(dups) - exact} near), {leaks} across splits")
    for d in sorted(dups, key=lambda d: not d["leakage"])[:max_pairs]:
        where = f" [{d['splits'][0] or 'no split'} / {d['splits'][1] or 'no split'}]" if splits else ""
        lines.append(f"  {'LEAK ' if d['leakage'] else ''}{d['kind']} {d['similarity']:.3f}  {display_path(d['a'])}"
                     f" = {display_path(d['b'])}{where}  (offset {d['offset_seconds']:+.2f} s, "
                     f"{d['overlap_seconds']:.1f} s shared)")
    if len(dups) > max_pairs:
        lines.append(f"  … {len(dups) - max_pairs} more pair(s) in --json")
    if record["warnings"]:
        lines.append("warnings:")
        lines.extend(f"  - {w}" for w in record["warnings"])
    for f in record["failed"]:
        lines.append(f"unreadable: {f['error']}")
    return "\n".join(lines)

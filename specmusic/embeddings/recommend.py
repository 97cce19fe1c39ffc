"""Recommending: cosine top-k over a library or a table, with query resolution, exclusion and explanations.

Group keys (``recommend --group-key``) leave out the neighbours that share the query's value:

    group   the library's group (a manifest's group column)
    label   the track's label (from its parent folder, or a manifest)
    dir     the name of the track's immediate parent folder (``rock`` for ``/music/rock/a.mp3``);
            names, not whole paths, so a query file elsewhere (``~/new/rock/b.mp3``) matches too
    COLUMN  (tables) the value of any CSV column

Queries are answered one by one: an unknown id, an unreadable audio file or a silent one is
reported (``on_error``) while the other queries are answered. Audio that embeds to a meaningless
vector is handled by what :func:`specmusic.audio.signal_warnings` says about it:

* digital silence: the query is refused (any neighbour of silence would be a confident-looking
  accident), whether it is a new audio file or a library entry embedded from silence;
* mis-scaled samples, a clip shorter than the model's window: answered, with the warning on the
  query (``"warnings"``); neighbours whose library entry was flagged carry theirs too.

Ids are paths as the OS decodes them (lone surrogates for bytes that are not UTF-8); a query may
give such a byte as itself or as ``\\xNN`` (the form text output shows) or ``\\udcNN``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from specmusic.embeddings.adapt import Space, adapt_groups, library_space, note_fallback
from specmusic.embeddings.embedders import Embedder, embedder_from_description
from specmusic.embeddings.explain import explain_columns, explain_tags, folder_of
from specmusic.embeddings.library import EmbeddingLibrary, Tags
from specmusic.embeddings.tabular import TabularSource
from specmusic.errors import InputError
from specmusic.fileio import display_path
from specmusic.index import _check_finite, build_index, l2_normalize, standardize_columns

__all__ = ["GROUP_KEYS", "IdLookup", "Recommender", "explain_match", "query_space", "search_vectors"]

GROUP_KEYS = ("group", "label", "dir")
#: What :func:`specmusic.audio.signal_warnings` says of digital silence: such a query is refused.
_SILENCE = "digital silence"
_ESCAPED_BYTE = re.compile(r"\\x([89a-fA-F][0-9a-fA-F])|\\u(dc[89a-fA-F][0-9a-fA-F])")


def _as_os_text(query: str) -> str:
    """``query`` with ``\\xNN``/``\\udcNN`` escapes of non-UTF-8 bytes turned back into the
    lone surrogates ``os.fsdecode`` gives them (the inverse of :func:`specmusic.fileio.display_path`)."""
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)) if m.group(1) else chr(int(m.group(2), 16)), query)


def search_vectors(library: EmbeddingLibrary, *, standardize: bool | None = None) -> np.ndarray:
    """The vectors that cosine search and cluster maps use: z-scored per column first when the
    library's model asks for it (MFCC statistics) or ``standardize`` says so, then L2-normalised.

    Returns
    -------
    np.ndarray [shape=(n, d)], float32
    """
    std = bool(library.model.get("standardize")) if standardize is None else standardize
    groups = adapt_groups(library.model)
    if groups and len(library):
        _check_finite(library.vectors, "the library", library.ids)
        return l2_normalize(library_space(library.vectors, groups, learn=std).apply(library.vectors))
    if not std or len(library) < 2:
        return library.vectors
    return l2_normalize(standardize_columns(library.vectors)[0])


@dataclass
class _Query:
    """A resolved query: its search-space vector, its library row (None: a new audio file), its tags."""

    text: str
    vector: np.ndarray
    row: int | None
    tags: Tags | None = None
    warnings: list[str] | None = None


class Recommender:
    """Cosine top-k over a library or a table, with query resolution, exclusion and explanations.

    Build with :meth:`from_library` or :meth:`from_tabular`; call :meth:`recommend`.
    """

    def __init__(
        self,
        *,
        vectors: np.ndarray,
        ids: list[str],
        labels: list[str | None],
        groups: list[str | None],
        model: dict[str, Any],
        standardize: bool,
        columns: list[str] | None = None,
        raw: np.ndarray | None = None,
        rows: list[dict[str, str]] | None = None,
        tags: list[Tags | None] | None = None,
        warnings: list[list[str]] | None = None,
        index_config: Any = None,
        on_note: Callable[[str], None] | None = None,
        index_cache: str | None = None,
    ) -> None:
        self.ids, self.labels, self.groups, self.model = ids, labels, groups, model
        self.columns, self.raw, self.rows = columns, raw, rows
        self.tags = tags if tags is not None else [None] * len(ids)
        self.warnings = warnings if warnings is not None else [[] for _ in ids]
        self.standardize = standardize
        base = np.asarray(vectors, dtype=np.float32)
        if base.ndim != 2 or base.shape[0] == 0:
            raise InputError("the library is empty — embed some tracks first (`specmusic embed DIR -o library.npz`)")
        _check_finite(base, "the library", ids)
        groups = adapt_groups(model)
        self.space: Space | None = library_space(base, groups, learn=standardize) if groups else None
        if self.space is not None:
            note_fallback(self.space, standardize, on_note)
            self.z, self.mean, self.scale = self.space.apply(base), None, None
        elif standardize:
            self.z, self.mean, self.scale = standardize_columns(base)
        else:
            self.z, self.mean, self.scale = base, None, None
        key = ""
        if index_cache is not None:
            st = os.stat(index_cache)
            key = f"{st.st_size}:{st.st_mtime_ns}:standardize={standardize}"
            if self.space is not None:
                key += f":{self.space.key()}"
        self.index = build_index(
            l2_normalize(self.z), config=index_config, ids=ids, on_note=on_note, cache=index_cache, cache_key=key
        )
        self._stored_dim = int(base.shape[1])
        self._lookup = IdLookup(ids, paths=columns is None)
        self._embedder: Embedder | None = None
        self._folders: bool | None = None

    @classmethod
    def from_library(
        cls,
        library: EmbeddingLibrary,
        *,
        standardize: bool | None = None,
        index_config: Any = None,
        on_note: Any = None,
        index_cache: str | None = None,
    ) -> Recommender:
        """Search a library; ``standardize`` defaults to what its model asks (MFCC stats: yes).

        ``index_cache``: the library's file; an ANN index built for it is saved beside it and
        reused while the file is unchanged (see :func:`specmusic.index.build_index`).
        """
        std = bool(library.model.get("standardize")) if standardize is None else standardize
        return cls(
            vectors=library.vectors,
            ids=library.ids,
            labels=library.labels,
            groups=library.groups,
            model=library.model,
            standardize=std,
            tags=library.tags,
            warnings=library.warnings,
            index_config=index_config,
            on_note=on_note,
            index_cache=index_cache,
        )

    @classmethod
    def from_tabular(cls, source: TabularSource, *, index_config: Any = None, on_note: Any = None) -> Recommender:
        """Search table rows, each column z-scored first (so tempo in BPM cannot swamp 0–1 columns)."""
        return cls(
            vectors=source.values,
            ids=source.ids,
            labels=[None] * len(source.ids),
            groups=[None] * len(source.ids),
            model={"kind": "tabular", "columns": source.columns},
            standardize=True,
            columns=source.columns,
            raw=source.values,
            rows=source.rows,
            index_config=index_config,
            on_note=on_note,
        )

    @property
    def has_tags(self) -> bool:
        """Whether any track carries tags (libraries embedded with an ONNX model)."""
        return any(t for t in self.tags)

    # -- queries ----------------------------------------------------------------------------
    def find_id(self, query: str) -> int | None:
        """Row of ``query``: exact id, same absolute path, or a unique path suffix; else None.

        A byte of a file name that is not UTF-8 may be given as itself or escaped (``\\xNN``).

        Raises
        ------
        InputError
            The suffix matches several ids.
        """
        return self._lookup.find(query)

    def _query_vector(self, vec: np.ndarray) -> np.ndarray:
        return query_space(vec, self._stored_dim, self.mean, self.scale, self.space)

    def _resolve(self, query: str, embedder: Embedder | None) -> _Query:
        row = self.find_id(query)
        if row is not None:
            return _checked(_Query(query, self.z[row], row, self.tags[row], list(self.warnings[row])))
        found = audio_query(self, query, embedder, self._query_vector) if self.columns is None else None
        if found is not None:
            return found
        hint = "one of the CSV's --id values" if self.columns is not None else "a path in the library or an audio file"
        raise InputError(f"unknown query {display_path(query)!r} — give {hint}")

    def resolve(self, query: str, *, embedder: Embedder | None = None) -> tuple[np.ndarray, int | None]:
        """The (search-space) vector of a query and its library row (None for a new audio file).

        Raises
        ------
        InputError
            Unknown id, or a query audio file whose embedding does not fit the library.
        """
        q = self._resolve(query, embedder)
        return q.vector, q.row

    def _resolve_all(
        self, queries: Sequence[str], embedder: Embedder | None, on_error: Callable[[str], None] | None
    ) -> list[_Query]:
        """Resolve each query; with ``on_error``, a query that cannot be answered is reported and left out."""
        resolved = []
        for q in queries:
            try:
                resolved.append(self._resolve(q, embedder))
            except InputError as exc:  # this query only (ModelError: every audio query would fail alike)
                if on_error is None:
                    raise
                on_error(str(exc))
        return resolved

    # -- groups and explanations ------------------------------------------------------------
    def _group_values(self, key: str) -> list[str | None]:
        if key == "group":
            return self.groups
        if key == "label":
            return self.labels
        if key == "dir":
            return [folder_of(i) for i in self.ids]
        if self.rows is not None and self.columns is not None:
            if key not in self.rows[0]:
                raise InputError(f"--group-key {key!r} is not a column — columns are {', '.join(self.rows[0])}")
            return [r.get(key) or None for r in self.rows]
        raise InputError(f"--group-key {key!r} is unknown — use one of {', '.join(GROUP_KEYS)}")

    def _group_codes(self, key: str, queries: list[_Query]) -> tuple[np.ndarray, list[int]]:
        """Each library row's group code and each query's (``-1``: no group)."""
        table: dict[str, int] = {}
        codes = np.array(
            [table.setdefault(v, len(table)) if v is not None else -1 for v in self._group_values(key)], np.int64
        )
        qcodes = []
        for q in queries:
            if q.row is not None:
                qcodes.append(int(codes[q.row]))
            elif key == "dir":
                qcodes.append(table.get(folder_of(q.text) or "", -1))
            else:
                qcodes.append(-1)
        return codes, qcodes

    def _several_folders(self) -> bool:
        if self._folders is None:
            self._folders = len({folder_of(i) for i in self.ids}) > 1
        return self._folders

    def explain(self, query: _Query, j: int) -> dict[str, Any]:
        """What library row ``j`` shares with ``query`` (see :mod:`specmusic.embeddings.explain`)."""
        if self.columns is not None:
            assert self.raw is not None and query.row is not None
            info: dict[str, Any] = {"shared": []}
            info.update(
                explain_columns(query.vector, self.z[j], columns=self.columns, raw_query=self.raw[query.row], raw_match=self.raw[j])
            )
            return info
        q_label = self.labels[query.row] if query.row is not None else None
        q_group = self.groups[query.row] if query.row is not None else None
        return explain_match(
            query.text if query.row is None else self.ids[query.row], q_label, q_group, query.tags,
            self.ids[j], self.labels[j], self.groups[j], self.tags[j], in_library=query.row is not None,
            several_folders=self._several_folders,
        )  # fmt: skip

    # -- search -----------------------------------------------------------------------------
    def recommend(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        group_key: str | None = None,
        explain: bool = False,
        embedder: Embedder | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``k`` nearest tracks to each query, excluding the query and (``group_key``) its group.

        Parameters
        ----------
        queries : ids in the library, or audio files (embedded with ``embedder`` or the library's model)
        k : neighbours per query
        group_key : ``group`` | ``label`` | ``dir`` | a CSV column; neighbours sharing the query's value
            are left out (see the module docstring)
        explain : add what each match shares with its query (:meth:`explain`)
        on_error : report a query that cannot be answered (unknown, unreadable, silent, …) here and
            answer the others; without it, the first such query raises

        Returns
        -------
        list of ``{"query": str, "warnings": [...], "neighbors": [{"rank", "id", "score", "label", "group"
        [, "warnings"][, "explain"]}]}``, one per answered query; ``id`` and ``query`` as the OS decodes
        paths; a neighbour's ``warnings`` only when its library entry was flagged

        Raises
        ------
        InputError
            Unknown or silent query (without ``on_error``), mismatched dimensions, NaN vectors.
        """
        resolved = self._resolve_all(queries, embedder, on_error)
        qz = np.stack([q.vector for q in resolved]) if resolved else np.zeros((0, self.index.dim), np.float32)
        codes, qcodes = self._group_codes(group_key, resolved) if group_key else (None, None)
        exclude = [[q.row] if q.row is not None else [] for q in resolved]
        idx, scores = self.index.search(l2_normalize(qz), k, exclude=exclude, groups=codes, query_groups=qcodes)
        out = []
        for qi, query in enumerate(resolved):
            neighbours = []
            for rank, (j, s) in enumerate(zip(idx[qi], scores[qi]), 1):
                if j < 0:
                    break
                rec: dict[str, Any] = {
                    "rank": rank,
                    "id": self.ids[j],
                    "score": round(float(s), 6),
                    "label": self.labels[j],
                    "group": self.groups[j],
                }
                if self.warnings[j]:
                    rec["warnings"] = list(self.warnings[j])
                if explain:
                    rec["explain"] = self.explain(query, int(j))
                neighbours.append(rec)
            out.append({"query": query.text, "warnings": query.warnings or [], "neighbors": neighbours})
        return out


class IdLookup:
    """Find a query among ids: exact id, same absolute path, or a unique path suffix (``paths``)."""

    def __init__(self, ids: Sequence[str], *, paths: bool = True) -> None:
        self.ids, self.paths = ids, paths
        self._by_id = {id_: i for i, id_ in enumerate(ids)}
        self._abs: dict[str, int] | None = None

    def find(self, query: str) -> int | None:
        """Row of ``query``, else None (``\\xNN`` escapes of non-UTF-8 bytes accepted).

        Raises
        ------
        InputError
            The suffix matches several ids.
        """
        for form in dict.fromkeys((query, _as_os_text(query))):
            hit = self._find(form)
            if hit is not None:
                return hit
        return None

    def _find(self, query: str) -> int | None:
        if query in self._by_id:
            return self._by_id[query]
        if not self.paths:
            return None
        if self._abs is None:
            self._abs = {os.path.abspath(os.path.expanduser(i)): n for n, i in enumerate(self.ids)}
        hit = self._abs.get(os.path.abspath(os.path.expanduser(query)))
        if hit is not None:
            return hit
        tail = "/" + query.lstrip("./")
        matches = [n for n, i in enumerate(self.ids) if i.endswith(tail)]
        if len(matches) > 1:
            raise InputError(
                f"query {display_path(query)!r} matches {len(matches)} library ids ({display_path(self.ids[matches[0]])}, "
                "…) — give more of the path"
            )
        return matches[0] if matches else None


def audio_query(owner: Any, query: str, embedder: Embedder | None, to_space: Callable[[np.ndarray], np.ndarray]) -> _Query | None:
    """``query`` as an audio file that is not in the library, or None when it names none: embedded with
    ``embedder`` or else the library's own recipe (built once and kept on ``owner._embedder``, from
    ``owner.model``), its vector mapped into the search space by ``to_space``.

    Raises
    ------
    InputError
        The audio is silent (:func:`_checked`), or the embedding fails.
    """
    from specmusic.audio import AUDIO_EXTENSIONS

    path = next((p for p in dict.fromkeys((query, _as_os_text(query))) if os.path.isfile(p)), None)
    if path is None or Path(path).suffix.lower() not in AUDIO_EXTENSIONS:
        return None
    if embedder is None:
        if owner._embedder is None:
            owner._embedder = embedder_from_description(owner.model)
        embedder = owner._embedder
    warnings: list[str] = []
    vec, tags = embedder.embed_file_tagged(path, warnings=warnings)
    return _checked(_Query(query, to_space(vec), None, tags, warnings))


def query_space(
    vec: np.ndarray, dim: int, mean: np.ndarray | None, scale: np.ndarray | None, space: Space | None = None
) -> np.ndarray:
    """A new (audio) query's vector in the library's search space: L2-normalised, then z-scored
    with the library's column ``mean``/``scale`` when it is standardised, or mapped by the library's
    learnt ``space`` (``dim``: the stored rows' size).

    Raises
    ------
    InputError
        Another dimension than the library's, or NaN.
    """
    v = np.asarray(vec, dtype=np.float64).reshape(-1)
    if v.shape[0] != dim:
        raise InputError(
            f"the query's model gives {v.shape[0]}-d vectors but the library holds {dim}-d ones — "
            "embed the query with the library's model"
        )
    if not np.isfinite(v).all():
        raise InputError("the query vector holds NaN — the query audio may be silent or corrupt")
    if space is not None:
        return space.apply(v)[0]
    v = l2_normalize(v.astype(np.float32)).astype(np.float64)
    if mean is not None and scale is not None:
        v = (v - mean) / scale
    return v.astype(np.float32)


def explain_match(
    query_id: str, query_label: str | None, query_group: str | None, query_tags: Tags | None,
    match_id: str, match_label: str | None, match_group: str | None, match_tags: Tags | None,
    *, in_library: bool, several_folders: Callable[[], bool],
) -> dict[str, Any]:  # fmt: skip
    """What a match shares with its query: label, group (library queries), folder, tags."""
    shared = []
    if in_library:
        for name, q, m in (("label", query_label, match_label), ("group", query_group, match_group)):
            if q is not None and q == m:
                shared.append(f"{name}={q}")
    folder = folder_of(query_id)
    if folder is not None and folder == folder_of(match_id) and f"label={folder}" not in shared:
        if several_folders():  # a folder every track shares says nothing
            shared.append(f"folder={folder}")
    return {"shared": shared, **explain_tags(query_tags, match_tags)}


def _checked(query: _Query) -> _Query:
    """``query``, unless its audio is digital silence (then no neighbour would mean anything).

    Raises
    ------
    InputError
        The query's audio (or the library entry it names) is silent.
    """
    silent = next((w for w in query.warnings or [] if _SILENCE in w), None)
    if silent is not None:
        what = silent.split(" — ")[0]
        raise InputError(f"{what} — no neighbours of silence would mean anything; query with audio that is not silent")
    return query

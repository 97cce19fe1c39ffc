"""The explanations and tabular scaling behind ``recommend`` (specmusic.embeddings.search: explain, tabular).

The index they search with is tested in ``tests/core/test_index.py``; the command in ``test_recommend_cli.py``.
"""

from __future__ import annotations

import numpy as np

from specmusic.embeddings import InMemoryRecommender, TabularSource
from specmusic.embeddings.search.explain import CLOSE_SD, explain_columns, explain_tags, explain_text
from specmusic.index import l2_normalize, standardize_columns


def test_standardize_and_explain():
    raw = np.array([[0.5, 120.0], [0.6, 80.0], [0.4, 100.0]])
    z, mean, scale = standardize_columns(raw)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
    # rows 0 and 2 are 1.2 standard deviations apart on both columns: neither is "close"
    info = explain_columns(z[0], z[2], columns=["energy", "tempo"], raw_query=raw[0], raw_match=raw[2], top=1)
    assert info["closest_columns"] == [] and info["farthest_column"]["z_diff"] > 1


def test_explain_columns_never_calls_far_values_close():
    """The papercut: `tempo (122≈180)` listed as closest. Only columns within CLOSE_SD are close."""
    rng = np.random.default_rng(0)
    raw = np.column_stack([rng.uniform(0, 1, 50), rng.uniform(60, 200, 50)])
    raw[0], raw[1] = [0.50, 122.0], [0.51, 180.0]
    z = standardize_columns(raw)[0]
    info = explain_columns(z[0], z[1], columns=["energy", "tempo"], raw_query=raw[0], raw_match=raw[1])
    assert [c["column"] for c in info["closest_columns"]] == ["energy"]
    assert all(c["z_diff"] <= CLOSE_SD for c in info["closest_columns"])
    far = info["farthest_column"]
    assert far["column"] == "tempo" and far["diff"] == 58 and far["z_diff"] > 1  # in BPM and in SDs
    text = explain_text(info)
    assert "close: energy 0.5 vs 0.51" in text and "apart: tempo 122 vs 180 (differ by 58" in text
    assert "≈" not in text
    nothing = explain_columns(z[0], z[0] + 2, columns=["energy", "tempo"], raw_query=raw[0], raw_match=raw[1])
    assert nothing["closest_columns"] == [] and explain_text(nothing).startswith("no column within")


def test_explain_tags_names_what_both_tracks_have():
    query = {"rock": 0.8, "guitar": 0.6, "male vocal": 0.4, "pop": 0.1}
    match = {"guitar": 0.7, "rock": 0.3, "indie": 0.5}
    info = explain_tags(query, match)
    assert [t["tag"] for t in info["shared_tags"]] == ["guitar", "rock"]  # by the lower of the two probabilities
    assert info["query_tags"] == ["rock", "guitar", "male vocal"]
    assert explain_text({"shared": ["label=rock"], **info}) == "same label: rock; shared tags: guitar, rock"
    none = explain_tags(query, {"jazz": 0.9})
    assert none["shared_tags"] == [] and "no top tag in common" in explain_text({"shared": [], **none})
    assert explain_tags(None, match) == {}
    assert "dim" not in explain_text({"shared": []}) and "close in sound" in explain_text({"shared": []})


def _spotify_like(n: int = 60, seed: int = 0) -> TabularSource:
    rng = np.random.default_rng(seed)
    cols = ["danceability", "energy", "acousticness", "valence", "tempo"]
    values = np.column_stack([rng.uniform(0, 1, (n, 4)), rng.uniform(70, 180, n)])
    ids = [str(i) for i in range(n)]
    rows = [dict(zip(["id", *cols], [i, *map(str, v)])) for i, v in zip(ids, values)]
    return TabularSource(ids, cols, values, rows)


def test_tabular_is_standardised_so_tempo_cannot_swamp_the_other_columns():
    table = _spotify_like()
    # the original notebook's pathology: cosine of unscaled columns, tempo dominates
    unscaled = l2_normalize(table.values)
    naive = unscaled @ unscaled.T
    assert naive[~np.eye(len(naive), dtype=bool)].min() > 0.99  # "every similarity reads 0.99999"
    rec = InMemoryRecommender.from_tabular(table)
    result = rec.recommend(["0"], k=len(table.ids) - 1)[0]["neighbors"]
    scores = np.array([n["score"] for n in result])
    assert scores.max() - scores.min() > 1.0  # a real spread, from similar to opposite
    assert scores.min() < 0
    # the nearest neighbour is nearest on the 0-1 columns too, not just on tempo
    z = standardize_columns(table.values)[0]
    best = int(result[0]["id"])
    cos = l2_normalize(z) @ l2_normalize(z)[0]
    cos[0] = -np.inf
    assert best == int(np.argmax(cos))

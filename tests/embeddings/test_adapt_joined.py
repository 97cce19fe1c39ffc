"""`-m a+b --adapt`: joined models packed for one learnt space — the row, the recipe, and search on every library kind."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from specmusic.cli.app import app
from specmusic.data import Track
from specmusic.embeddings import ConcatEmbedder, ModelDescription, embed_tracks, embedder_from_description, make_embedder
from specmusic.embeddings import embedders, read_library, search_vectors
from specmusic.embeddings.search.adapt import SpaceStats, fit_space, join_packed, library_space, pack_windows, unpack
from specmusic.index import l2_normalize
from tests.conftest import tone, write
from tests.embeddings.test_embeddings import make_tiny_onnx

GROUPS = 3


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    """Two tiny networks: 16-d and 8-d embeddings."""
    return make_tiny_onnx(tmp_path / "m1" / "model.onnx", seed=1), make_tiny_onnx(tmp_path / "m2" / "model.onnx", seed=2, dim=8)


@pytest.fixture
def default_networks(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """``embed``'s default networks by name: as the zoo has them, and a tiny stand-in ONNX for any it does not
    name yet (audioset-mn04 before the zoo bundles it; the recipe, packing and search are what is tested)."""
    from specmusic.models import resolve
    from specmusic.models.zoo import ensure

    names = resolve.known_names()
    missing = [n for n in embedders.DEFAULT_EMBEDDING if n not in names]
    if not missing:
        return
    folder = tmp_path_factory.mktemp("stand-in")
    stand_in = {n: make_tiny_onnx(folder / f"{n}.onnx", seed=7 + i) for i, n in enumerate(missing)}
    real = ensure.ensure_model
    monkeypatch.setattr(resolve, "known_names", lambda: (*names, *missing))
    monkeypatch.setattr(ensure, "ensure_model", lambda name, **kw: stand_in[name] if name in stand_in else real(name, **kw))


@pytest.fixture
def forty_tracks(tmp_path: Path) -> Path:
    """4 labels x 10 tracks of 0.8 s, two tones each (the windows differ within a track): enough to learn a space."""
    root = tmp_path / "forty"
    for li, f in enumerate((110.0, 330.0, 990.0, 2970.0)):
        for i in range(10):
            a = tone(f * (1 + 0.02 * i), 0.4, seed=100 * li + i)
            b = tone(f * (1.5 + 0.02 * i), 0.4, seed=100 * li + i + 50)
            write(root / f"l{li}" / f"l{li}.{i:02d}.wav", np.concatenate([a, b]))
    return root


def test_join_packed_lays_every_model_out_as_one_packed_row() -> None:
    rng = np.random.default_rng(0)
    wa, wb = rng.normal(size=(6, 5)) + 3.0, 10.0 * rng.normal(size=(6, 3)) + 20.0  # another scale: weighs the same
    a, b = pack_windows(wa, GROUPS), pack_windows(wb, GROUPS)
    row = join_packed([a, b], GROUPS)
    assert row.shape == (GROUPS * 8,) and row.dtype == np.float32
    means, contrasts = unpack(row, GROUPS)
    (ma, ca), (mb, cb) = unpack(a, GROUPS), unpack(b, GROUPS)
    np.testing.assert_allclose(means[0], np.r_[ma[0], mb[0]] / np.sqrt(2), rtol=1e-5)  # each model's mean a unit block
    np.testing.assert_allclose(contrasts[0], np.c_[ca[0], cb[0]] / np.sqrt(2), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(unpack(l2_normalize(row[None]), GROUPS)[0], means, rtol=1e-5)  # stored normalised: same


def test_one_space_learnt_from_the_joined_rows_finds_what_one_model_holds() -> None:
    """Model A holds the class in two quiet directions, and swings within each track along loud ones that
    say nothing of it; model B is loud within each track and says nothing of the class either: the
    space learnt from the joined rows still finds the class, the plain means do not."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, 300)
    centres = np.c_[np.cos(np.arange(4) * np.pi / 2), np.sin(np.arange(4) * np.pi / 2)] * 0.6
    rows = []
    for c in labels:
        track = np.r_[centres[c], 2.0 * rng.normal(size=4), 20.0] + 0.15 * rng.normal(size=7)
        a = track + rng.normal(size=(6, 7)) * np.r_[0.1, 0.1, 3.0, 3.0, 3.0, 3.0, 0.3]
        b = 5.0 + 0.5 * rng.normal(size=5) + 3.0 * rng.normal(size=(6, 5))
        rows.append(join_packed([pack_windows(a, GROUPS), pack_windows(b, GROUPS)], GROUPS))
    x = np.stack(rows)
    space = fit_space(SpaceStats(GROUPS).add(x))
    assert space.adapted and space.dim == 12
    learnt, plain = l2_normalize(space.apply(x)), l2_normalize(unpack(x, GROUPS)[0])

    def p_at_1(v: np.ndarray) -> float:
        s = v @ v.T
        np.fill_diagonal(s, -np.inf)
        return float((labels[s.argmax(1)] == labels).mean())

    assert p_at_1(learnt) > 0.65 and p_at_1(learnt) > p_at_1(plain) + 0.3, (p_at_1(learnt), p_at_1(plain))


def test_each_network_learns_its_own_space_from_its_block() -> None:
    """Joined rows with their blocks: each block's own space, scaled to unit total variance, side by side."""
    rng = np.random.default_rng(5)
    wins_a = [rng.normal(size=5) * 2 + 4 + rng.normal(size=(6, 5)) for _ in range(80)]
    wins_b = [rng.normal(size=3) * 0.1 + 9 + 0.01 * rng.normal(size=(6, 3)) for _ in range(80)]  # other scales
    rows = np.stack([join_packed([pack_windows(a, GROUPS), pack_windows(b, GROUPS)], GROUPS) for a, b in zip(wins_a, wins_b)])
    space = library_space(rows, GROUPS, blocks=(5, 3))
    assert space.adapted and space.dim == 5 + 3 and space.groups == GROUPS
    assert not np.any(space.matrix[:5, 5:]) and not np.any(space.matrix[5:, :5])  # block-diagonal
    y = space.apply(rows)
    for cols in (slice(0, 5), slice(5, 8)):  # every network weighs the same: unit total variance
        assert abs(float(np.var(y[:, cols], axis=0).sum()) - 1.0) < 1e-6
    for rows_b, cols in (([pack_windows(a, GROUPS) for a in wins_a], slice(0, 5)), ([pack_windows(b, GROUPS) for b in wins_b], slice(5, 8))):
        own = library_space(np.stack(rows_b), GROUPS).apply(np.stack(rows_b))  # the network alone: the same directions
        ca, cb = l2_normalize(own), l2_normalize(y[:, cols])
        np.testing.assert_allclose(ca @ ca.T, cb @ cb.T, atol=1e-4)
    joint = library_space(rows, GROUPS)  # no blocks: one space for the joined rows
    assert joint.dim == 8 and np.any(joint.matrix[:5, 5:]) and np.any(joint.matrix[5:, :5])  # the blocks mixed


def test_the_description_names_each_networks_block() -> None:
    member = {"kind": "pretrained", "sha256": "ab" * 32, "layer": "embedding", "pooling": "mean", "adapt": {"groups": 3}}
    record = {"kind": "concat", "adapt": {"groups": 3, "blocks": [200, 384]}, "standardize": True, "members": [member, member]}
    d = ModelDescription.from_dict(record)
    assert d.adapt_groups == 3 and d.adapt_blocks == (200, 384)
    assert d.to_dict() == record  # written back as read
    one = ModelDescription.from_dict({**member, "dim": 600})
    assert one.adapt_groups == 3 and one.adapt_blocks == () and one.to_dict()["adapt"] == {"groups": 3}
    assert ModelDescription.from_dict({"kind": "concat", "members": [member, member]}).adapt_groups == 0


def test_joined_adapt_packs_each_model_and_records_it(tmp_path: Path, models) -> None:
    m1, m2 = models
    a = write(tmp_path / "a.wav", np.concatenate([tone(220.0, 0.6), tone(880.0, 0.6, seed=1)]))
    emb = make_embedder(f"{m1}+{m2}", adapt=True)
    assert isinstance(emb, ConcatEmbedder)
    vec, tags = emb.embed_file_tagged(str(a))
    one, two = make_embedder(str(m1), adapt=True).embed_file(str(a)), make_embedder(str(m2), adapt=True).embed_file(str(a))
    np.testing.assert_allclose(vec, join_packed([one, two], GROUPS), rtol=1e-5, atol=1e-7)
    assert vec.shape == (GROUPS * 24,) and set(tags) == {"a", "b"}
    d = emb.description.to_dict()
    assert d["adapt"] == {"groups": GROUPS, "blocks": [16, 8]} and d["standardize"] is True and d["dim"] == GROUPS * 24
    assert [m["adapt"] for m in d["members"]] == [{"groups": GROUPS}] * 2 and [m["dim"] for m in d["members"]] == [48, 24]
    lib, _ = embed_tracks([Track(str(a), "a.wav")], emb)
    stored = ModelDescription.from_dict(json.loads(json.dumps(lib.model.to_dict())))
    again = embedder_from_description(stored)  # a query embedded with the library's recipe
    assert isinstance(again, ConcatEmbedder) and again.description.same_as(stored)
    np.testing.assert_allclose(again.embed_file(str(a)), vec, rtol=1e-5, atol=1e-7)
    plain = make_embedder(f"{m1}+{m2}")  # no --adapt: the plain join, another recipe
    assert "adapt" not in plain.description.to_dict() and not plain.description.same_as(stored)
    with pytest.raises(Exception, match="--no-adapt"):
        make_embedder(f"{m1}+{m2}", adapt=True, layer="probabilities")


def test_a_joined_default_is_packed_unless_told_otherwise(tmp_path: Path, models, monkeypatch) -> None:
    from specmusic.models.zoo import ensure

    m1, m2 = models
    by_name = {"mtat-musicnn": m1, "jamendo-fcn": m2}
    monkeypatch.setattr(ensure, "ensure_model", lambda name, **kw: by_name[name])
    monkeypatch.setattr(embedders, "DEFAULT_EMBEDDING", ("mtat-musicnn", "jamendo-fcn"))
    emb = make_embedder(None)
    assert isinstance(emb, ConcatEmbedder) and emb.description.name == "mtat-musicnn+jamendo-fcn"
    assert emb.description.adapt_groups == GROUPS
    assert make_embedder("mtat-musicnn+jamendo-fcn").description.adapt_groups == GROUPS  # the default named
    assert not make_embedder("jamendo-fcn+mtat-musicnn").description.adapt_groups  # another order: another recipe
    assert not make_embedder(None, adapt=False).description.adapt_groups
    assert not make_embedder(None, pooling="max").description.adapt_groups
    monkeypatch.setattr(embedders, "DEFAULT_ADAPT", False)
    assert not make_embedder(None).description.adapt_groups


def _run(*args: str, input: str | None = None):
    return CliRunner().invoke(app, list(args), input=input)


def test_embed_joined_adapt_then_recommend_from_a_file_a_folder_and_a_pipe(tmp_path: Path, models, forty_tracks) -> None:
    m1, m2 = models
    joined = f"{m1}+{m2}"
    lib, folder = tmp_path / "lib.npz", f"{tmp_path / 'shards'}/"
    for out in (str(lib), folder):
        r = _run("embed", str(forty_tracks), "-m", joined, "--adapt", "-o", out, "--no-progress")
        assert r.exit_code == 0, r.stderr
    library = read_library(lib)
    assert library.model.adapt_groups == GROUPS and library.vectors.shape == (40, GROUPS * 24)
    shards = read_library(folder)
    order = [shards.ids.index(i) for i in library.ids]
    np.testing.assert_allclose(shards.vectors[order], library.vectors, rtol=1e-5, atol=1e-6)
    x = search_vectors(library)
    assert x.shape == (40, 16 + 8)  # each network's learnt space (40 tracks: enough to learn them), side by side
    source = sorted(forty_tracks.rglob("*.wav"))[5]
    query = tmp_path / "elsewhere" / source.name  # not in the library: embedded with the library's recipe
    query.parent.mkdir()
    shutil.copy(source, query)
    piped = _run("embed", str(forty_tracks), "-m", joined, "--adapt", "--no-progress")
    assert piped.exit_code == 0 and piped.stdout.startswith("{"), piped.stderr
    results = []
    for source_arg, extra in ((str(lib), ()), (folder, ()), ("-", ()), (str(lib), ("-m", joined))):
        r = _run("recommend", source_arg, "-q", str(query), "-k", "5", "--json", *extra,
                 input=piped.stdout if source_arg == "-" else None)  # fmt: skip
        assert r.exit_code == 0, r.stderr
        assert "too few to learn" not in r.stderr
        found = json.loads(r.stdout.splitlines()[0])["neighbors"]
        assert found[0]["id"] == str(source) and found[0]["score"] > 0.999
        results.append(found)
    for k, other in enumerate(results[1:]):  # a file, a folder, a pipe, and -m with the same models: the same neighbours
        assert [n["id"] for n in other] == [n["id"] for n in results[0]], (k, other, results[0])
        np.testing.assert_allclose([n["score"] for n in other], [n["score"] for n in results[0]], atol=2e-5)


def test_another_recipe_on_a_joined_adapt_library_is_one_line(tmp_path: Path, models, genre_tree: Path) -> None:
    m1, m2 = models
    joined = f"{m1}+{m2}"
    lib = tmp_path / "lib.npz"
    assert _run("embed", str(genre_tree), "-m", joined, "--adapt", "-o", str(lib), "--no-progress").exit_code == 0
    again = _run("embed", str(genre_tree), "-m", joined, "--adapt", "-o", str(lib), "--no-progress")
    assert again.exit_code == 0 and "0 embedded" in again.stderr, again.stderr  # incremental: same recipe
    query = tmp_path / "q.wav"
    shutil.copy(sorted(genre_tree.rglob("*.wav"))[0], query)
    for other in (str(m1), f"{m2}+{m1}", "mfcc"):  # one member, another order, no network: refused
        bad = _run("recommend", str(lib), "-q", str(query), "-m", other)
        assert bad.exit_code == 1 and "is not the model that made the library (model.onnx+model.onnx" in bad.stderr, bad.stderr
        assert len([line for line in bad.stderr.splitlines() if line.startswith("Error:")]) == 1
    refused = _run("embed", str(genre_tree / "low"), "-m", joined, "--no-adapt", "-o", str(lib), "--no-progress")
    assert refused.exit_code == 1 and "was made by another model (model.onnx+model.onnx --adapt)" in refused.stderr, refused.stderr
    assert len(read_library(lib)) == 12  # untouched


def test_the_default_is_every_default_network_packed_then_searched(tmp_path: Path, genre_tree: Path, default_networks) -> None:
    """``embed`` without -m: DEFAULT_EMBEDDING joined and packed (DEFAULT_ADAPT), an audio query embedded the same way."""
    lib = tmp_path / "lib.npz"
    r = _run("embed", str(genre_tree), "-o", str(lib), "--no-progress")
    assert r.exit_code == 0, r.stderr
    model = read_library(lib).model
    assert model.kind == "concat" and model.name == "+".join(embedders.DEFAULT_EMBEDDING) and embedders.DEFAULT_ADAPT
    assert model.adapt_groups == GROUPS and len(model.adapt_blocks) == len(embedders.DEFAULT_EMBEDDING)
    assert _run("embed", str(genre_tree), "-m", model.name, "-o", str(lib), "--no-progress").stderr.count("0 embedded") == 1
    source = sorted(genre_tree.rglob("*.wav"))[3]
    query = tmp_path / "elsewhere" / source.name
    query.parent.mkdir()
    shutil.copy(source, query)
    out = _run("recommend", str(lib), "-q", str(query), "-k", "3", "--json")
    assert out.exit_code == 0 and "12 tracks are too few to learn" in out.stderr, out.stderr
    found = json.loads(out.stdout.splitlines()[0])["neighbors"]
    assert found[0]["id"] == str(source) and found[0]["score"] > 0.999


def test_a_library_of_the_previous_default_keeps_working(tmp_path: Path, genre_tree: Path, default_networks) -> None:
    """pons-msd-musicnn packed (``embed``'s default until benchmarks/similarity_generalise.py): searched as before;
    adding tracks with today's default is refused in one line that names the recipe to type."""
    lib = tmp_path / "old.npz"
    old = ["-m", "pons-msd-musicnn", "--adapt"]
    assert _run("embed", str(genre_tree / "low"), str(genre_tree / "mid"), *old, "-o", str(lib), "--no-progress").exit_code == 0
    source = sorted((genre_tree / "low").glob("*.wav"))[1]
    query = tmp_path / "q" / source.name
    query.parent.mkdir()
    shutil.copy(source, query)
    out = _run("recommend", str(lib), "-q", str(query), "-k", "2", "--json")
    assert out.exit_code == 0 and json.loads(out.stdout.splitlines()[0])["neighbors"][0]["id"] == str(source), out.stderr
    refused = _run("embed", str(genre_tree / "high"), "-o", str(lib), "--no-progress")
    assert refused.exit_code == 1 and len(read_library(lib)) == 8, refused.stderr
    errors = [line for line in refused.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "was made by another model (pons-msd-musicnn --adapt) — pass -m pons-msd-musicnn --adapt" in errors[0]
    added = _run("embed", str(genre_tree / "high"), *old, "-o", str(lib), "--no-progress")
    assert added.exit_code == 0 and len(read_library(lib)) == 12, added.stderr

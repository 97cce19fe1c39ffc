"""``--cluster`` on a Dask LocalCluster bound to loopback (2 worker processes), shared by the module.

The CLI reaches it as ``--cluster tcp://127.0.0.1:PORT``, like a user's scheduler. Tasks are slowed
down on the workers (``_slow_down``) where a test must act mid-run: kill a worker, interrupt the client.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

distributed = pytest.importorskip("distributed", reason="the [cluster] extra (Dask distributed) is not installed")

from specmusic.cli.app import app  # noqa: E402
from specmusic.data import Track, discover_tracks  # noqa: E402
from specmusic.embeddings import make_embedder, read_library  # noqa: E402
from specmusic.embeddings.store.incremental import embed_tracks  # noqa: E402
from specmusic.embeddings.store.shard_catalog import read_sharded  # noqa: E402
from specmusic.inference import load_model, predict_files  # noqa: E402
from tests.conftest import tone, write  # noqa: E402
from tests.failures.procs import DEADLINE, frozen  # noqa: E402
from tests.embeddings.test_embeddings import make_tiny_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _local_cluster():
    """A LocalCluster of 2 one-thread worker processes on loopback: (address, client)."""
    import logging

    import cloudpickle

    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers run _slow_down without importing tests
    with dask.config.set({"distributed.comm.timeouts.connect": f"{DEADLINE:g}s"}):  # a loaded machine starts slowly
        lc = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            silence_logs=logging.ERROR, scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
        )  # fmt: skip
    client = distributed.Client(lc, set_as_default=False, timeout=DEADLINE)
    client.wait_for_workers(2, timeout=DEADLINE)
    try:
        yield lc.scheduler_address, client
    finally:
        client.close()
        lc.close()


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster for the module: (address, client)."""
    with _local_cluster() as both:
        yield both


def _slow_down(seconds: float) -> None:
    """On a worker: each embedding takes ``seconds`` longer (0: as it was)."""
    import time as _time

    from specmusic.embeddings.store import incremental

    original = incremental.__dict__.setdefault("_original_embed_one", incremental._embed_one)

    def slow(*args, **kwargs):
        _time.sleep(seconds)
        return original(*args, **kwargs)

    incremental._embed_one = slow if seconds else original


@pytest.fixture
def slow(cluster):
    _, client = cluster
    client.run(_slow_down, 0.25)
    yield
    client.run(_slow_down, 0)


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> Path:
    """20 tones of 2 s in two labelled folders."""
    root = tmp_path_factory.mktemp("songs")
    for i in range(20):
        label = "low" if i < 10 else "high"
        write(root / label / f"{label}.{i:02d}.wav", tone((110.0 if i < 10 else 880.0) * (1 + 0.02 * i), 2.0, seed=i))
    return root


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _by_id(lib) -> dict[str, np.ndarray]:
    return {id_: np.asarray(v) for id_, v in zip(lib.ids, lib.vectors)}


def _same_library(a, b) -> None:
    va, vb = _by_id(a), _by_id(b)
    assert sorted(va) == sorted(vb)
    for id_ in va:
        np.testing.assert_allclose(va[id_], vb[id_], rtol=0, atol=1e-6)


# -- the same results as a local run -----------------------------------------------------------
def test_embed_on_the_cluster_equals_the_local_run(tmp_path, cluster, songs):
    address, _ = cluster
    model = make_tiny_onnx(tmp_path / "model.onnx")
    r = _run("embed", str(songs), "-m", str(model), "-o", str(tmp_path / "local.npz"))
    assert r.exit_code == 0, r.stderr
    r = _run("embed", str(songs), "-m", str(model), "-o", str(tmp_path / "dask.npz"), "--cluster", address)
    assert r.exit_code == 0, r.stderr
    assert "20 embedded, 0 unchanged, 0 failed" in r.stderr
    r = _run("embed", str(songs), "-m", str(model), "-o", str(tmp_path / "jobs.npz"), "--jobs", "2")
    assert r.exit_code == 0, r.stderr
    r = _run("embed", str(songs), "-m", str(model), "-o", str(tmp_path / "shards") + "/", "--cluster", address)
    assert r.exit_code == 0, r.stderr
    local, dask = read_library(tmp_path / "local.npz"), read_library(tmp_path / "dask.npz")
    assert dask.ids == local.ids  # rows back in input order, whatever order the workers finished in
    _same_library(local, dask)
    _same_library(local, read_library(tmp_path / "jobs.npz"))
    _same_library(local, read_sharded(tmp_path / "shards"))
    assert dask.model.dim == local.model.dim == 16
    # incremental on the cluster too: nothing changed, nothing is sent to the workers
    r = _run("embed", str(songs), "-m", str(model), "-o", str(tmp_path / "shards") + "/", "--cluster", address)
    assert r.exit_code == 0 and "0 embedded, 20 unchanged" in r.stderr, r.stderr


def test_spectro_on_the_cluster_writes_what_a_local_run_writes(tmp_path, cluster, songs):
    address, _ = cluster
    assert _run("spectro", str(songs), "-o", str(tmp_path / "local")).exit_code == 0
    r = _run("spectro", str(songs), "-o", str(tmp_path / "dask"), "--cluster", address)
    assert r.exit_code == 0, r.stderr
    assert "20 written, 0 up to date, 0 failed" in r.stderr
    manifests = [
        [json.loads(line) for line in (tmp_path / d / "manifest.jsonl").read_text().splitlines()] for d in ("local", "dask")
    ]
    assert manifests[0] == manifests[1]
    for rec in manifests[0]:
        a, b = (np.load(tmp_path / d / rec["path"])["spec"] for d in ("local", "dask"))
        np.testing.assert_array_equal(a, b)


def test_classify_on_the_cluster_prints_what_a_local_run_prints(tmp_path, cluster, songs):
    address, _ = cluster
    model = make_tiny_onnx(tmp_path / "model.onnx")
    local = _run("classify", str(songs), "-m", str(model), "--json")
    dask = _run("classify", str(songs), "-m", str(model), "--json", "--cluster", address)
    assert local.exit_code == 0 and dask.exit_code == 0, dask.stderr
    assert len(local.stdout.splitlines()) == 20
    assert dask.stdout == local.stdout  # same records, same (input) order


# -- faults ------------------------------------------------------------------------------------
def _interrupt_when(proc: subprocess.Popen, done: int, workers: list[int]) -> str:
    """SIGINT ``proc`` once its progress bar shows ``done`` finished tracks (of 20) and no more than 12: each look
    is taken with the client and the Dask ``workers`` frozen, so the run cannot end in between. Its whole stderr."""
    chunks: list[str] = []
    reader = threading.Thread(target=lambda: chunks.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + DEADLINE
    while True:
        assert time.monotonic() < deadline and proc.poll() is None, "the run never got going:\n" + "".join(chunks)
        with frozen([proc.pid, *workers]):
            counts = [int(n) for n in re.findall(r"(\d+)/20 ", "".join(chunks))]
            if counts and max(counts) >= done:
                assert max(counts) <= 12, "too little work was left to interrupt"
                proc.send_signal(signal.SIGINT)
                break
        time.sleep(0.01)  # a poll interval; the reader thread gathers the bar meanwhile
    proc.wait(timeout=DEADLINE)
    reader.join(timeout=DEADLINE)
    return "".join(chunks)


@pytest.mark.parametrize("output", ["lib.npz", "lib/"])
def test_client_interrupted_then_rerun_embeds_only_what_is_missing(tmp_path, cluster, songs, slow, output):
    address, client = cluster
    out = os.path.join(tmp_path, output)  # keeps the trailing "/" that asks for a folder
    cmd = [sys.executable, "-m", "specmusic", "embed", str(songs), "-m", "mfcc", "-o", out, "--cluster", address]
    proc = subprocess.Popen([*cmd, "--progress"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = _interrupt_when(proc, 5, list(client.run(os.getpid).values()))  # the bar runs a track ahead of the journal
    assert proc.returncode == 130, stderr
    m = re.search(r"interrupted — (\d+) (?:embedded )?track\(s\) (?:are )?kept", stderr)
    assert m, stderr
    kept = int(m.group(1))
    assert 3 <= kept < 20
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=DEADLINE)
    assert r.returncode == 0, r.stderr
    if output.endswith("/"):  # the parts written before the interruption are the library's tracks
        m = re.search(r"embed: (\d+) embedded, (\d+) unchanged, 0 failed", r.stderr)
        lib = read_sharded(out)
    else:  # the journal's tracks are resumed
        m = re.search(r"embed: (\d+) embedded, 0 unchanged, (\d+) resumed", r.stderr)
        lib = read_library(out)
        assert not Path(out + ".partial.jsonl").exists()
    assert m and int(m.group(2)) == kept and int(m.group(1)) == 20 - kept, r.stderr
    assert len(lib) == 20


def test_local_jobs_interrupted_keep_what_finished(tmp_path, songs, monkeypatch):
    from specmusic.embeddings.store import incremental
    from specmusic.embeddings.store.incremental import embed_into_shards
    from specmusic.embeddings.store.shard_writer import ShardedLibraryWriter

    original = incremental._embed_one
    monkeypatch.setattr(incremental, "_embed_one", lambda *a: (time.sleep(0.1), original(*a))[1])  # forked workers too
    tracks, _ = discover_tracks([str(songs)])
    embedder = make_embedder("mfcc")

    class Interrupting:  # Ctrl-C arrives after the third finished track
        def __init__(self, writer):
            self.writer, self.catalog = writer, writer.catalog

        def add(self, record, vector):
            self.writer.add(record, vector)
            if self.writer.added == 3:
                raise KeyboardInterrupt

    writer = ShardedLibraryWriter.open(tmp_path / "lib", embedder.description)
    with pytest.raises(KeyboardInterrupt):
        embed_into_shards(tracks, embedder, Interrupting(writer), jobs=2)
    writer.close()  # what the CLI does on Ctrl-C: the buffered tracks become a part
    writer = ShardedLibraryWriter.open(tmp_path / "lib", embedder.description)
    report = embed_into_shards(tracks, embedder, writer, jobs=2)
    writer.finish()
    assert len(report.reused) == 3 and len(report.embedded) == 17
    assert sorted(read_sharded(tmp_path / "lib").ids) == sorted(t.path for t in tracks)


def test_a_worker_killed_mid_run_loses_no_track(tmp_path, cluster, songs, slow):
    address, client = cluster
    pids = client.run(os.getpid)
    victim = pids[sorted(pids)[0]]
    killed: list[int] = []

    def kill_once(record, vector) -> None:  # called in the client as each track arrives
        if not killed:
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    tracks, _ = discover_tracks([str(songs)])
    lib, report = embed_tracks(tracks, make_embedder("mfcc"), cluster=address, on_embedded=kill_once)
    assert killed and not report.failed
    assert sorted(lib.ids) == sorted(t.path for t in tracks) and len(report.embedded) == 20
    with pytest.raises(ProcessLookupError):
        os.kill(victim, 0)  # it really died (the nanny started a new worker in its place)
    client.wait_for_workers(2, timeout=DEADLINE)


# -- one-line errors ---------------------------------------------------------------------------
def test_relative_paths_mean_the_clients_folder_on_workers_started_elsewhere(tmp_path, cluster, songs, monkeypatch):
    address, client = cluster
    elsewhere = tmp_path / "worker-home"
    elsewhere.mkdir()
    before = client.run(os.getcwd)
    client.run(os.chdir, str(elsewhere))  # as `dask worker` started in another folder
    try:
        monkeypatch.chdir(songs.parent)
        r = _run("embed", songs.name, "-m", "mfcc", "--duration", "1", "-o", "lib/", "--cluster", address)
        assert r.exit_code == 0 and "20 embedded" in r.stderr, r.stderr
        assert sorted(read_sharded(songs.parent / "lib").ids)[0] == f"{songs.name}/high/high.10.wav"  # ids as given
        r = _run("spectro", f"{songs.name}/low", "-o", "specs", "--cluster", address)
        assert r.exit_code == 0, r.stderr
        assert len(list((songs.parent / "specs").rglob("*.npz"))) == 10 and not list(elsewhere.rglob("*.npz"))
    finally:
        for worker, cwd in before.items():
            client.run(os.chdir, cwd, workers=[worker])


def test_a_file_the_workers_cannot_see_is_a_per_file_failure(tmp_path, cluster, songs):
    address, _ = cluster
    model = load_model(make_tiny_onnx(tmp_path / "model.onnx"))
    good = str(next(songs.rglob("*.wav")))
    results = list(predict_files(model, [good, str(tmp_path / "elsewhere.wav")], cluster=address))
    assert results[0].ok and not results[1].ok
    assert "elsewhere.wav: not found on worker tcp://127.0.0.1:" in results[1].error
    assert "mount the same folder at the same path on every worker" in results[1].error
    from specmusic.spectro import run_spectro

    report = run_spectro([Track(str(tmp_path / "gone.wav"), "gone.wav")], tmp_path / "specs", cluster=address)
    assert len(report.failed) == 1 and "not found on worker" in report.failed[0]["error"]


@pytest.mark.parametrize("value", ["local:0", "local:two", "http://host:8786", "tcp://host", "cluster"])
def test_a_bad_cluster_value_is_one_line_with_the_grammar(value, chirp_mono):
    r = _run("embed", str(chirp_mono), "-m", "mfcc", "--cluster", value)
    assert r.exit_code == 1
    assert r.stderr.count("\n") == 1 and "local:N" in r.stderr and "tcp://HOST:PORT" in r.stderr


def test_cluster_and_jobs_together_is_refused(chirp_mono):
    r = _run("classify", str(chirp_mono), "--cluster", "local:2", "--jobs", "2")
    assert r.exit_code == 1 and "give one of them" in r.stderr


def test_an_unreachable_scheduler_fails_fast(chirp_mono, tmp_path):
    start = time.monotonic()
    r = _run("spectro", str(chirp_mono), "-o", str(tmp_path / "specs"), "--cluster", "tcp://127.0.0.1:9")
    assert r.exit_code == 1 and "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in r.stderr
    assert time.monotonic() - start < 15


def test_an_address_that_is_not_a_scheduler_fails_in_seconds(chirp_mono, tmp_path):
    import http.server

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # as the dashboard's port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        start = time.monotonic()
        r = _run("embed", str(chirp_mono), "-m", "mfcc", "-o", str(tmp_path / "lib") + "/",
                 "--cluster", f"tcp://127.0.0.1:{server.server_port}")
        assert r.exit_code == 1 and "answers but not as a Dask scheduler" in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and time.monotonic() - start < 10
    finally:
        server.shutdown()


def test_without_the_extra_one_line_says_how_to_install_it(monkeypatch, chirp_mono, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed → ImportError
    for cmd in (["embed", "-m", "mfcc"], ["classify"], ["spectro", "-o", str(tmp_path / "specs")]):
        r = _run(cmd[0], str(chirp_mono), *cmd[1:], "--cluster", "local")
        assert r.exit_code == 1
        assert r.stderr.count("\n") == 1 and "pip install 'specmusic[cluster]'" in r.stderr


def test_map_bounded_keeps_few_tasks_in_flight(cluster):
    from specmusic.distributed import map_bounded

    _, client = cluster
    seen: list[int] = []

    def items():
        for i in range(40):
            seen.append(i)
            yield i

    out = []
    for item, result in map_bounded(client, abs, items(), in_flight=3):
        out.append((item, result))
        assert len(seen) - len(out) <= 3  # never more than 3 submitted and not yet returned
    assert sorted(out) == [(i, i) for i in range(40)]
    ordered = [item for item, _ in map_bounded(client, abs, range(-10, 0), in_flight=3, ordered=True)]
    assert ordered == list(range(-10, 0))


def _crash(path: str) -> str:
    """On a worker: die the way a decoder crash would (no Python exception to report)."""
    os._exit(1)


def test_a_file_that_kills_every_worker_is_a_per_file_failure(cluster):
    from specmusic.batch import run_tasks

    _, client = cluster
    results = list(run_tasks(client, _crash, ["poison.wav"], on_failure=lambda item, error: error))
    assert results[0][0] == "poison.wav"
    assert results[0][1].startswith("poison.wav: its worker died each time it ran (KilledWorker)")
    client.wait_for_workers(2, timeout=DEADLINE)


# -- short files, several to a task ------------------------------------------------------------
@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """12 tones of 1 s: short enough to travel several to a Dask task."""
    root = tmp_path_factory.mktemp("clips")
    for i in range(12):
        write(root / f"clip{i:02d}.wav", tone(200.0 * (1 + 0.1 * i), 1.0, seed=100 + i))
    return root


def _tasks(stream) -> list[str]:
    """The function names of the tasks a task stream recorded."""
    return [str(t["key"]).split("-", 1)[0] for t in stream.data]


def test_short_files_on_a_local_cluster_give_what_one_process_gives(tmp_path, cluster, clips):
    address, client = cluster
    model = make_tiny_onnx(tmp_path / "model.onnx")
    one = _run("classify", str(clips), "-m", str(model), "--json", "--jobs", "1")
    with distributed.get_task_stream(client=client) as stream:
        grouped = _run("classify", str(clips), "-m", str(model), "--json", "--cluster", address)
    assert one.exit_code == 0 and grouped.exit_code == 0, grouped.stderr
    assert len(one.stdout.splitlines()) == 12 and grouped.stdout == one.stdout  # same records, same order
    names = _tasks(stream)
    assert 1 < len(names) < 12 and set(names) == {"_guarded_group"}, names  # several files a task
    r = _run("embed", str(clips), "-m", "mfcc", "-o", str(tmp_path / "one.npz"), "--jobs", "1")
    assert r.exit_code == 0, r.stderr
    r = _run("embed", str(clips), "-m", "mfcc", "-o", str(tmp_path / "dask.npz"), "--cluster", "local:2")
    assert r.exit_code == 0 and "12 embedded, 0 unchanged, 0 failed" in r.stderr, r.stderr
    one, dask = read_library(tmp_path / "one.npz"), read_library(tmp_path / "dask.npz")
    assert dask.ids == one.ids
    _same_library(one, dask)


def test_a_bad_file_among_short_ones_fails_alone(tmp_path, cluster, clips):
    address, client = cluster
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in sorted(clips.iterdir()):
        (folder / clip.name).symlink_to(clip)
    (folder / "clip05b.wav").write_bytes(b"RIFF not audio" * 3000)  # as small as the others: in a task with them
    with distributed.get_task_stream(client=client) as stream:
        r = _run("embed", str(folder), "-m", "mfcc", "-o", str(tmp_path / "lib") + "/", "--cluster", address)
    assert r.exit_code == 1
    errors = [line for line in r.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "clip05b.wav" in errors[0], r.stderr
    assert "12 embedded, 0 unchanged, 1 failed" in r.stderr
    assert sorted(Path(p).name for p in read_sharded(tmp_path / "lib").ids) == sorted(c.name for c in clips.iterdir())
    assert 1 < len(_tasks(stream)) < 13


def _crash_on_poison(path: str) -> str:
    """On a worker: die on ``poison`` files the way a decoder crash would; the others' name."""
    if "poison" in os.path.basename(path):
        os._exit(1)
    return os.path.basename(path)


def test_a_file_that_kills_its_workers_is_the_only_one_of_its_task_blamed(tmp_path, clips):
    """On a cluster of its own: the workers this kills need not come back for other tests (on a loaded machine
    the nannies took over 300 s to restart them)."""
    with _local_cluster() as (_, client):
        _blame_only_the_killer(tmp_path, client, clips)


def _blame_only_the_killer(tmp_path, client, clips):
    from specmusic.batch import expected_seconds, run_tasks
    from specmusic.distributed import task_groups

    paths = [str(p) for p in sorted(clips.iterdir())[:3]]
    poison = tmp_path / "poison.wav"
    poison.write_bytes(Path(paths[0]).read_bytes())
    paths.insert(1, str(poison))
    assert list(task_groups(client, iter(paths), expected_seconds)) == [paths]  # one task of 4 files
    results = dict(run_tasks(client, _crash_on_poison, iter(paths), on_failure=lambda item, error: error))
    assert sorted(results) == sorted(paths)
    assert results[str(poison)].startswith(f"{poison}: its worker died each time it ran (KilledWorker)")
    assert [results[p] for p in paths if p != str(poison)] == [os.path.basename(p) for p in paths if p != str(poison)]

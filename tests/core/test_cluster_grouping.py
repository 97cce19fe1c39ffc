"""Short files travel several to a Dask task (``specmusic.distributed.group_by_work``; no Dask needed here)."""

from __future__ import annotations

import math

import pytest

from specmusic.batch import expected_seconds
from specmusic.distributed import TASK_AUDIO_SECONDS, group_by_work, task_groups


def _groups(weights: list[float], target: float = 4.0, max_items: int = 3) -> list[list[int]]:
    """Groups of the indices of ``weights``."""
    return list(group_by_work(range(len(weights)), lambda i: weights[i], target=target, max_items=max_items))


def test_short_items_are_grouped_until_the_target_in_input_order():
    assert _groups([1, 1, 1, 1, 1, 1, 1, 1]) == [[0, 1, 2], [3, 4, 5], [6, 7]]  # the cap: 3 a group
    assert _groups([2, 2, 2, 2, 2]) == [[0, 1], [2, 3], [4]]  # the target: 4
    assert _groups([1.5, 3, 0.5]) == [[0, 1], [2]]  # closed as soon as it reaches the target


def test_a_long_item_is_a_group_of_its_own_and_closes_the_one_before():
    assert _groups([1, 5, 1, 1, 4, 10, 0.5]) == [[0], [1], [2, 3], [4], [5], [6]]
    assert _groups([math.inf, 1, math.inf]) == [[0], [1], [2]]  # a file that cannot be looked at: alone
    assert _groups([]) == []
    flat = [i for g in _groups([0.5, 7, 1, 2, 3, 0.1, 9, 1] * 5) for i in g]
    assert flat == list(range(40))  # every item once, in input order


def test_grouping_is_lazy():
    seen: list[int] = []

    def items():
        for i in range(100):
            seen.append(i)
            yield i

    first = next(group_by_work(items(), lambda i: 1.0, target=3.0, max_items=10))
    assert first == [0, 1, 2] and seen == [0, 1, 2]


class _Client:
    """What task_groups asks of a Dask client: its worker threads."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def nthreads(self) -> dict[str, int]:
        return {f"tcp://127.0.0.1:{i}": 1 for i in range(self.threads)}


def _sized(path, size: int) -> str:
    """A (sparse) file of ``size`` bytes: grouping looks at sizes only."""
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def test_clips_go_a_few_to_a_task_and_songs_one(tmp_path):
    clips = [_sized(tmp_path / f"clip{i:02d}.wav", 30 * 176_400 + 44) for i in range(10)]  # 30 s of CD audio
    song = _sized(tmp_path / "song.ogg", 4 * 2**20)  # 4 MB of Ogg: some 3½ min
    assert expected_seconds(clips[0]) == pytest.approx(30.0, abs=0.01)
    assert expected_seconds(song) == pytest.approx(4 * 2**20 / 20_000)
    assert expected_seconds(tmp_path / "missing.ogg") == math.inf
    assert TASK_AUDIO_SECONDS == 120.0  # so: 4 clips of 30 s a task
    items = [*clips[:3], song, *clips[3:]]
    groups = list(task_groups(_Client(1), iter(items), expected_seconds))  # no length: no cap but the files'
    assert groups == [clips[:3], [song], clips[3:7], clips[7:]]
    # a short run is spread: each worker thread gets 4 tasks at least
    assert [len(g) for g in task_groups(_Client(2), clips, expected_seconds)] == [2, 2, 2, 2, 2]
    assert [len(g) for g in task_groups(_Client(1), clips * 2, expected_seconds)] == [4, 4, 4, 4, 4]

"""Runners: in process a call is its value; on a cluster a call submitted apart gets a
worker of its own and the other calls keep off it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from features.tasks import IN_PROCESS, OnCluster


def _where(x: int) -> tuple[int, str]:
    from dask.distributed import get_worker

    return x * 2, get_worker().address


@contextmanager
def _runner(workers: int) -> Iterator[OnCluster]:
    """A runner on a thread-based LocalCluster of ``workers`` one-thread workers."""
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield OnCluster(client)


def test_in_process_calls_at_once() -> None:
    handle = IN_PROCESS.submit(divmod, 7, 2)
    assert handle == (3, 1) == IN_PROCESS.result(handle)
    assert IN_PROCESS.gather([IN_PROCESS.submit_apart(abs, -3)]) == [3]


@pytest.mark.filterwarnings("ignore")
def test_on_cluster_a_call_apart_has_a_worker_of_its_own() -> None:
    with _runner(2) as run:
        apart = run.submit_apart(_where, 1)
        others = [run.submit(_where, i) for i in range(6)]
        later = run.submit_apart(_where, 9)
        value, alone = run.result(apart)
        assert value == 2 and run.result(later)[1] == alone
        results = run.gather(others)
        assert [v for v, _ in results] == [0, 2, 4, 6, 8, 10]
        assert all(w != alone for _, w in results)


@pytest.mark.filterwarnings("ignore")
def test_on_cluster_with_one_worker_apart_is_an_ordinary_call() -> None:
    with _runner(1) as run:
        assert run.result(run.submit_apart(_where, 2))[0] == 4
        assert run.result(run.submit(_where, 3))[0] == 6

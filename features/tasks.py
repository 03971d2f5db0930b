"""Where stage-B work runs: in this process, or as tasks on a Dask cluster.

Stage B is written once as calls to ``run.submit(fn, *args)``. In process a call runs at
once and its handle is the value; on a cluster it becomes a task whose handle is a future,
and futures given to later calls are resolved by Dask where those tasks run. Both runners
call the same functions with the same arguments in the same order of dependencies, so they
give the same result; only the placement differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["IN_PROCESS", "InProcess", "OnCluster", "Runner"]


class Runner(Protocol):
    """Runs a function on (handles of) values and returns a handle of its result."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

    def submit_apart(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any: ...

    def result(self, handle: Any) -> Any: ...

    def gather(self, handles: list[Any]) -> list[Any]: ...


class InProcess:
    """Calls at once; a handle is the value itself."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def submit_apart(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def result(self, handle: Any) -> Any:
        return handle

    def gather(self, handles: list[Any]) -> list[Any]:
        return list(handles)


class OnCluster:
    """Each call is a Dask task (``client.submit``, never de-duplicated by hashing its
    arguments: hashing large frames would cost more than the task).

    Calls submitted apart (Louvain, much longer than any other call, and what should run
    after it) share one worker of their own while at least one other worker is left, and
    later calls prefer the other workers (loosely: an idle worker may still steal them).
    Dask cannot know that Louvain is long the first time it runs; left to itself it queued
    other calls behind it while the other worker sat idle.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._apart: list[str] = []

    def _workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if self._apart:
            others = [w for w in self._workers() if w not in self._apart]
            if others:
                return self.client.submit(
                    fn, *args, pure=False, workers=others, allow_other_workers=True, **kwargs
                )
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def submit_apart(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not self._apart:
            workers = self._workers()
            if len(workers) < 2:
                return self.submit(fn, *args, **kwargs)
            self._apart.append(workers[0])
        return self.client.submit(fn, *args, pure=False, workers=self._apart, **kwargs)

    def result(self, handle: Any) -> Any:
        return handle.result()

    def gather(self, handles: list[Any]) -> list[Any]:
        """The results of several calls, fetched together."""
        return list(self.client.gather(handles))


IN_PROCESS = InProcess()

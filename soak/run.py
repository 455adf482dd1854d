"""One soak run: a cluster, the fault proxy, the device processes, the faults, the check."""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from soak.checker import Report, check
from soak.cluster import JWT_SECRET, Cluster
from soak.device import shared_user_ids
from soak.faults import ALL_FAULTS, EVENT_FAULTS, EVENT_WEIGHTS, PROXY_RATES
from soak.proxy import FaultProxy, ProxyFaults

REPO_ROOT = Path(__file__).resolve().parents[1]
QUIESCE_TIMEOUT = 240.0


@dataclass(frozen=True)
class RunConfig:
    seed: int
    seconds: float = 120.0
    users: int = 2
    devices: int = 3
    servers: int = 2
    faults: tuple[str, ...] = ALL_FAULTS
    retained_bundles: int = 5
    shared_rows: int = 3
    fault_interval: tuple[float, float] = (0.5, 3.0)

    def replay_command(self) -> str:
        return (
            f"python -m soak --seed {self.seed} --seconds {self.seconds:g} --users {self.users}"
            f" --devices {self.devices} --servers {self.servers}"
            f" --retained-bundles {self.retained_bundles}"
            f" --faults {','.join(self.faults) or 'none'}"
        )


@dataclass
class RunResult:
    config: RunConfig
    report: Report
    faults: Counter[str] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return self.report.ok


class DeviceProcess:
    """A device's process; `restart()` starts the next incarnation on the same SQLite file."""

    def __init__(self, name: str, user: str, run_dir: Path, base_url: str, config: RunConfig):
        self.name, self.user, self.run_dir = name, user, run_dir
        self.base_url, self.config = base_url, config
        self.incarnation = -1
        self.process: subprocess.Popen[bytes] | None = None
        self.killed = False

    def start(self) -> None:
        self.incarnation += 1
        self.killed = False
        log = self.run_dir / "logs" / f"{self.name}-{self.incarnation}.log"
        command = [
            sys.executable, "-m", "soak.device", "--run-dir", str(self.run_dir),
            "--device", self.name, "--user", self.user, "--base-url", self.base_url,
            "--jwt-secret", JWT_SECRET, "--seed", str(self.config.seed),
            "--incarnation", str(self.incarnation),
            "--shared-rows", str(self.config.shared_rows),
        ]  # fmt: skip
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT
            )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.killed = True
            self.process.kill()
            self.process.wait()

    def log_tail(self) -> str:
        log = self.run_dir / "logs" / f"{self.name}-{self.incarnation}.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""


class Run:
    def __init__(self, config: RunConfig, work_dir: Path) -> None:
        self.config = config
        self.root = work_dir / f"seed-{config.seed}"
        shutil.rmtree(self.root, ignore_errors=True)
        (self.root / "logs").mkdir(parents=True)
        self.rng = random.Random(f"faults/{config.seed}")
        self.faults: Counter[str] = Counter()
        self.problems: list[tuple[str, str, str]] = []  # kind, user, message
        self.cluster = Cluster(
            self.root, servers=config.servers, retained_bundles=config.retained_bundles
        )
        self.proxy: FaultProxy | None = None
        self.devices: list[DeviceProcess] = []

    def execute(self) -> RunResult:
        config = self.config
        try:
            self.cluster.start()
            rates = {k: v for k, v in PROXY_RATES.items() if k in config.faults}
            self.proxy = FaultProxy(self.cluster.ports, ProxyFaults(rates), config.seed).start()
            for u in range(config.users):
                for d in range(config.devices):
                    device = DeviceProcess(f"u{u}d{d}", f"u{u}", self.root, self.proxy.url, config)
                    device.start()
                    self.devices.append(device)
            self._inject_until(time.monotonic() + config.seconds)
            self._quiesce()
            shared = {
                f"u{u}": set(shared_user_ids(config.seed, f"u{u}", config.shared_rows))
                for u in range(config.users)
            }
            users = [f"u{u}" for u in range(config.users)]
            report = check(self.root, self.cluster.database_url, users, shared)
        finally:
            for device in self.devices:
                device.kill()
            if self.proxy is not None:
                self.proxy.stop()
            self.cluster.stop()
        for kind, user, message in self.problems:
            report.fail(kind, user, message)
        if self.proxy is not None:
            self.faults.update(self.proxy.counts)
        for events in report.histories.values():
            pulls = sum(
                1 for e in events if e["ev"] == "sync_ok" and e["pull"] == "applied_snapshot"
            )
            self.faults["pruned history -> snapshot pull"] += pulls
        return RunResult(config, report, self.faults)

    # ------------------------------------------------------------------ faults

    def _inject_until(self, deadline: float) -> None:
        kinds = [k for k in EVENT_FAULTS if k in self.config.faults]
        while time.monotonic() < deadline:
            time.sleep(self.rng.uniform(*self.config.fault_interval))
            self._supervise()
            if kinds:
                kind = self.rng.choices(kinds, [EVENT_WEIGHTS[k] for k in kinds])[0]
                self._inject(kind)
                self.faults[kind] += 1

    def _inject(self, kind: str) -> None:
        if kind in ("server_sigkill", "server_sigterm"):
            sig = signal.SIGKILL if kind == "server_sigkill" else signal.SIGTERM
            self.cluster.kill_server(self._server_mid_commit(), sig)
        elif kind == "pg_terminate":
            self.cluster.terminate_backends()
        elif kind == "pg_restart":
            self.cluster.restart_postgres()
            self.cluster.restart_dead_servers()
        elif kind == "device_sigkill":
            device = self.rng.choice(self.devices)
            time.sleep(self.rng.uniform(0.0, 0.5))
            device.kill()
            device.start()

    def _server_mid_commit(self) -> int:
        """A server with a push commit in flight (waiting up to 3 s for one), else any."""
        assert self.proxy is not None
        ports = self.cluster.ports
        for _ in range(300):
            busy = [ports.index(p) for p, n in self.proxy.in_flight_commits.items() if n > 0]
            if busy:
                self.faults["server killed mid-commit"] += 1
                return self.rng.choice(sorted(busy))
            time.sleep(0.01)
        return self.rng.randrange(len(ports))

    def _supervise(self) -> None:
        """Restart servers that died and devices that crashed (a crash is a failure)."""
        if died := self.cluster.restart_dead_servers():
            self.faults["servers found dead and restarted"] += died
        for device in self.devices:
            if device.process is None or device.process.poll() is None:
                continue
            code = device.process.returncode
            if code != 0 or not (self.root / "final").exists():
                self.problems.append(
                    (
                        "crash",
                        device.user,
                        f"{device.name} exited with {code}:\n{device.log_tail()}",
                    )
                )
                device.start()

    # ------------------------------------------------------------------ quiescence

    def _quiesce(self) -> None:
        """Faults off, everything up; devices drain, then pull once more and record."""
        assert self.proxy is not None
        self.proxy.faults.enabled = False
        (self.root / "stop").touch()
        deadline = time.monotonic() + QUIESCE_TIMEOUT
        while not all((self.root / f"{d.name}.drained").exists() for d in self.devices):
            if time.monotonic() > deadline:
                self.problems.append(("quiescence", "-", "devices did not drain in time"))
                return
            self._supervise()
            time.sleep(0.2)
        (self.root / "final").touch()
        for device in self.devices:
            assert device.process is not None
            try:
                device.process.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.problems.append(("quiescence", device.user, f"{device.name} did not finish"))
                return
            if device.process.returncode != 0:
                self.problems.append(
                    ("crash", device.user, f"{device.name} failed at the end:\n{device.log_tail()}")
                )


def run_seed(config: RunConfig, work_dir: Path) -> RunResult:
    return Run(config, work_dir).execute()

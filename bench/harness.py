"""What every benchmark shares: settings, fresh databases, child servers, measured workers, the machine."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import sqlalchemy as sa
from cryptography.fernet import Fernet

from bench.worker import ROOT, cpu_seconds
from core.settings import reset_settings_cache
from core.storage import migrate
from core.storage.db import create_db_engine, dispose_engines
from tests.pgserver import start_postgres


@dataclass
class Run:
    """What each benchmark's `run(ctx)` gets: the profile, the databases, the sandbox and what earlier ones left."""

    profile: Any  # bench.__main__.Profile
    dbs: Databases | None
    sandbox: Sandbox | None
    workdir: Path
    selected: tuple[str, ...]
    progress: Callable[[str], Any] = print
    shared: dict[str, Any] = field(default_factory=dict)  # ingest runs for memory, the seeded SQLite for the browser


def prepare_environment(workdir: Path) -> None:
    """Sandbox-mode settings with their data under `workdir`; inherited by every child process."""
    (data_dir := workdir / "data").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("BENCH_ENCRYPTION_KEY", Fernet.generate_key().decode())
    os.environ.update(DATA_DIR=str(data_dir), ENCRYPTION_KEYS=os.environ["BENCH_ENCRYPTION_KEY"],
                      AUTH_COOKIE_KEY="bench-cookie-key-" + "x" * 40, DATABASE_URL=f"sqlite:///{data_dir / 'unused.db'}",
                      WORKER_ENABLED="false", LOG_LEVEL="WARNING")  # fmt: skip
    for var in ("SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "SNAPTRADE_BASE_URL"):
        os.environ.pop(var, None)
    reset_settings_cache()


class Databases:
    """Fresh migrated databases, one call each: a copied SQLite template file or CREATE DATABASE … TEMPLATE."""

    def __init__(self, workdir: Path, kinds: tuple[str, ...] = ("sqlite", "postgresql")):
        self.workdir, self.kinds, self._names = workdir, kinds, itertools.count(1)
        self.pg = self._admin = None  # tests.pgserver.PostgresServer and an AUTOCOMMIT engine on it

    def start(self) -> Databases:
        urls = [f"sqlite:///{self.workdir / 'template.db'}"] if "sqlite" in self.kinds else []
        if "postgresql" in self.kinds:
            self.pg = start_postgres()
            self._admin = sa.create_engine(self.pg.url, isolation_level="AUTOCOMMIT")
            self.admin("CREATE DATABASE bench_template")
            urls.append(self.pg.url_for("bench_template"))
        for url in urls:
            engine = create_db_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
        return self

    def admin(self, sql: str) -> Any:
        with self._admin.connect() as c:
            result = c.execute(sa.text(sql))
            return result.scalar() if result.returns_rows else None

    def new(self, kind: str, template: str | None = None) -> str:
        """URL of a fresh database at the head migration, or a copy of the database at `template` (a URL)."""
        name = f"bench_{next(self._names)}"
        if kind == "sqlite":
            shutil.copy(template.split("///", 1)[1] if template else self.workdir / "template.db", self.workdir / f"{name}.db")  # fmt: skip
            return f"sqlite:///{self.workdir / name}.db"
        self.admin(f"CREATE DATABASE {name} TEMPLATE {template.rsplit('/', 1)[1] if template else 'bench_template'}")
        return self.pg.url_for(name)

    def drop(self, url: str) -> None:
        dispose_engines()
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
        else:
            self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    @contextlib.contextmanager
    def fresh(self, kind: str, template: str | None = None) -> Iterator[tuple[str, sa.Engine]]:
        """`new`'s URL with an engine on it; on leaving, the engine disposed and the database dropped."""
        url = self.new(kind, template)
        engine = create_db_engine(url)
        try:
            yield url, engine
        finally:
            engine.dispose()
            self.drop(url)

    def postmaster_pid(self) -> int:
        return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        if self.pg is not None:
            self.pg.destroy()
            self.pg = None


class Children:
    """Child processes (`python -m …`) sharing one log file; `close` ends them all (`contextlib.closing`)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.log = tempfile.TemporaryFile()

    def spawn(self, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        self.procs.append(subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=self.log,
                                           stderr=subprocess.STDOUT))  # fmt: skip
        return self.procs[-1]

    def log_tail(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) or 0.0 for p in self.procs)

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.procs = []
        self.log.close()


class Server(Children):
    """A server in a child process on a free port, up once `health` answers 200."""

    def __init__(self) -> None:
        super().__init__()
        with socket.socket() as s:  # a free port
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, args: list[str], health: str, env: dict[str, str] | None = None) -> Server:
        self.proc = self.spawn(args, env)
        deadline = time.time() + 90
        while self.proc.poll() is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + health, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        log = self.log_tail()
        self.close()
        raise RuntimeError(f"{args[0]} did not come up: {log}")


class Sandbox(Server):
    """The SnapTrade sandbox (`python -m sandbox`) in its own process, so a sync's CPU is measured without it."""

    client_id, consumer_key, token = "BENCH-CLIENT", "bench-consumer-key-0123456789", "bench-admin-token"

    def start(self) -> Sandbox:  # type: ignore[override]
        return super().start(["sandbox", "--port", str(self.port), "--client-id", self.client_id, "--consumer-key",
                              self.consumer_key, "--admin-token", self.token, "--seed", "7"], "/")  # fmt: skip

    def control(self, op: str, **kwargs: Any) -> Any:
        return self._admin(op, json.dumps(kwargs).encode())

    def read(self, op: str, **params: Any) -> Any:
        return self._admin(f"{op}?{urlencode({k: json.dumps(v) for k, v in params.items()})}")

    def _admin(self, op: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(f"{self.url}/__sandbox__/{op}", body, {"X-Sandbox-Admin-Token": self.token})
        with urllib.request.urlopen(req, timeout=120) as resp:
            return json.loads(resp.read())["result"]


def run_json(args: list[str], timeout: float = 4 * 3600) -> dict[str, Any]:
    """Run `python -m ARGS` in a fresh interpreter (a measured task) and return the last JSON line it printed."""
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"python -m {' '.join(args)[:300]} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: always a value that was measured."""
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * pct // 100)) - 1]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info(dbs: Databases | None) -> dict[str, Any]:
    def proc(name: str) -> dict[str, str]:  # a /proc file of `key: value` lines
        return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in Path(f"/proc/{name}").read_text().splitlines())}  # fmt: skip

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    mem, pg = proc("meminfo"), dbs is not None and dbs.pg is not None
    head = git("rev-parse", "HEAD").strip()
    settings = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "work_mem")
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cores": len(os.sched_getaffinity(0)),
        "cpu_model": proc("cpuinfo").get("model name", platform.processor()), "kernel": platform.release(),
        **{f"mem_{k}_bytes": int(mem[f"Mem{k.title()}"].split()[0]) * 1024 for k in ("total", "available")},
        "python": platform.python_version(), "sqlite": sqlite3.sqlite_version, "sqlalchemy": sa.__version__, "psycopg": psycopg.__version__,
        "postgresql": dbs.admin("SHOW server_version") if pg else None,
        "postgresql_settings": ", ".join(f"{n}={dbs.admin(f'SHOW {n}')}" for n in settings)
                               + " (the tests/pgserver.py throwaway cluster)" if pg else None,
        # the commit measured, and whether the app had uncommitted changes (porcelain lines are "XY path")
        "git": {"head": head[:12], "subject": git("log", "-1", "--format=%s", head).strip() if head else "",
                "uncommitted": [ln[3:] for ln in git("status", "--porcelain", "--", "core", "pages", "app.py").splitlines()]},
    }  # fmt: skip

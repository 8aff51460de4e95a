"""What every benchmark shares: a private settings environment, fresh migrated databases on demand
(SQLite files or PostgreSQL databases copied from a template), measured subprocess workers and statistics.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_KINDS = ("sqlite", "postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_environment(workdir: Path) -> None:
    """Sandbox-mode settings with their data under `workdir`; inherited by every worker subprocess."""
    from cryptography.fernet import Fernet

    from core.settings import reset_settings_cache

    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.setdefault("BENCH_ENCRYPTION_KEY", Fernet.generate_key().decode())
    os.environ["ENCRYPTION_KEYS"] = os.environ["BENCH_ENCRYPTION_KEY"]
    os.environ["AUTH_COOKIE_KEY"] = "bench-cookie-key-" + "x" * 40
    os.environ["DATABASE_URL"] = f"sqlite:///{data_dir / 'unused.db'}"
    os.environ["WORKER_ENABLED"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    for var in ("SNAPTRADE_CLIENT_ID", "SNAPTRADE_CONSUMER_KEY", "SNAPTRADE_BASE_URL"):
        os.environ.pop(var, None)
    reset_settings_cache()


# --------------------------------------------------------------------------- databases


class Databases:
    """Fresh migrated databases, one call each: a copied SQLite template file or CREATE DATABASE … TEMPLATE."""

    def __init__(self, workdir: Path, kinds: tuple[str, ...] = DB_KINDS):
        self.workdir = workdir
        self.kinds = kinds
        self._names = itertools.count(1)
        self._sqlite_template: Path | None = None
        self.pg = None  # tests.pgserver.PostgresServer
        self._admin = None

    def start(self) -> Databases:
        import sqlalchemy as sa

        from core.storage import migrate
        from core.storage.db import create_db_engine

        if "sqlite" in self.kinds:
            self._sqlite_template = self.workdir / "template.db"
            engine = create_db_engine(f"sqlite:///{self._sqlite_template}")
            migrate.upgrade(engine)
            engine.dispose()
        if "postgresql" in self.kinds:
            from tests.pgserver import start_postgres

            self.pg = start_postgres()
            self._admin = sa.create_engine(self.pg.url, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as c:
                c.execute(sa.text("CREATE DATABASE bench_template"))
            engine = create_db_engine(self.pg.url_for("bench_template"))
            migrate.upgrade(engine)
            engine.dispose()
        return self

    def new(self, kind: str) -> str:
        """URL of a fresh database at the head migration."""
        import sqlalchemy as sa

        name = f"bench_{next(self._names)}"
        if kind == "sqlite":
            assert self._sqlite_template is not None
            path = self.workdir / f"{name}.db"
            shutil.copy(self._sqlite_template, path)
            return f"sqlite:///{path}"
        assert self._admin is not None and self.pg is not None
        with self._admin.connect() as c:
            c.execute(sa.text(f"CREATE DATABASE {name} TEMPLATE bench_template"))
        return self.pg.url_for(name)

    def drop(self, url: str) -> None:
        import sqlalchemy as sa

        from core.storage.db import dispose_engines

        dispose_engines()
        if url.startswith("sqlite"):
            path = Path(url.split("///", 1)[1])
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(str(path) + suffix).unlink(missing_ok=True)
            return
        name = url.rsplit("/", 1)[1]
        assert self._admin is not None
        with self._admin.connect() as c:
            c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def postmaster_pid(self) -> int | None:
        if self.pg is None:
            return None
        try:
            return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def server_version(self) -> str | None:
        if self._admin is None:
            return None
        import sqlalchemy as sa

        with self._admin.connect() as c:
            return c.execute(sa.text("SHOW server_version")).scalar_one()

    def server_settings(self) -> str | None:
        if self._admin is None:
            return None
        import sqlalchemy as sa

        with self._admin.connect() as c:
            values = {name: c.execute(sa.text(f"SHOW {name}")).scalar_one()
                      for name in ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "work_mem")}  # fmt: skip
        return ", ".join(f"{k}={v}" for k, v in values.items()) + " (the tests/pgserver.py throwaway cluster)"

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        if self.pg is not None:
            self.pg.destroy()
            self.pg = None


def postgres_cpu_seconds(postmaster_pid: int | None) -> float | None:
    """CPU used so far by the PostgreSQL server: the postmaster and every live backend/helper process."""
    if not postmaster_pid:
        return None
    import psutil

    try:
        root = psutil.Process(postmaster_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


# --------------------------------------------------------------------------- workers


def run_worker(spec: dict[str, Any], *, env: dict[str, str] | None = None, timeout: float = 4 * 3600) -> dict[str, Any]:
    """Run one measured task in a fresh interpreter (`python -m bench.worker`) and return its JSON answer."""
    proc = subprocess.run(
        [sys.executable, "-m", "bench.worker", json.dumps(spec)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench worker failed ({proc.returncode}) for {spec.get('task')}: {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


# --------------------------------------------------------------------------- statistics


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, min and max of a series (the figures BENCHMARKS.md shows), plus the raw values."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "values": list(values),
    }


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile: always a value that was measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


@dataclass
class Stopwatch:
    """Wall seconds of named phases of the benchmark run."""

    phases: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds


# --------------------------------------------------------------------------- the machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable", "MemFree"):
                out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def machine_info(postgres_version: str | None = None, postgres_settings: str | None = None) -> dict[str, Any]:
    import psycopg
    import sqlalchemy

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    mem = _meminfo()
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "cores": cores,
        "mem_total_bytes": mem.get("MemTotal"),
        "mem_available_bytes": mem.get("MemAvailable"),
        "mem_free_bytes": mem.get("MemFree"),
        "loadavg": list(os.getloadavg()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "postgresql_settings": postgres_settings,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
    }


def git_state(before: str | None = None) -> dict[str, Any]:
    """The commit being measured and whether core/ had uncommitted changes (several people work in this tree)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    head = (git("rev-list", "-1", f"--before={before}", "HEAD") if before else git("rev-parse", "HEAD")).strip()
    # porcelain lines are "XY path": the status letters take the first three characters
    dirty = [
        line[3:] for line in git("status", "--porcelain", "--", "core", "pages", "app.py").splitlines() if line.strip()
    ]
    return {
        "head": head[:12],
        "subject": git("log", "-1", "--format=%s", head).strip() if head else "",
        "uncommitted": dirty,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def now() -> float:
    return time.perf_counter()

"""What every benchmark shares: a private settings environment, fresh migrated databases on demand
(SQLite files or PostgreSQL databases copied from a template), measured worker processes, statistics.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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
        self.workdir, self.kinds = workdir, kinds
        self._names = itertools.count(1)
        self.pg = None  # tests.pgserver.PostgresServer
        self._admin = None

    def start(self) -> Databases:
        import sqlalchemy as sa

        from core.storage import migrate
        from core.storage.db import create_db_engine

        urls = []
        if "sqlite" in self.kinds:
            urls.append(f"sqlite:///{self.workdir / 'template.db'}")
        if "postgresql" in self.kinds:
            from tests.pgserver import start_postgres

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
        import sqlalchemy as sa

        assert self._admin is not None, "PostgreSQL is not running"
        with self._admin.connect() as c:
            result = c.execute(sa.text(sql))
            return result.scalar() if result.returns_rows else None

    def new(self, kind: str) -> str:
        """URL of a fresh database at the head migration."""
        name = f"bench_{next(self._names)}"
        if kind == "sqlite":
            shutil.copy(self.workdir / "template.db", self.workdir / f"{name}.db")
            return f"sqlite:///{self.workdir / name}.db"
        self.admin(f"CREATE DATABASE {name} TEMPLATE bench_template")
        return self.pg.url_for(name)

    def execute(self, url: str, sql: str) -> None:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.begin() as c:
            c.execute(sa.text(sql))
        engine.dispose()

    def drop(self, url: str) -> None:
        from core.storage.db import dispose_engines

        dispose_engines()
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(url.split("///", 1)[1] + suffix).unlink(missing_ok=True)
        else:
            self.admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pg.data_dir / "postmaster.pid").read_text().split()[0]) if self.pg else None
        except (OSError, ValueError, IndexError):
            return None

    def server_version(self) -> str | None:
        return self.admin("SHOW server_version") if self._admin else None

    def server_settings(self) -> str | None:
        if self._admin is None:
            return None
        names = ("fsync", "synchronous_commit", "full_page_writes", "shared_buffers", "work_mem")
        return ", ".join(f"{n}={self.admin(f'SHOW {n}')}" for n in names) + " (the tests/pgserver.py throwaway cluster)"

    def close(self) -> None:
        if self._admin is not None:
            self._admin.dispose()
        if self.pg is not None:
            self.pg.destroy()
            self.pg = None


def cpu_seconds(pid: int | None, children: bool = False) -> float | None:
    """User + system CPU of a process (and, with `children`, of all its descendants) so far."""
    import psutil

    try:
        root = psutil.Process(pid) if pid else None
        procs = ([root, *root.children(recursive=True)] if children else [root]) if root else []
    except psutil.Error:
        return None
    total = None
    for p in procs:
        try:
            t = p.cpu_times()
            total = (total or 0.0) + t.user + t.system
        except psutil.Error:
            continue  # exited meanwhile
    return total


def stop_process(proc: subprocess.Popen | None, timeout: float = 10) -> None:
    """Terminate a child process we started, killing it if it does not exit in time."""
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def run_worker(spec: dict[str, Any], timeout: float = 4 * 3600) -> dict[str, Any]:
    """Run one measured task in a fresh interpreter (`python -m bench.worker`) and return its JSON answer."""
    proc = subprocess.run([sys.executable, "-m", "bench.worker", json.dumps(spec)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"bench worker failed ({proc.returncode}) for {spec.get('task')}: {proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def summarize(values: list[float]) -> dict[str, Any]:
    """Median, min and max of a series (the figures BENCHMARKS.md shows), plus the raw values."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "values": []}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values),
            "values": list(values)}  # fmt: skip


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile: always a value that was measured."""
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * pct // 100)) - 1]


def _proc_file(name: str) -> dict[str, str]:
    """A /proc file of `key: value` lines (the last of repeated keys)."""
    lines = Path(f"/proc/{name}").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines)}


def machine_info(postgres_version: str | None = None, postgres_settings: str | None = None) -> dict[str, Any]:
    import psycopg
    import sqlalchemy

    mem = {k: int(v.split()[0]) * 1024 for k, v in _proc_file("meminfo").items() if k in ("MemTotal", "MemAvailable")}
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _proc_file("cpuinfo").get("model name", platform.processor()),
        "cores": len(os.sched_getaffinity(0)),
        "mem_total_bytes": mem.get("MemTotal"),
        "mem_available_bytes": mem.get("MemAvailable"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "postgresql_settings": postgres_settings,
        "sqlalchemy": sqlalchemy.__version__,
        "psycopg": psycopg.__version__,
    }


def git_state() -> dict[str, Any]:
    """The commit being measured and whether the app had uncommitted changes (several people work in this tree)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    head = git("rev-parse", "HEAD").strip()
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

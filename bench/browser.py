"""Benchmark 5: navigation to a rendered Transactions table in Chromium, the app beside Streamlit alone."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import psutil
from sqlmodel import Session

from bench.harness import Run, Server
from bench.report import summarize
from bench.seed import seed
from core.accounts import auth
from core.settings import get_settings
from core.storage.db import create_db_engine

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]  # fmt: skip
TABLE = '[data-testid="stDataFrame"]'
VIEWPORT = {"width": 1400, "height": 1000}
PAGE_ROWS = 50  # the Transactions page's default page size, and the floor's table
PRIMING_VISITS = 2


def streamlit(script: str, database_url: str, data_dir: Path) -> Server:
    s = Server()
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(data_dir), "WORKER_ENABLED": "false", "APP_BASE_URL": s.url}  # fmt: skip
    return s.start(["streamlit", "run", script, "--server.headless=true", f"--server.port={s.port}", "--server.address=127.0.0.1",
                    "--browser.gatherUsageStats=false", "--server.fileWatcherType=none"], "/_stcore/health", env)  # fmt: skip


def cpu_by_process(server_pid: int) -> dict[int, float]:
    """CPU seconds so far of each Chromium process and of one Streamlit server."""
    out = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.pid == server_pid or "chrom" in proc.name().lower():
                out[proc.pid] = sum(proc.cpu_times()[:2])
        except psutil.Error:
            continue  # exited meanwhile
    return out


def visit(browser, url: str, rows: int, cookie: dict | None = None, table: bool = True, context=None,
          server_pid: int | None = None, cpu: list | None = None) -> tuple[float, float]:  # fmt: skip
    """Seconds to the title and to the rendered table (or caption), in a new tab of a fresh or the given context;
    with `server_pid`, the visit's (Chromium, server) CPU s go to `cpu`, read before a renderer's process ends."""
    own = context is None
    context = browser.new_context(viewport=VIEWPORT) if own else context
    page = None
    try:
        if cookie and own:
            context.add_cookies([cookie])
        page = context.new_page()
        cpu0 = cpu_by_process(server_pid) if server_pid else {}
        t0 = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.get_by_role("heading", name="Transactions").first.wait_for(state="visible", timeout=120_000)
        title = time.perf_counter() - t0
        page.get_by_text(f"of {rows:,}", exact=False).first.wait_for(state="visible", timeout=120_000)
        if table:
            page.locator(TABLE).first.wait_for(state="visible", timeout=120_000)
            page.locator(f"{TABLE} canvas").first.wait_for(state="attached", timeout=120_000)
            # The grid's accessible mirror holds the rows once they are rendered: header + one page of 50.
            page.locator(f'{TABLE} [role="grid"][aria-rowcount="{PAGE_ROWS + 1}"]').first.wait_for(state="attached", timeout=120_000)  # fmt: skip
        elapsed = time.perf_counter() - t0
        if server_pid:
            spent = {pid: t - cpu0.get(pid, 0.0) for pid, t in cpu_by_process(server_pid).items()}
            server = spent.pop(server_pid, 0.0)
            cpu.append((sum(spent.values()), server))
        return title, elapsed
    finally:
        if own:
            context.close()
        elif page is not None:
            page.close()


def playwright() -> tuple[Any, str | None]:
    """(playwright's sync_playwright, None), or (None, why the browser benchmarks are skipped)."""
    if not Path(CHROMIUM).exists():
        return None, f"{CHROMIUM} is not installed"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None, "the playwright package is not installed"
    return sync_playwright, None


def run(ctx: Run) -> dict[str, Any]:
    sync_playwright, skipped = playwright()
    if skipped:
        return {"skipped": skipped}
    url, seeded = ctx.shared.pop("seeded_sqlite", None) or (ctx.dbs.new("sqlite"), None)
    try:
        engine = create_db_engine(url)
        seeded = seeded or seed(engine, ctx.profile.seed)
        with Session(engine) as s:
            token = auth.issue_session_token(seeded.big_username, auth.get_user(s, seeded.big_username).session_epoch)
        engine.dispose()
        return measure(sync_playwright, url, token, ctx)
    finally:
        ctx.dbs.drop(url)


def measure(sync_playwright, database_url: str, token: str, ctx: Run) -> dict[str, Any]:
    rows, starts, warm_visits = ctx.profile.seed.big_user_rows, ctx.profile.browser_starts, ctx.profile.browser_warm
    t: dict[str, list[float]] = defaultdict(list)  # seconds, or CPU seconds, by figure
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        cache = browser.new_context(viewport=VIEWPORT)  # the returning browser: its cache lives for the whole run
        floor = streamlit("bench/browser_floor.py", database_url, ctx.workdir / "floor-data")
        floor_url = f"{floor.url}/?rows={rows}"
        try:
            visit(browser, floor_url, rows)  # its first script run and imports: not part of the floor
            for _ in range(PRIMING_VISITS):
                visit(browser, floor_url, rows, context=cache)
            for i in range(starts):
                t0 = time.perf_counter()
                server = streamlit("app.py", database_url, ctx.workdir / f"app-data-{i}")
                t["server_start"].append(time.perf_counter() - t0)
                app_url = f"{server.url}/transactions"
                login = {"name": get_settings().auth_cookie_name, "value": token, "url": server.url}
                try:
                    t["cold"].append(visit(browser, app_url, rows, login)[1])
                    cache.add_cookies([login])
                    for _ in range(PRIMING_VISITS):  # a new port is a new origin: its cache starts empty
                        visit(browser, app_url, rows, context=cache)
                    for _ in range(warm_visits):  # interleaved, so the app and its floor share the machine's mood
                        cpu: list[tuple[float, float]] = []
                        title, table = visit(browser, app_url, rows, login, server_pid=server.proc.pid, cpu=cpu)
                        t["warm_title"].append(title)
                        t["warm"].append(table)
                        t["floor_table"].append(visit(browser, floor_url, rows, server_pid=floor.proc.pid, cpu=cpu)[1])
                        t["floor_shell"].append(visit(browser, f"{floor_url}&table=0", rows, table=False)[1])
                        t["returning"].append(visit(browser, app_url, rows, context=cache)[1])
                        t["floor_returning"].append(visit(browser, floor_url, rows, context=cache)[1])
                        for who, (chromium, streamlit_cpu) in zip(("warm", "floor"), cpu):
                            t[f"{who}_browser_cpu"].append(chromium)
                            t[f"{who}_server_cpu"].append(streamlit_cpu)
                except Exception as exc:
                    raise RuntimeError(f"browser visit failed: {exc}; server log: {server.log_tail()} "
                                       f"floor log: {floor.log_tail()}") from exc  # fmt: skip
                finally:
                    server.close()
                last = {k: ", ".join(f"{x:.2f}" for x in t[k][-warm_visits:]) for k in ("warm", "floor_table", "returning")}  # fmt: skip
                ctx.progress(f"  browser: server start {i + 1}: cold {t['cold'][-1]:.2f} s, warm {last['warm']} s "
                             f"(floor {last['floor_table']} s), returning browser {last['returning']} s")  # fmt: skip
        finally:
            floor.close()
            browser.close()
    return {"rows": rows, "priming_visits": PRIMING_VISITS, "page_rows": PAGE_ROWS, "cpus": os.cpu_count(),
            "server_starts": starts, "warm_visits_per_start": warm_visits,
            **{f"{key}_seconds": summarize(values) for key, values in t.items()}}  # fmt: skip

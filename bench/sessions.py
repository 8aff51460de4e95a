"""Benchmark 11 (issue 25): dashboard concurrency, 1, 5 and 10 signed-in traders opening the Transactions page at
once on one `streamlit run app.py` server: its CPU and RSS per session. docs/PERFORMANCE.md §11."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psutil
from sqlmodel import Session

from bench.browser import CHROMIUM, CHROMIUM_ARGS, PAGE_ROWS, TABLE, VIEWPORT, cpu_by_process, playwright, streamlit
from bench.harness import Run
from bench.report import rng, summarize, table
from bench.seed import SeedPlan, seed
from core.accounts import auth
from core.settings import get_settings


@dataclass
class ConcurrencyPlan:
    levels: tuple[int, ...] = (1, 5, 10)
    runs: int = 3  # rounds, each opening every level once
    rows_per_user: int = 10_000
    settle_seconds: float = 5.0  # after the tabs close, before RSS is read
    drop_seconds: float = 130.0  # then once more after .streamlit/config.toml's disconnectedSessionTTL (120 s)


def open_sessions(browser, url: str, cookies: list[dict], rows: int) -> tuple[list, list[float]]:
    """One fresh browser context per cookie, all navigations sent first, then each waited for until its table
    holds a page of rows; the contexts (left open) and the seconds each took."""
    tabs, t0 = [], time.perf_counter()
    for cookie in cookies:
        context = browser.new_context(viewport=VIEWPORT)
        context.add_cookies([cookie])
        page = context.new_page()
        page.goto(url, wait_until="commit")
        tabs.append((context, page))
    seconds = []
    for _, page in tabs:
        page.get_by_text(f"of {rows:,}", exact=False).first.wait_for(state="visible", timeout=180_000)
        page.locator(f'{TABLE} [role="grid"][aria-rowcount="{PAGE_ROWS + 1}"]').first.wait_for(state="attached", timeout=180_000)  # fmt: skip
        seconds.append(time.perf_counter() - t0)
    return [c for c, _ in tabs], seconds


def run(ctx: Run) -> dict[str, Any]:
    sync_playwright, skipped = playwright()
    if skipped:
        return {"skipped": skipped}
    plan: ConcurrencyPlan = ctx.profile.concurrency
    users = max(plan.levels)
    with ctx.dbs.fresh("sqlite") as (url, engine):
        seed(engine, SeedPlan(users, plan.rows_per_user, plan.rows_per_user))
        with Session(engine) as s:
            names = [f"trader{i:03d}" for i in range(users)]
            tokens = [auth.issue_session_token(n, auth.get_user(s, n).session_epoch) for n in names]
        engine.dispose()
        return measure(sync_playwright, url, tokens, plan, ctx)


def measure(sync_playwright, database_url: str, tokens: list[str], plan: ConcurrencyPlan, ctx: Run) -> dict[str, Any]:
    cells = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        server = streamlit("app.py", database_url, ctx.workdir / "sessions-data")
        proc, page_url = psutil.Process(server.proc.pid), f"{server.url}/transactions"
        cookies = [{"name": get_settings().auth_cookie_name, "value": t, "url": server.url} for t in tokens]
        try:
            for context in open_sessions(browser, page_url, cookies[:1], plan.rows_per_user)[0]:  # warm-up: imports
                context.close()
            time.sleep(plan.settle_seconds)
            rss_start = proc.memory_info().rss
            for rep in range(plan.runs):
                for n in plan.levels:
                    rss0, cpu0 = proc.memory_info().rss, cpu_by_process(proc.pid)
                    contexts, seconds = open_sessions(browser, page_url, cookies[:n], plan.rows_per_user)
                    spent = {pid: t - cpu0.get(pid, 0.0) for pid, t in cpu_by_process(proc.pid).items()}
                    cpu, rss_open = spent.pop(proc.pid, 0.0), proc.memory_info().rss
                    for context in contexts:
                        context.close()
                    time.sleep(plan.settle_seconds)
                    cells.append({"sessions": n, "run": rep + 1, "server_cpu_seconds": cpu, "rss_before": rss0,
                                  "browser_cpu_seconds": sum(spent.values()),
                                  "rss_open": rss_open, "rss_after_close": proc.memory_info().rss,
                                  "slowest_seconds": max(seconds), "seconds": seconds})  # fmt: skip
                    ctx.progress(f"  concurrency: {n} session(s), run {rep + 1}: {cpu / n:.2f} CPU s/session, RSS "
                                 f"{(rss_open - rss0) / n / 2**20:+.1f} MiB/session, slowest {max(seconds):.1f} s")  # fmt: skip
            time.sleep(plan.drop_seconds)
            rss_end = proc.memory_info().rss
        except Exception as exc:
            raise RuntimeError(f"concurrency visit failed: {exc}; server log: {server.log_tail()}") from exc
        finally:
            server.close()
            browser.close()
    return {"levels": list(plan.levels), "runs": plan.runs, "rows_per_user": plan.rows_per_user,
            "settle_seconds": plan.settle_seconds, "drop_seconds": plan.drop_seconds, "rss_start": rss_start,
            "rss_end": rss_end, "cells": cells}  # fmt: skip


# --------------------------------------------------------------------------- report


def per_level(c: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """Per number of sessions: summaries of CPU s per session, RSS growth per open session, RSS kept after close."""
    out = {}
    for n in c["levels"]:
        cs = [x for x in c["cells"] if x["sessions"] == n]
        out[n] = {"cpu": summarize([x["server_cpu_seconds"] / n for x in cs]),
                  "rss_open": summarize([(x["rss_open"] - x["rss_before"]) / n / 2**20 for x in cs]),
                  "rss_kept": summarize([(x["rss_after_close"] - x["rss_before"]) / 2**20 for x in cs]),
                  "slowest": summarize([x["slowest_seconds"] for x in cs]), "runs": len(cs),
                  "browser": summarize([x["browser_cpu_seconds"] for x in cs]) if all("browser_cpu_seconds" in x for x in cs) else None}  # fmt: skip
    return out


def verdicts(c: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    hi = per_level(c)[max(c["levels"])]
    return [(f"Dashboard concurrency, server CPU s per session ({max(c['levels'])} at once)", "",
             f"{hi['cpu']['median']:.2f} s", None),
            (f"Dashboard concurrency, server RSS per open session ({max(c['levels'])} at once)", "",
             f"{hi['rss_open']['median']:+.1f} MiB", None)]  # fmt: skip


def section(c: dict[str, Any], results: dict[str, Any]) -> list[str]:
    rows = [[n, rng(v["cpu"], 2), rng(v["rss_open"], 1), rng(v["rss_kept"], 1), rng(v["slowest"], 1), rng(v["browser"], 1), v["runs"]]
            for n, v in per_level(c).items()]  # fmt: skip
    mib = lambda b: f"{b / 2**20:,.0f} MiB"  # noqa: E731
    return [f"Signed-in traders ({c['rows_per_user']:,} transactions each, one per session) open Transactions at once "
            f"on one `streamlit run app.py` server, each in a fresh Chromium context; {c['runs']} rounds of every "
            f"level, interleaved. RSS *kept* is read {c['settle_seconds']:g} s after the tabs close.", "",
            *table("sessions at once | server CPU s per session | RSS growth per open session, MiB | "
                   "RSS kept after close, MiB | slowest session to table, s | Chromium CPU s, all sessions | runs", rows),
            f"- Server RSS after the warm-up visit: {mib(c['rss_start'])}; {c['drop_seconds']:g} s after the last "
            f"round closed (past Streamlit's disconnected-session TTL): {mib(c['rss_end'])} "
            f"({(c['rss_end'] - c['rss_start']) / 2**20:+.1f} MiB over all {len(c['cells'])} rounds).", ""]  # fmt: skip

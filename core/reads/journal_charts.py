"""The Journal page's figures, pure builders over core.reads.journal's DataFrames (testable without a
browser): the P&L calendar coloured by the sign of each day and the equity curve with its drawdown shaded.
Plotly only draws: the colour of a day is its sign, its labels the exact amounts formatted by core.reads.formatting."""

from __future__ import annotations

import calendar as cal
from datetime import date
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from core.reads import formatting as fmt
from core.reads.journal import WEEKDAYS

GREEN, RED, GREY = "#2e7d32", "#c62828", "#eeeeee"


def currency_label(currency: str | None) -> str:
    return currency or "No currency"


def money(value: Any, currency: str | None) -> str:
    return fmt.format_money(value, currency) if value is not None and not pd.isna(value) else "—"


def _sign_color(value: float) -> float:
    return 1.0 if value > 0 else -1.0 if value < 0 else 0.0


def calendar_figure(days: pd.DataFrame, currency: str | None, year: int, month: int | None = None) -> go.Figure:
    """Daily net P&L as a calendar grid: a month as weeks × weekdays, a year as weekdays × weeks.
    Green for a winning day, red for a losing one, grey for a flat day; hover and labels hold exact amounts."""
    by_day = {row["date"]: row for row in days.to_dict("records")}
    first = date(year, month or 1, 1)
    last = date(year, month, cal.monthrange(year, month)[1]) if month else date(year, 12, 31)
    weekdays = list(WEEKDAYS)
    cells: dict[tuple[int, int], tuple[float | None, str, str]] = {}
    day = first
    while day <= last:
        week = (day.toordinal() - (first.toordinal() - first.weekday())) // 7  # weeks start on Monday
        row = by_day.get(day)
        if row is None:
            cells[(week, day.weekday())] = (None, f"{day.day}" if month else "", f"{day:%a %Y-%m-%d}: no closed trades")
        else:
            amount = money(row["net_pnl"], currency)
            # the cell without the currency code, which the title gives: it fits a phone's narrow cell
            short = fmt.format_money(row["net_pnl"], currency, code=False)
            cells[(week, day.weekday())] = (_sign_color(float(row["net_pnl"])),
                                            f"{day.day}<br>{short}" if month else "",
                                            f"{day:%a %Y-%m-%d}: {amount} from {row['trades']} trade(s)")  # fmt: skip
        day = date.fromordinal(day.toordinal() + 1)
    weeks = max(w for w, _ in cells) + 1
    scale = [[0.0, RED], [0.5, GREY], [1.0, GREEN]]
    if month:  # weeks down, weekdays across: a wall calendar
        z = [[cells.get((w, d), (None, "", ""))[0] for d in range(7)] for w in range(weeks)]
        text = [[cells.get((w, d), (None, "", ""))[1] for d in range(7)] for w in range(weeks)]
        hover = [[cells.get((w, d), (None, "", ""))[2] for d in range(7)] for w in range(weeks)]
        fig = go.Figure(go.Heatmap(z=z, x=weekdays, y=[f"Week {w + 1}" for w in range(weeks)], text=text,
                                   texttemplate="%{text}", hovertext=hover, hoverinfo="text", colorscale=scale,
                                   zmin=-1, zmax=1, showscale=False, xgap=3, ygap=3,
                                   textfont={"size": 11}))  # fmt: skip  # a fixed size: Plotly shrank it to 4 px on a phone
        fig.update_yaxes(autorange="reversed", showticklabels=False)
        fig.update_xaxes(tickangle=0, tickvals=weekdays, ticktext=[w[:3] for w in weekdays])  # fits a phone
        title = f"{cal.month_name[month]} {year}"
    else:  # a year: weekdays down, weeks across
        z = [[cells.get((w, d), (None, "", ""))[0] for w in range(weeks)] for d in range(7)]
        hover = [[cells.get((w, d), (None, "", ""))[2] for w in range(weeks)] for d in range(7)]
        fig = go.Figure(go.Heatmap(z=z, x=list(range(1, weeks + 1)), y=weekdays, hovertext=hover, hoverinfo="text",
                                   colorscale=scale, zmin=-1, zmax=1, showscale=False, xgap=2, ygap=2))  # fmt: skip
        fig.update_yaxes(autorange="reversed")
        fig.update_xaxes(title="Week of the year")
        title = str(year)
    fig.update_layout(title=f"Daily net P&L, {title} ({currency_label(currency)})", margin=dict(l=10, r=10, t=40, b=10),
                      plot_bgcolor="rgba(0,0,0,0)")  # fmt: skip
    return fig


def equity_figure(curve: pd.DataFrame, currency: str | None) -> go.Figure:
    """Cumulative net P&L by close date with its running peak; the drawdown (peak − cumulative) shaded red."""
    fig = go.Figure()
    dates = list(curve["date"])
    peak = [float(v) for v in curve["peak"]]
    cumulative = [float(v) for v in curve["cumulative"]]
    fig.add_trace(
        go.Scatter(x=dates, y=peak, name="Running peak", mode="lines", line=dict(color="#9e9e9e", dash="dot"))
    )
    fig.add_trace(go.Scatter(x=dates, y=cumulative, name="Cumulative net P&L", mode="lines", line=dict(color="#1565c0"),
                             fill="tonexty", fillcolor="rgba(198,40,40,0.25)",
                             customdata=[[money(c, currency), money(d, currency)] for c, d in
                                         zip(curve["cumulative"], curve["drawdown"], strict=True)],
                             hovertemplate="%{x}<br>cumulative %{customdata[0]}<br>drawdown %{customdata[1]}<extra></extra>"))  # fmt: skip
    fig.update_layout(title=f"Equity curve ({currency_label(currency)}), drawdown shaded", hovermode="x unified",
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h"))  # fmt: skip
    return fig

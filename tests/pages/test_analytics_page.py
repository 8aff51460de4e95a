"""AppTest of the Analytics page: sign-in gate, empty state, one currency at a time, charts drawn."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests import factories as f

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "analytics.py")


def _app(user_id: int | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30)
    if user_id is not None:
        at.session_state["current_user"] = f.session_user(user_id, username="alice", role="trader")
    return at


def test_without_user_asks_to_sign_in(engine):
    at = _app().run()
    assert any("Please sign in" in i.value for i in at.info)


def test_no_data_shows_an_empty_state(session):
    user = f.make_user(session)
    at = _app(user.id).run()
    assert not at.exception
    assert any("Nothing to chart yet" in i.value for i in at.info)


def test_defaults_to_most_used_currency_and_draws_every_chart(session):
    user, _, account = f.make_trader(session)
    f.make_transaction(
        session,
        account,
        transaction_type="DIVIDEND",
        symbol="MSFT",
        amount="1.5",
        currency="CAD",
        trade_date=date(2026, 2, 3),
    )
    for day in (1, 2):
        f.make_transaction(
            session,
            account,
            transaction_type="CONTRIBUTION",
            amount="100",
            currency="USD",
            trade_date=date(2026, 1, day),
        )
    at = _app(user.id).run()
    assert not at.exception
    currency = at.selectbox(key="an_currency")
    assert currency.value == "USD" and currency.options == ["USD", "CAD"]
    assert len(at.get("plotly_chart")) == 7
    at.selectbox(key="an_currency").set_value("CAD").run()
    assert not at.exception
    assert at.selectbox(key="an_year").value == 2026

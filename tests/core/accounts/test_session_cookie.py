"""The re-login cookie set by the server: one-time codes traded over real HTTP (uvicorn) for an HttpOnly,
SameSite=Strict cookie; replays, expired codes and cross-site posts get no cookie; logout clears it."""

from __future__ import annotations

import logging

import pytest
import requests
from starlette.applications import Starlette

from core.accounts import session_cookie
from core.settings import get_settings, reset_settings_cache
from core.web import api
from tests.core.web.test_api import LiveServer


@pytest.fixture
def server(settings_env):
    live = LiveServer(Starlette(routes=api.routes)).start()
    yield live
    live.stop()


def _post(server, code, **kw) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{server.port}{session_cookie.ROUTE_PATH}", json={"code": code},
                         timeout=10, **kw)  # fmt: skip


def _flags(response: requests.Response) -> tuple[str, set[str]]:
    """(name=value, the lower-cased attributes) of the one Set-Cookie header."""
    first, *attrs = [part.strip() for part in response.headers["set-cookie"].split(";")]
    return first, {a.lower() for a in attrs}


def test_a_sign_in_code_is_traded_once_for_an_httponly_strict_cookie(server):
    settings = get_settings()
    code = session_cookie.issue_set_code("the.jwt.token")
    r = _post(server, code)
    assert r.status_code == 204 and r.headers["cache-control"] == "no-store"
    value, attrs = _flags(r)
    assert value == f"{settings.auth_cookie_name}=the.jwt.token"
    assert {
        "httponly",
        "samesite=strict",
        "path=/",
        f"max-age={int(settings.auth_cookie_expiry_days * 86400)}",
    } <= attrs
    assert "secure" not in attrs  # plain http (APP_BASE_URL is http too)

    replay = _post(server, code)
    assert replay.status_code == 400 and "set-cookie" not in replay.headers
    assert "set-cookie" not in _post(server, "made-up").headers


def test_an_expired_code_gets_no_cookie(server, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(session_cookie, "codes", session_cookie.CookieCodes(clock=lambda: now[0]))
    late, in_time = session_cookie.issue_set_code("t1"), session_cookie.issue_set_code("t2")
    now[0] += session_cookie.CODE_TTL_SECONDS - 1
    assert _post(server, in_time).status_code == 204
    now[0] += 2
    r = _post(server, late)
    assert r.status_code == 400 and "set-cookie" not in r.headers


def test_logout_code_clears_the_cookie_with_the_same_flags(server):
    r = _post(server, session_cookie.issue_clear_code())
    assert r.status_code == 204
    value, attrs = _flags(r)
    assert value in (f"{get_settings().auth_cookie_name}=", f'{get_settings().auth_cookie_name}=""')
    assert {"httponly", "samesite=strict", "path=/", "max-age=0"} <= attrs


def test_the_cookie_is_secure_when_served_over_https(server, settings_env):
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a TLS-terminating proxy on the same host).
    proxied = _post(server, session_cookie.issue_set_code("t"), headers={"X-Forwarded-Proto": "https"})
    assert "secure" in _flags(proxied)[1]
    settings_env.setenv("APP_BASE_URL", "https://broker-sync.example")
    reset_settings_cache()
    assert "secure" in _flags(_post(server, session_cookie.issue_set_code("t")))[1]


def test_cross_site_posts_and_non_json_bodies_are_refused_without_spending_the_code(server):
    code = session_cookie.issue_set_code("t")
    assert _post(server, code, headers={"Origin": "https://evil.example"}).status_code == 403
    url = f"http://127.0.0.1:{server.port}{session_cookie.ROUTE_PATH}"
    assert requests.post(url, data={"code": code}, timeout=10).status_code == 415  # a plain HTML form
    assert requests.post(f"{url}?code={code}", timeout=10).status_code == 415
    same_origin = _post(server, code, headers={"Origin": f"http://127.0.0.1:{server.port}"})
    assert same_origin.status_code == 204 and "set-cookie" in same_origin.headers


def test_the_code_and_the_token_reach_no_log_and_no_answer(server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "eyJhbGciOiJIUzI1NiJ9.secret-part.sig"
    code = session_cookie.issue_set_code(token)
    ok, replay = _post(server, code), _post(server, code)
    assert code not in caplog.text and token not in caplog.text
    assert code not in replay.text and token not in replay.text and ok.text == ""
    assert code not in repr(session_cookie.codes._grants)  # only its hash is kept (and gone once used)

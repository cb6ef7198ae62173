"""Security headers on pages, APIs and the API documentation."""

from __future__ import annotations

import re

import pytest

from sorregistry.app import create_app

PAGES = ["/", "/login", "/api/v1/health", "/api/openapi.json", "/api/docs"]


@pytest.mark.parametrize("path", PAGES)
def test_every_answer_refuses_framing_sniffing_and_foreign_scripts(client, path):
    answer = client.get(path)
    assert answer.status_code in (200, 503)
    policy = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert re.search(r"script-src 'self'( 'nonce-[^']+')?;", policy)
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "object-src 'none'" in policy and "base-uri 'none'" in policy
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "camera=()" in answer.headers["Permissions-Policy"]


def test_no_page_has_an_inline_script_without_the_nonce(client):
    docs = client.get("/api/docs")
    nonce = re.search(r"'nonce-([^']+)'", docs.headers["Content-Security-Policy"]).group(1)
    html = docs.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
    assert inline and all(f'nonce="{nonce}"' in attrs for attrs in inline)


def test_each_docs_page_has_a_nonce_of_its_own_and_other_answers_none(client):
    # The nonce is made when a page uses it; the others get headers rendered once.
    nonces = {re.search(r"'nonce-([^']+)'", client.get("/api/docs").headers[
        "Content-Security-Policy"]).group(1) for _ in range(3)}
    assert len(nonces) == 3
    answers = [client.get(path) for path in ("/api/v1/health", "/login", "/api/v1/health")]
    for answer in answers:
        assert "nonce-" not in answer.headers["Content-Security-Policy"]
    security = ("Content-Security-Policy", "X-Frame-Options", "Permissions-Policy",
                "Referrer-Policy", "X-Content-Type-Options")
    assert ({name: answers[0].headers[name] for name in security}
            == {name: answers[2].headers[name] for name in security})


def test_no_https_redirect_or_hsts_without_tls(client):
    answer = client.get("/login")
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers


def test_with_tls_the_answers_carry_hsts_and_plain_http_is_redirected(tmp_path):
    app = create_app({"TESTING": True, "FORCE_HTTPS": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'tls.db'}"})
    client = app.test_client()
    assert client.get("/login").status_code == 302  # over http: sent to https
    for _ in range(2):  # the second answer from the headers rendered for the first
        answer = client.get("/login", base_url="https://localhost")
        assert answer.status_code == 200
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        assert answer.headers["X-Frame-Options"] == "DENY"
    forwarded = client.get("/api/v1/health", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" in forwarded.headers

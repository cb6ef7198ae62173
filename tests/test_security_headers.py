"""Security headers on pages, APIs and the API documentation."""

from __future__ import annotations

import re

import pytest

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


def test_no_https_redirect_or_hsts_without_tls(client):
    answer = client.get("/login")
    assert answer.status_code == 200
    assert "Strict-Transport-Security" not in answer.headers

"""Settings of the HTTP service: every bad value is a clear error at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from scimsync.api.settings import LIMIT_CONCURRENCY, from_env
from scimsync.errors import UsageError


def test_defaults_are_safe() -> None:
    s = from_env({})
    assert s.public_url is None and s.trusted_proxies == ()
    assert s.metrics_open is False and s.metrics_names is False and s.metrics_token is None
    assert (s.header_timeout, s.keep_alive_timeout, s.limit_concurrency) == (
        10.0, 5, LIMIT_CONCURRENCY)


def test_values_are_read_and_normalised() -> None:
    s = from_env({"SCIMSYNC_PUBLIC_URL": "https://scim.example.com/base/",
                  "SCIMSYNC_TRUSTED_PROXIES": "10.0.0.0/8, ::1",
                  "SCIMSYNC_METRICS_OPEN": "1", "SCIMSYNC_LIMIT_CONCURRENCY": "0",
                  "SCIMSYNC_HEADER_TIMEOUT": "2.5"})
    assert s.public_url == "https://scim.example.com/base"
    assert s.trusts("10.1.2.3") and s.trusts("::1") and not s.trusts("192.0.2.1")
    assert not s.trusts("not-an-ip")
    assert s.metrics_open and s.limit_concurrency is None and s.header_timeout == 2.5


@pytest.mark.parametrize(("name", "value"), [
    ("SCIMSYNC_PUBLIC_URL", "scim.example.com"),
    ("SCIMSYNC_PUBLIC_URL", "ftp://scim.example.com"),
    ("SCIMSYNC_PUBLIC_URL", "https://scim.example.com/?x=1"),
    ("SCIMSYNC_PUBLIC_URL", "https://user:pw@scim.example.com"),
    ("SCIMSYNC_TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
    ("SCIMSYNC_METRICS_OPEN", "maybe"),
    ("SCIMSYNC_HEADER_TIMEOUT", "0"),
    ("SCIMSYNC_HEADER_TIMEOUT", "soon"),
    ("SCIMSYNC_LIMIT_CONCURRENCY", "-5"),
])
def test_bad_values_are_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name):
        from_env({name: value})


def test_serve_refuses_a_bad_flag_before_listening(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "scimsync.cli", "serve", "--public-url",
                           "not a url", "--database", f"sqlite:///{tmp_path / 'x.db'}"],
                          capture_output=True, text=True, timeout=60, check=False,
                          env=dict(os.environ))
    assert proc.returncode == 2 and "SCIMSYNC_PUBLIC_URL" in proc.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was touched

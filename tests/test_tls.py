"""TLS: the service speaks TLS 1.2 and 1.3 and refuses 1.0 and 1.1, under `cds serve` and under gunicorn.

The self-signed certificate is the `certificate` fixture (conftest.py)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from . import servers

BIN = Path(sys.executable).parent
# offering TLS 1.0/1.1 is the point of the refusal tests; Python warns that those versions are deprecated
pytestmark = pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")


def handshake(port: int, version: ssl.TLSVersion, cafile: Path) -> str:
    """The protocol negotiated when the client offers exactly ``version``; raises when the server refuses it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile)
    context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client is willing: only the server can refuse
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert tls.recv(64).startswith(b"HTTP/1.1 200"), "a health answer over TLS"
        return tls.version()


def check_versions(port: int, cafile: Path) -> None:
    assert handshake(port, ssl.TLSVersion.TLSv1_2, cafile) == "TLSv1.2"
    assert handshake(port, ssl.TLSVersion.TLSv1_3, cafile) == "TLSv1.3"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            handshake(port, old, cafile)


def _env(tmp_path: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CDS_")} | {
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'tls.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",
    }


def _run(args: list[str], tmp_path: Path, port: int):
    process = subprocess.Popen(args, env=_env(tmp_path), cwd=tmp_path, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        servers.wait_port(port)
        return process
    except BaseException:
        process.kill()
        raise


def test_cds_serve_speaks_tls_1_2_and_1_3_only(certificate, tmp_path):
    certfile, keyfile = certificate
    port = servers.free_port()
    process = _run(
        [str(BIN / "cds"), "serve", "--port", str(port), "--certfile", str(certfile), "--keyfile", str(keyfile)],
        tmp_path,
        port,
    )
    try:
        check_versions(port, certfile)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_gunicorn_with_the_production_settings_speaks_tls_1_2_and_1_3_only(certificate, tmp_path):
    certfile, keyfile = certificate
    port = servers.free_port()
    process = _run(
        [str(BIN / "gunicorn"), "-c", "python:cds.gunicorn_conf", "cds.wsgi:app", "--workers", "1",
         "--bind", f"127.0.0.1:{port}", "--certfile", str(certfile), "--keyfile", str(keyfile)],
        tmp_path,
        port,
    )  # fmt: skip
    try:
        check_versions(port, certfile)
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_missing_certificate_is_one_line_not_a_traceback(tmp_path):
    done = subprocess.run(
        [str(BIN / "cds"), "serve", "--certfile", str(tmp_path / "no.pem"), "--keyfile", str(tmp_path / "no.key")],
        env=_env(tmp_path), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().endswith("--certfile: " + str(tmp_path / "no.pem") + " is not a readable file")
    assert "Traceback" not in done.stderr

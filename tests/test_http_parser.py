"""Requests the HTTP server refuses before the app sees them: a URL or header line past the server's limit, a
malformed request line. Both servers we ship (`cds serve`, which `make run` starts, and gunicorn with
`cds.gunicorn_conf`) answer them with the status and an OperationOutcome, not an HTML page quoting the input,
and log neither the request line's query (patient ids) nor a header's value (tokens)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import requests

from . import servers

CDS = str(Path(sys.executable).with_name("cds"))
SECRET = "pat-SECRET"


def raw(port: int, request: bytes) -> tuple[str, dict]:
    """The status line and headers, and the JSON body, of one request written byte for byte."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), json.loads(body)


def refused(port: int, request: bytes, status: str, issue: str = "structure") -> None:
    head, body = raw(port, request)
    assert head.startswith(f"HTTP/1.1 {status} "), head
    assert "Content-Type: application/fhir+json" in head, head
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == issue, body
    assert SECRET not in json.dumps(body) and "Bearer" not in json.dumps(body)


def test_cds_serve_answers_what_its_parser_refuses_with_an_operation_outcome_and_logs_no_query(tmp_path):
    port = servers.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDS_")}
    with open(tmp_path / "server.log", "w") as log:
        process = subprocess.Popen([CDS, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=log, stderr=log)
    try:
        servers.wait_ready(f"http://127.0.0.1:{port}", process)
        searched = requests.get(f"http://127.0.0.1:{port}/fhir/QuestionnaireResponse?patient={SECRET}-1", timeout=5)
        assert searched.status_code in (200, 404)
        typed = requests.post(f"http://127.0.0.1:{port}/cds-services/{SECRET}-5", json={}, timeout=5)
        assert typed.status_code == 404  # a service name the caller typed, logged as the route it matched
        assert requests.get(f"http://127.0.0.1:{port}/{SECRET}-6", timeout=5).status_code == 404
        assert requests.get(f"http://127.0.0.1:{port}/cds-services", timeout=5).status_code == 200
        ours = requests.post(f"http://127.0.0.1:{port}/cds-services/cpt64580-order-sign", json={}, timeout=5)
        assert ours.status_code == 400
        assert requests.request(f"{SECRET}7", f"http://127.0.0.1:{port}/cds-services", timeout=5).status_code == 405
        assert requests.get(f"http://127.0.0.1:{port}/cds-services/cpt64580-order-sign", timeout=5).status_code == 405
        raw(port, f"GET http://{SECRET}-8/cds-services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        long_url = f"GET /cds-services?patient={SECRET}-2&x=".encode() + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        refused(port, long_url, "414", "too-costly")
        long_header = f"GET /x?patient={SECRET}-3 HTTP/1.1\r\nHost: x\r\nX-Pad: ".encode() + b"a" * 70_000
        refused(port, long_header + b"\r\n\r\n", "431", "too-costly")
        refused(port, f"GET /x?patient={SECRET}-4 HTTP/1.1x\r\nHost: x\r\n\r\n".encode(), "400")
    finally:
        process.terminate()
        process.wait(timeout=10)
    logged = (tmp_path / "server.log").read_text()
    lines = logged.replace('\\"', '"')  # the JSON log escapes the request line's quotes
    assert '"POST /cds-services/<service_id>" 404' in lines and '"GET (no route)" 404' in lines, logged
    assert '"GET /cds-services" 200' in lines and '"POST /cds-services/cpt64580-order-sign" 400' in lines
    assert '"(other) /cds-services" 405' in lines, logged  # a method is typed text too
    assert '"GET /cds-services/cpt64580-order-sign" 405' in lines  # a route, called with another method
    assert lines.count('"GET /cds-services" 200') == 2  # the absolute form names its path, not its host
    assert SECRET not in logged and "aaaaaaaa" not in logged


def test_gunicorn_answers_what_its_parser_refuses_with_an_operation_outcome_and_logs_no_request_text(tmp_path):
    port = servers.free_port()
    with servers.gunicorn(tmp_path, port, {"CDS_DATABASE_URL": f"sqlite:///{tmp_path}/a.sqlite3"}, "prod"):
        refused(port, f"GET /x?patient={SECRET}-1\r\nHost: x\r\n\r\n".encode(), "400")  # no HTTP version
        refused(port, f"GET  /x?patient={SECRET}-2 HTTP/1.1\r\n\r\n".encode(), "400")
        long_url = f"GET /x?patient={SECRET}-3&".encode() + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        refused(port, long_url, "414", "too-costly")
        bad_header = f"GET /x HTTP/1.1\r\nHost: x\r\nAuthorization Bearer: eyJ{SECRET}-4\r\n\r\n".encode()
        refused(port, bad_header, "400")
        post = b"POST /cds-services/cpt64580-order-sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        chunked = post + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        for broken in (b"ZZ\r\n{}\r\n0\r\n\r\n", b"2\r\n{}XX0\r\n\r\n"):  # no chunk size; no CRLF after one
            head, body = raw(port, chunked + broken)  # read by the app, where gunicorn raised: a 500
            assert head.startswith("HTTP/1.1 400 "), head
            assert body["resourceType"] == "OperationOutcome" and "could not be read" in json.dumps(body)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200  # still serving
    logged = (tmp_path / "prod.log").read_text()
    assert logged.count("Invalid request from ip=127.0.0.1: ") == 4, logged
    assert "Invalid HTTP request line" in logged and "Request Line is too large" in logged
    assert SECRET not in logged and "eyJ" not in logged and "aaaaaaaa" not in logged


def test_each_refusal_gets_the_fhir_issue_type_of_its_status():
    """gunicorn also writes its own 500, 501 and 403 through the same function: not all are 'structure'."""
    from cds.errors import refused_by_parser

    expected = {400: "structure", 403: "forbidden", 414: "too-costly", 431: "too-costly", 500: "exception"}
    expected[501] = "not-supported"
    for status, issue in expected.items():
        body = json.loads(refused_by_parser(status, "Phrase"))
        assert body["issue"][0]["code"] == issue and body["issue"][0]["diagnostics"] == f"HTTP {status} phrase"

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cds import create_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def make_app(tmp_path):
    """An app factory on a fresh SQLite file; tests override any setting."""

    def make(**overrides):
        config = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}", "HOOK_DEADLINE": 3.0}
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def realdata() -> Path:
    path = Path(os.environ.get("CDS_REALDATA", ROOT.parent / "shared" / "realdata"))
    if not path.is_dir():
        pytest.skip(f"real example data not found at {path} (set CDS_REALDATA)")
    return path


@pytest.fixture(scope="session")
def ehr_server():
    """A real FHIR-ish HTTP server on loopback (threaded, so slow handlers do not block the others)."""
    from pytest_httpserver import HTTPServer

    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def ehr(ehr_server):
    ehr_server.clear()
    ehr_server.clear_all_handlers()
    yield ehr_server
    ehr_server.clear()
    ehr_server.clear_all_handlers()

"""The WSGI entry point for gunicorn: ``gunicorn -c python:cds.gunicorn_conf cds.wsgi:app``.

A configuration or policy mistake ends the process with one line naming it, never a traceback. The gunicorn
settings module checks it once in the master before any worker starts (two workers failing together made gunicorn
print its own traceback); a worker that still fails exits with gunicorn's boot-error code.
"""

from __future__ import annotations

import sys

from flask import Flask

from cds import create_app
from cds.config import ConfigError
from cds.policies import PolicyError

WORKER_BOOT_ERROR = 3


def load() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        print(f"cds: configuration error: {exc}", file=sys.stderr, flush=True)
    except PolicyError as exc:
        print(f"cds: policy error: {exc}", file=sys.stderr, flush=True)
    sys.exit(WORKER_BOOT_ERROR)


app = load()

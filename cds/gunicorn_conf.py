"""gunicorn settings for production (``-c python:cds.gunicorn_conf``): check the configuration in the master.

Without it, every worker loads the app on its own; with two workers a configuration mistake made them fail
together and gunicorn printed a traceback of its own. Here the app is built once before forking, its mistakes are
one line (``cds.wsgi.load``), and the throw-away app's database connections are closed so no worker inherits them.
"""

from __future__ import annotations


def on_starting(server) -> None:  # gunicorn's hook signature
    import sys

    sys.modules.pop("cds.wsgi", None)  # the workers import it afresh after the fork
    from cds import wsgi

    wsgi.app.extensions["cds.engine"].dispose()
    sys.modules.pop("cds.wsgi", None)


def worker_exit(server, worker) -> None:  # gunicorn's hook signature
    """Commit the audit rows a stopping worker still holds (a graceful shutdown loses none)."""
    import sys

    module = sys.modules.get("cds.wsgi")
    if module is not None:
        module.app.extensions["cds.audit"].close()


def ssl_context(conf, default_ssl_context_factory):  # gunicorn's hook: used when --certfile/--keyfile are given
    """TLS 1.2 or later, nothing older (see cds.tls)."""
    from cds import tls

    return tls.harden(default_ssl_context_factory())

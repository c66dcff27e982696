"""gunicorn settings for production (``-c python:cds.gunicorn_conf``): check the configuration in the master.

Without it, every worker loads the app on its own; with two workers a configuration mistake made them fail
together and gunicorn printed a traceback of its own. Here the app is built once before forking, its mistakes are
one line (``cds.wsgi.load``), and the throw-away app's database connections are closed so no worker inherits them.

A request gunicorn's own parser refuses (a malformed request line, a URL or header line too long) never reaches
the app: gunicorn answers it with an HTML page quoting the input and logs the line whole at WARNING, query string
included (``?patient=…``). :func:`on_starting` makes both this service's: an OperationOutcome with gunicorn's status
and phrase, and a log line that names the kind of error, not its text. Every worker type (sync, gthread) calls
``gunicorn.util.write_error`` for these, so that is the one place replaced.
"""

from __future__ import annotations

import logging
import re

_REFUSED = re.compile(r"^(Invalid request from ip=\S*: [^:'(]*)")  # an IPv6 address has colons of its own


class _RefusalRedaction(logging.Filter):
    """gunicorn's error log without the text of what a caller sent: the kind of refusal stays, the line goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if (found := _REFUSED.match(message)) is not None:
            record.msg, record.args = found.group(1).rstrip(), ()
        elif message.startswith("Error handling request"):  # gunicorn adds the method and URI
            record.msg, record.args = "Error handling request", ()
        return True


def _write_refusal(sock, status_int: int, reason: str, _mesg: str) -> None:
    from gunicorn import util

    from cds.errors import refused_by_parser

    body = refused_by_parser(status_int, reason)
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/fhir+json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin-1") + body)


def on_starting(server) -> None:  # gunicorn's hook signature
    import sys

    from gunicorn import util

    util.write_error = _write_refusal  # inherited by every worker, forked after this
    logging.getLogger("gunicorn.error").addFilter(_RefusalRedaction())

    sys.modules.pop("cds.wsgi", None)  # the workers import it afresh after the fork
    from cds import wsgi

    wsgi.app.extensions["cds.engine"].dispose()
    sys.modules.pop("cds.wsgi", None)
    from cds import audit

    audit.share_between_workers()  # after the master's own app: only workers take a slot


def child_exit(server, worker) -> None:  # gunicorn's hook signature, in the master
    """A worker that is gone (stopped, or killed with rows pending) holds no feedback back (cds.audit.Peers)."""
    from cds import audit

    audit.worker_gone(worker.pid)


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

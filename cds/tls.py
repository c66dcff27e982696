"""TLS for the service itself: TLS 1.2 or later, nothing older (CRD requires TLS; HL7's Inferno kit checks it).

``cds serve --certfile F --keyfile F`` uses :func:`server_context`; under gunicorn, ``cds.gunicorn_conf`` applies
:func:`harden` to the context gunicorn builds from ``--certfile``/``--keyfile``. Behind a proxy that terminates
TLS (deploy/nginx.conf) the proxy holds the same floor.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cds.config import ConfigError


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """TLS 1.2 at least, no compression, the server's cipher order."""
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(certfile: str | Path, keyfile: str | Path) -> ssl.SSLContext:
    """A server context from a PEM certificate (chain) and key; one clear line when they cannot be used."""
    for option, path in (("--certfile", certfile), ("--keyfile", keyfile)):
        if not Path(path).is_file():
            raise ConfigError(f"{option}: {path} is not a readable file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(certfile), str(keyfile))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"--certfile/--keyfile: the certificate and key cannot be used ({exc.__class__.__name__})"
        ) from None
    return harden(context)

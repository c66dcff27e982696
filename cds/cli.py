"""The ``cds`` command: ``cds serve`` runs the service (Flask's server; production runs gunicorn, see README)."""

from __future__ import annotations

import argparse
import sys

from cds.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds", description="CDS Hooks service for CPT 64580")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CDS Hooks endpoints (development server)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args.host, args.port)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


def _serve(host: str, port: int) -> int:
    from cds import create_app

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"cds: configuration error: {exc}", file=sys.stderr)
        return 2
    print(f"CDS Hooks service for CPT 64580 on http://{host}:{port}/cds-services", file=sys.stderr)
    app.run(host=host, port=port, threaded=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

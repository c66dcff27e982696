"""The ``cds`` command: ``cds serve`` runs the service (Flask's server; production runs gunicorn, see README)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cds.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cds", description="CDS Hooks service for CPT 64580")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CDS Hooks endpoints (development server)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    mpfs = commands.add_parser("mpfs", help="Medicare fee-schedule indicators for 64580")
    mpfs_commands = mpfs.add_subparsers(dest="mpfs_command", required=True)
    mpfs_import = mpfs_commands.add_parser("import", help="load indicators from a CMS PPRRVU relative value CSV")
    mpfs_import.add_argument("file", type=Path)
    mpfs_import.add_argument("--out", type=Path, default=None, help="data file to write (default: the package's)")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return _serve(args.host, args.port)
    if args.command == "mpfs":
        return _mpfs_import(args.file, args.out)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


def _mpfs_import(path: Path, out: Path | None) -> int:
    from cds import mpfs

    try:
        indicators = mpfs.read_pprrvu(path)
    except OSError as exc:
        print(f"cds mpfs import: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except mpfs.MPFSFileError as exc:
        print(f"cds mpfs import: {exc.diagnostics}", file=sys.stderr)
        return 2
    target = out or mpfs.DATA_FILE
    mpfs.save_indicators(indicators, target)
    print(
        f"CPT {indicators.code} from {path.name}: global {indicators.global_days}, co-surgeon {indicators.co_surg}, "
        f"assistant {indicators.asst_surg}, team {indicators.team_surg}, bilateral {indicators.bilat_surg}, "
        f"multiple procedure {indicators.mult_proc} -> {target}"
    )
    return 0


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

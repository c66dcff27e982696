"""The ``cds`` command: ``cds serve`` runs the service (Flask's server; production runs gunicorn, see README)."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
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
    check = commands.add_parser("policies", help="payer policy files")
    check_commands = check.add_subparsers(dest="policies_command", required=True)
    check_cmd = check_commands.add_parser("check", help="validate policy files and print a summary table")
    check_cmd.add_argument("directory", nargs="?", type=Path, default=None)
    check_cmd.add_argument("--as-of", type=_date, default=None, help="show the versions in force on this date")
    args = parser.parse_args(argv)

    if args.command == "policies":
        return _policies_check(args.directory, args.as_of)
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


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _policies_check(directory: Path | None, as_of: date | None) -> int:
    from cds import policies

    try:
        policy_set = policies.load(directory)
    except policies.PolicyError as exc:
        print(f"cds policies check: {exc}", file=sys.stderr)
        return 1
    as_of = as_of or datetime.now(UTC).date()
    rows = [("plan", "file", "effective", "reviewed", "pain", "neuromuscular", "prior auth", "criteria", "secondary")]
    for plan in policy_set.plans:
        version = plan.version_at(as_of)
        if version is None:
            rows.append((plan.id, plan.file, f"none by {as_of}", "", "", "", "", "", ""))
            continue
        secondary = sum(c.confidence == "secondary" for c in version.criteria)
        rows.append(
            (
                plan.id + (" (default)" if plan.default else ""),
                plan.file,
                version.effective_text,
                version.last_reviewed,
                version.coverage["pain"].value,
                version.coverage["neuromuscular"].value,
                version.prior_authorization.value,
                str(len(version.criteria)),
                str(secondary),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(policy_set.plans)} plans in {len(set(p.file for p in policy_set.plans))} files valid (as of {as_of})")
    return 0


def _serve(host: str, port: int) -> int:
    from cds import create_app
    from cds.policies import PolicyError

    try:
        app = create_app()
    except ConfigError as exc:
        print(f"cds: configuration error: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"cds: policy error: {exc}", file=sys.stderr)
        return 2
    print(f"CDS Hooks service for CPT 64580 on http://{host}:{port}/cds-services", file=sys.stderr)
    app.run(host=host, port=port, threaded=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

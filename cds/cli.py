"""The ``cds`` command: ``cds serve`` runs the service (Flask's server; production runs gunicorn, see docs/operations.md)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from cds.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """Every command and option; the docs' command lines are checked against it, so they stay true."""
    parser = argparse.ArgumentParser(prog="cds", description="CDS Hooks service for CPT 64580")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CDS Hooks endpoints (development server)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--certfile", type=Path, default=None, help="serve HTTPS (TLS 1.2+) with this PEM certificate")
    serve.add_argument("--keyfile", type=Path, default=None, help="the certificate's PEM private key")
    mpfs = commands.add_parser("mpfs", help="Medicare fee-schedule indicators for 64580")
    mpfs_commands = mpfs.add_subparsers(dest="mpfs_command", required=True)
    mpfs_import = mpfs_commands.add_parser(
        "import", help="keep a release's indicators from a CMS PPRRVU relative value CSV, as dated data"
    )
    mpfs_import.add_argument("file", type=Path, help="the PPRRVU*.csv exactly as CMS ships it")
    mpfs_import.add_argument(
        "--out", type=Path, default=None, help="folder to write RVUyyX.json in (default: the package's)"
    )
    mpfs_import.add_argument(
        "--codes", type=_codes, default=None, help="comma-separated codes to keep (default: the neurostimulator family)"
    )
    mpfs_import.add_argument(
        "--read-from", default=None, help="where this copy of the CMS file came from (kept as provenance)"
    )
    mpfs_show = mpfs_commands.add_parser("show", help="print a code's indicators in the release in force on a date")
    mpfs_show.add_argument("code")
    mpfs_show.add_argument("--as-of", type=_date, default=None, help="the date of service (default: today)")
    mpfs_show.add_argument("--json", action="store_true", help="print one JSON object")
    mpfs_show.add_argument("--data", type=Path, default=None, help="folder of release files (default: the package's)")
    check = commands.add_parser("policies", help="payer policy files")
    check_commands = check.add_subparsers(dest="policies_command", required=True)
    check_cmd = check_commands.add_parser("check", help="validate policy files and print a summary table")
    check_cmd.add_argument("directory", nargs="?", type=Path, default=None)
    check_cmd.add_argument("--as-of", type=_date, default=None, help="show the versions in force on this date")
    sources_cmd = check_commands.add_parser("sources", help="list every sourced fact: plan, version, field, source")
    sources_cmd.add_argument("directory", nargs="?", type=Path, default=None)
    sources_cmd.add_argument("--json", action="store_true", help="print a JSON list")
    replay = commands.add_parser(
        "replay", help="replay fixture cases, Bundles or hook requests and compare with expected.json"
    )
    replay.add_argument("paths", nargs="+", type=Path, help="case folders, folders of cases, Bundles or requests")
    replay.add_argument("--json", action="store_true", help="print results as JSON")
    replay.add_argument("--url", help="send the requests to a running service at this base URL")
    replay.add_argument("--fhir", action="store_true", help="serve the Bundle as a FHIR server and send no prefetch")
    replay.add_argument("--as-of", type=_date, default=None, help="evaluate as of this date")
    replay.add_argument("--payer", help="replace the payer of every active Coverage with this name")
    replay.add_argument("--record", action="store_true", help="write each actual outcome as the new expected.json")
    replay.add_argument("--cards", action="store_true", help="print the cards of every case, not only of a single one")
    replay.add_argument(
        "--expect", action="store_true", help="with --payer, still compare with expected.json (default: report only)"
    )
    replay.add_argument("--junit", type=Path, default=None, help="also write a JUnit XML report to this file")
    replay.add_argument(
        "--emit-request",
        action="store_true",
        help="print the hook request the case builds (complete, no FHIR server needed) instead of running it",
    )
    replay.add_argument(
        "--policies",
        type=Path,
        default=None,
        help="payer policy folder to judge with, in-process (default: CDS_POLICY_DIR, else the package's)",
    )
    conformance = commands.add_parser(
        "conformance", help="Inferno-style CRD server checks against a running service (exit 1 when one fails)"
    )
    conformance.add_argument("url", help="the CRD server's base URL, e.g. https://127.0.0.1:8443")
    conformance.add_argument(
        "--hooks", type=_hook_list, default=("order-sign", "order-select"), help="comma-separated hooks to call"
    )
    conformance.add_argument("--cafile", default=None, help="PEM certificate(s) to trust for a private TLS server")
    conformance.add_argument("--json", action="store_true", help="print the checks as JSON")
    database = commands.add_parser("db", help="the feedback and audit database")
    database_commands = database.add_subparsers(dest="db_command", required=True)
    database_commands.add_parser("upgrade", help="apply schema migrations (CDS_DATABASE_URL)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `cds policies sources | head`: the reader stopped; no traceback for what it skipped
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more reaches the closed pipe
        return 141  # 128 + SIGPIPE, as a shell reports a command stopped by it


def _run(args: argparse.Namespace) -> int:
    if args.command == "db":
        return _db_upgrade()
    if args.command == "replay":
        return _replay(args)
    if args.command == "conformance":
        return _conformance(args)
    if args.command == "policies":
        if args.policies_command == "sources":
            return _policies_sources(args.directory, args.json)
        return _policies_check(args.directory, args.as_of)
    if args.command == "serve":
        return _serve(args.host, args.port, args.certfile, args.keyfile)
    if args.command == "mpfs":
        return _mpfs_import(args) if args.mpfs_command == "import" else _mpfs_show(args)
    return 2  # pragma: no cover  (argparse rejects unknown commands)


def _hook_list(raw: str) -> tuple[str, ...]:
    hooks = tuple(h.strip() for h in raw.split(",") if h.strip())
    if not hooks:
        raise argparse.ArgumentTypeError("name at least one hook, e.g. order-sign")
    return hooks


def _conformance(args: argparse.Namespace) -> int:
    from cds import conformance

    if args.cafile is not None and not Path(args.cafile).is_file():
        print(f"cds conformance: --cafile {args.cafile} is not a readable file", file=sys.stderr)
        return 2
    report = conformance.run(args.url, args.hooks, args.cafile)
    print(report.json() if args.json else report.table())
    return 0 if report.ok else 1


def _mpfs_import(args: argparse.Namespace) -> int:
    from cds import mpfs

    try:
        release = mpfs.read_pprrvu(args.file, args.codes or mpfs.FAMILY, read_from=args.read_from)
    except OSError as exc:
        print(f"cds mpfs import: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except mpfs.MPFSFileError as exc:
        print(f"cds mpfs import: {exc.diagnostics}", file=sys.stderr)
        return 2
    try:
        target = mpfs.save(release, args.out or mpfs.DATA_DIR)
    except OSError as exc:
        print(f"cds mpfs import: cannot write to {args.out or mpfs.DATA_DIR}: {exc.strerror}", file=sys.stderr)
        return 2
    print(
        f"{release.release} ({release.title}, released {release.released}, in force from {release.effective}): "
        f"{len(release.codes)} codes -> {target}"
    )
    for code in sorted(release.codes):
        print("  " + _indicator_line(release.indicators(code)))
    return 0


def _mpfs_show(args: argparse.Namespace) -> int:
    import json

    from cds import mpfs

    try:
        schedule = mpfs.load(args.data or mpfs.DATA_DIR)
    except mpfs.MPFSFileError as exc:
        print(f"cds mpfs show: {exc.diagnostics}", file=sys.stderr)
        return 2
    as_of = args.as_of or datetime.now(UTC).date()
    indicators = schedule.indicators(args.code.strip(), as_of)
    if indicators is None:
        print(f"cds mpfs show: {schedule.explain_missing(args.code.strip(), as_of)}", file=sys.stderr)
        return 1
    print(json.dumps(indicators.to_json(), indent=2) if args.json else _indicator_line(indicators, verbose=True))
    return 0


def _indicator_line(i, verbose: bool = False) -> str:
    line = (
        f"CPT {i.code}: status {i.status_code}, global {i.glob_days}, multiple procedure {i.mult_proc}, "
        f"bilateral {i.bilat_surg}, assistant {i.asst_surg}, co-surgeons {i.co_surg}, team {i.team_surg}"
    )
    if verbose:
        line += f"\n{i.release}, released {i.released}, in force from {i.effective}\nsource: {i.source}"
    return line


def _codes(text: str) -> tuple[str, ...]:
    found = tuple(c.strip().upper() for c in text.split(",") if c.strip())
    if not found or not all(len(c) == 5 and c.isalnum() for c in found):
        raise argparse.ArgumentTypeError(f"not a comma-separated list of 5-character codes: {text!r}")
    return found


def _allowed_from_env() -> tuple[str, ...]:
    """CDS_FHIR_ALLOWED_SERVERS (a JSON list or comma-separated): where a replayed request may send its token."""
    import json
    import os

    raw = os.environ.get("CDS_FHIR_ALLOWED_SERVERS", "")
    try:
        value = json.loads(raw) if raw.strip().startswith("[") else raw.split(",")
    except ValueError:
        value = []
    return tuple(v.strip() for v in value if isinstance(v, str) and v.strip() and v.strip() != "*")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


SOURCE_KEYS = ("plan", "version", "field", "kind", "url", "quote", "retrieved")


def _policies_sources(directory: Path | None, as_json: bool) -> int:
    """Every sourced fact, one per line (or a JSON list with exactly SOURCE_KEYS)."""
    import json

    from cds import policies

    try:
        policy_set = policies.load(directory)
    except policies.PolicyError as exc:
        print(f"cds policies sources: {exc}", file=sys.stderr)
        return 1
    rows = [
        {
            "plan": fact.plan,
            "version": fact.version,
            "field": fact.field,
            "kind": s.kind,
            "url": s.url,
            "quote": s.quote,
            "retrieved": s.retrieved,
        }
        for fact in policy_set.facts()
        for s in fact.sources
    ]
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for row in rows:
        print("\t".join(row[k] for k in SOURCE_KEYS))
    return 0


def _policies_check(directory: Path | None, as_of: date | None) -> int:
    from cds import policies
    from cds.rules import windows

    try:
        policy_set = policies.load(directory)
    except policies.PolicyError as exc:
        print(f"cds policies check: {exc}", file=sys.stderr)
        return 1
    as_of = as_of or datetime.now(UTC).date()
    rows = [
        ("plan", "file", "effective", "reviewed", "pain", "neuromuscular", "prior auth", "criteria", "secondary",
         "assumed windows")
    ]  # fmt: skip
    for plan in policy_set.plans:
        version = plan.version_at(as_of)
        if version is None:
            rows.append((plan.id, plan.file, f"none by {as_of}", "", "", "", "", "", "", ""))
            continue
        secondary = sum(c.confidence == "secondary" for c in version.criteria)
        # windows no primary quote states: therapy older than them is unknown, never a warning (cds.rules.windows)
        assumed = [f"{c.id} {months}m" for c in version.criteria if (months := windows.assumed(c)) is not None]
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
                ", ".join(assumed) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(policy_set.plans)} plans in {len(set(p.file for p in policy_set.plans))} files valid (as of {as_of})")
    return 0


def _emit_request(args: argparse.Namespace, cases: list) -> int:
    """One case's request on stdout, ready for ``curl -d @file``; the curl line itself on stderr."""
    import orjson

    from cds import fixtures, replay

    clashing = [f for f, on in (("--url", args.url), ("--fhir", args.fhir), ("--record", args.record)) if on]
    if clashing or args.junit:
        print(
            f"cds replay: --emit-request prints the request; it runs nothing ({', '.join(clashing) or '--junit'})",
            file=sys.stderr,
        )
        return 2
    if len(cases) != 1:
        print(f"cds replay: --emit-request takes one case; {len(cases)} were found", file=sys.stderr)
        return 2
    options = replay.Options(as_of=args.as_of.isoformat() if args.as_of else None, payer=args.payer)
    try:
        body = replay.standalone_request(cases[0], options)
    except fixtures.CaseError as exc:
        print(f"cds replay: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")
    # a complete request for a hook we do not serve: still printed, to be sent anywhere
    service = replay.service_for(body.get("hook")) or "<service-id>"
    print(
        "# send it: curl -X POST -H 'Content-Type: application/json' --data-binary @request.json "
        f"http://127.0.0.1:8080/cds-services/{service}",
        file=sys.stderr,
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    import dataclasses
    import datetime
    import json
    import os

    from cds import fixtures, policies, replay

    try:
        cases = fixtures.discover(args.paths)
    except fixtures.CaseError as exc:
        print(f"cds replay: {exc}", file=sys.stderr)
        return 2
    if not cases:
        print("cds replay: no cases found", file=sys.stderr)
        return 2
    policy_dir = args.policies or os.environ.get("CDS_POLICY_DIR") or None
    if policy_dir is not None or not args.url:  # in-process, the shipped files too: an analyst edits them in place
        try:
            policies.load(policy_dir)  # a broken edit is one clear line before any case runs
        except policies.PolicyError as exc:
            print(f"cds replay: policy error: {exc}", file=sys.stderr)
            return 2
        if args.url:
            print(
                "cds replay: --policies is used in-process only; the service at --url judges with its own",
                file=sys.stderr,
            )
    if args.emit_request:
        return _emit_request(args, cases)
    options = replay.Options(
        url=args.url,
        fhir=args.fhir,
        as_of=args.as_of.isoformat() if args.as_of else None,
        payer=args.payer,
        fhir_allowed=_allowed_from_env(),
        policy_dir=str(policy_dir) if policy_dir is not None else None,
        expect=args.expect,
    )
    results = []
    for case in cases:
        bare_bundle = case.request is None and case.path.is_file()
        dated = options
        if args.record and bare_bundle and not (options.as_of or case.spec.get("as_of")):
            # record the date the outcome holds for: a later replay on another day would judge differently
            dated = dataclasses.replace(options, as_of=datetime.date.today().isoformat())
        try:
            result = replay.run(case, dated)
        except fixtures.CaseError as exc:
            print(f"cds replay: {exc}", file=sys.stderr)
            return 2
        except OSError as exc:  # the --url service is not reachable
            print(f"cds replay: {case.name}: cannot reach the service ({exc.__class__.__name__})", file=sys.stderr)
            return 2
        results.append(result)
        if args.record:
            target = case.expected_path
            if target.is_symlink() or (target.exists() and not target.is_file()):
                # never follow a link (a dangling one would create its target anywhere)
                print(f"cds replay: {target.name} in {case.name} is not a plain file; not recorded", file=sys.stderr)
                return 2
            recorded = dict(result.outcome)
            if bare_bundle:
                recorded = {
                    "status": recorded.pop("status"),
                    "as_of": dated.as_of or case.spec.get("as_of"),
                    **recorded,
                }
            target.write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
        if not args.json:
            if args.cards or len(cases) == 1:
                print(replay.render(result))
            mark = {"passed": "PASS", "failed": "FAIL", "ran": "RAN "}[result.verdict]
            notes = "" if len(cases) == 1 or args.cards else "".join(f" ({n})" for n in result.notes)
            print(f"{mark} {case.name}" + (" (recorded)" if args.record else "") + notes)
            if result.diff:
                print(result.diff)
    if args.junit:
        try:
            args.junit.write_bytes(replay.junit(results))
        except OSError as exc:
            print(f"cds replay: cannot write {args.junit} ({exc.strerror})", file=sys.stderr)
            return 2
    passed = sum(r.verdict == "passed" for r in results)
    failed = sum(r.verdict == "failed" for r in results)
    unchecked = sum(r.verdict == "ran" for r in results)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "case": r.case.name,
                        "path": str(r.case.path),
                        "status": r.status,
                        "verdict": r.verdict,
                        "outcome": r.outcome,
                        "response": r.response,
                        "notes": r.notes,
                    }
                    for r in results
                ],
                indent=2,
            )
        )
    else:
        print(f"{passed} passed, {failed} failed" + (f", {unchecked} skipped" if unchecked else ""))
    return 1 if failed and not args.record else 0


def _db_upgrade() -> int:
    import os

    from sqlalchemy.exc import SQLAlchemyError

    from cds import db
    from cds.config import default_database_url

    url = os.environ.get("CDS_DATABASE_URL") or default_database_url()
    try:
        db.upgrade(db.engine_for(url))
    except SQLAlchemyError as exc:
        print(f"cds db upgrade: {exc.__class__.__name__}: the database could not be migrated", file=sys.stderr)
        return 1
    print("database schema is up to date")
    return 0


def _serve(host: str, port: int, certfile: Path | None = None, keyfile: Path | None = None) -> int:
    from cds import create_app, devserver, tls
    from cds.policies import PolicyError

    context = None
    try:
        if (certfile is None) != (keyfile is None):
            raise ConfigError("--certfile and --keyfile go together")
        if certfile is not None and keyfile is not None:
            context = tls.server_context(certfile, keyfile)
        scheme = "https" if context else "http"
        # Where this server is reached, for our questionnaires' canonicals and the form link, unless configured.
        # Never with JWT checks on: there the audience must be set on purpose (create_app refuses to start without).
        default = {}
        if not os.environ.get("CDS_PUBLIC_BASE_URL") and not os.environ.get("CDS_TRUSTED_CLIENTS"):
            reached = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison, no bind
            reached = f"[{reached}]" if ":" in reached else reached
            default = {"PUBLIC_BASE_URL": f"{scheme}://{reached}:{port}"}
        app = create_app(default)
    except ConfigError as exc:
        print(f"cds: configuration error: {exc}", file=sys.stderr)
        return 2
    except PolicyError as exc:
        print(f"cds: policy error: {exc}", file=sys.stderr)
        return 2
    print(f"CDS Hooks service for CPT 64580 on {scheme}://{host}:{port}/cds-services", file=sys.stderr)
    app.run(host=host, port=port, threaded=True, ssl_context=context, request_handler=devserver.RequestHandler)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

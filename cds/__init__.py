"""CDS Hooks 2.0 / Da Vinci CRD service for CPT 64580. ``create_app`` is the Flask application factory."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from cds import api, db, dtr, health, logs, metrics, policies, questionnaires, trust
from cds.audit import AuditLog, RefusalLimiter
from cds.config import DEFAULTS, ConfigError, Settings, check
from cds.errors import INTERNAL_ERROR, CDSError, operation_outcome
from cds.feedback import FeedbackStore
from cds.replaystore import DatabaseReplayStore

log = logging.getLogger("cds")

_HTTP_ISSUES = {
    404: ("not-found", "no such endpoint; GET /cds-services lists the services"),
    405: ("not-supported", "this endpoint does not support that HTTP method"),
    413: ("too-costly", "the request body is larger than this service accepts"),
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("CDS")
    if test_config:
        app.config.from_mapping(test_config)
    warnings = check(app.config, dict(os.environ))
    logs.configure(app.config["LOG_LEVEL"], json_lines=bool(app.config["LOG_JSON"]))
    for warning in warnings:
        log.warning(warning)

    settings = Settings.from_mapping(app.config)
    if problem := metrics.problem():
        raise ConfigError(problem)
    engine = db.engine_for(settings.database_url)
    db.init(engine)
    app.extensions["cds.settings"] = settings
    app.extensions["cds.engine"] = engine
    app.extensions["cds.feedback"] = FeedbackStore(engine)
    app.extensions["cds.audit"] = AuditLog(engine, int(app.config["AUDIT_RETENTION_DAYS"]))
    app.extensions["cds.audit"].purge()
    app.extensions["cds.refusals"] = RefusalLimiter(int(app.config["AUDIT_REFUSALS_PER_MINUTE"]))
    if app.config["PROXY_HOPS"]:  # behind a proxy every caller had its address: the one it saw is in the header
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=app.config["PROXY_HOPS"], x_proto=0, x_host=0, x_port=0, x_prefix=0)
    app.extensions["cds.policies"] = policies.load(settings.policy_dir)
    clients_file = app.config["TRUSTED_CLIENTS"]
    if clients_file:
        if not app.config.get("PUBLIC_BASE_URL"):
            raise ConfigError(
                "CDS_PUBLIC_BASE_URL must be set when CDS_TRUSTED_CLIENTS is: the JWT audience is checked against "
                "it, never against the request's Host header"
            )
        # The database (SQLite file or PostgreSQL) is shared by every worker: a token is accepted once, anywhere.
        replay_store, jwks_cache = DatabaseReplayStore(engine), None
        if app.config.get("REDIS_URL"):
            from cds import shared

            redis_client = shared.client(app.config["REDIS_URL"])
            replay_store, jwks_cache = shared.RedisReplayStore(redis_client), shared.RedisJWKSCache(redis_client)
        try:
            clients = trust.load_clients(clients_file)
        except trust.TrustConfigError as exc:
            raise ConfigError(f"CDS_TRUSTED_CLIENTS: {exc}") from None
        app.extensions["cds.verifier"] = trust.Verifier(
            clients, replay_store, jwks_cache, leeway=float(app.config["JWT_LEEWAY"])
        )
    else:
        app.extensions["cds.verifier"] = None
        log.warning("JWT CHECKS ARE OFF: any caller is trusted. Demo only; set CDS_TRUSTED_CLIENTS in production.")
    # the built-in form exists only while the viewer is served, which it is only with JWT checks off
    form = None
    if app.config.get("VIEWER") and not clients_file:
        form = f"{(app.config.get('PUBLIC_BASE_URL') or questionnaires.DEFAULT_BASE).rstrip('/')}/viewer/dtr"
    settings = dataclasses.replace(settings, dtr_form_url=form)
    app.extensions["cds.settings"] = settings
    if "*" in settings.fhir_allowed_servers and not clients_file:
        log.warning("CDS_FHIR_ALLOWED_SERVERS allows any FHIR server: demo setting, not for production")

    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(dtr.bp)
    if app.config.get("VIEWER"):
        from cds import viewer

        app.register_blueprint(viewer.bp)
    _register_error_handlers(app)
    if app.config.get("GC_TUNING", True):
        # Large hook bodies allocate ~100k objects; the default thresholds run full collections mid-request
        # (p99 for a 5,000-resource record: 144 ms -> 66 ms in-process with this). Start-up objects are frozen.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
    return app


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(CDSError)
    def cds_error(exc: CDSError) -> Response:
        if exc.status >= 500:
            log.error("%s: %s", type(exc).__name__, exc.diagnostics)
        response = api.json_response(exc.to_operation_outcome(), exc.status)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code, text = _HTTP_ISSUES.get(status, ("processing", exc.name))
        body = operation_outcome([{"severity": "error", "code": code, "diagnostics": text}])
        response = api.json_response(body, status)
        if status == 405 and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.after_request
    def redirect_body(response: Response) -> Response:
        """Werkzeug's own redirects (``/fhir//metadata``, ``/viewer``) bypass the error handlers with an HTML page;
        they keep their status and Location and say where to go in an OperationOutcome, like every non-2xx."""
        if 300 <= response.status_code < 400 and response.mimetype == "text/html":
            where = response.headers.get("Location", "")
            issue = {"severity": "information", "code": "informational", "diagnostics": f"moved to {where[:256]}"}
            response.set_data(api.json_response(operation_outcome([issue])).get_data())
            response.mimetype = "application/json"
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        logs.unexpected(log, exc)
        return api.json_response(INTERNAL_ERROR, 500)

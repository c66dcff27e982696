"""The OpenAPI 3.1 document for our endpoints, built from the same JSON Schemas the service validates with.

Each schema's ``$defs`` are hoisted into ``components/schemas`` (prefixed by the schema's name) and its
``#/$defs/...`` references rewritten, so one document carries everything a client or a fuzzer needs.
"""

from __future__ import annotations

import copy
import functools

from cds import schemas
from cds.services import SERVICES

_FILES = {
    "hook-request": "HookRequest",
    "hook-response": "HookResponse",
    "discovery": "Discovery",
    "feedback": "Feedback",
    "operation-outcome": "OperationOutcome",
}


def _hoist(name: str, prefix: str, components: dict) -> dict:
    schema = copy.deepcopy(schemas.schema(name))
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)

    def rewrite(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                node["$ref"] = f"#/components/schemas/{prefix}_{ref.removeprefix('#/$defs/')}"
            for value in node.values():
                rewrite(value)
        elif isinstance(node, list):
            for value in node:
                rewrite(value)

    rewrite(schema)
    for key, value in defs.items():
        rewrite(value)
        components[f"{prefix}_{key}"] = value
    components[prefix] = schema
    return {"$ref": f"#/components/schemas/{prefix}"}


def _json(ref: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


@functools.cache
def document() -> dict:
    components: dict = {}
    refs = {name: _hoist(name, prefix, components) for name, prefix in _FILES.items()}
    errors = {
        str(status): _json(refs["operation-outcome"], text)
        for status, text in (
            (400, "Malformed JSON or a schema violation"),
            (401, "Invalid or missing JWT (when trusted clients are configured)"),
            (404, "Unknown service"),
            (412, "Required data neither prefetched nor fetchable"),
            (413, "Body or request too large"),
            (415, "Not JSON"),
        )
    }
    service_ids = sorted(SERVICES)
    service_param = {
        "name": "service_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "enum": service_ids},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "CDS Hooks service for CPT 64580", "version": "1.0.0"},
        "paths": {
            "/cds-services": {
                "get": {
                    "operationId": "discovery",
                    "responses": {"200": _json(refs["discovery"], "The services"), "401": errors["401"]},
                }
            },
            "/cds-services/{service_id}": {
                "post": {
                    "operationId": "callService",
                    "parameters": [service_param],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": refs["hook-request"]}},
                    },
                    "responses": {"200": _json(refs["hook-response"], "Cards and system actions"), **errors},
                }
            },
            "/cds-services/{service_id}/feedback": {
                "post": {
                    "operationId": "feedback",
                    "parameters": [service_param],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": refs["feedback"]}}},
                    "responses": {
                        "200": _json({"type": "object", "required": ["received", "stored"]}, "Stored"),
                        "503": _json(refs["operation-outcome"], "Database unavailable"),
                        **errors,
                    },
                }
            },
            "/healthz": {"get": {"operationId": "live", "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": _json(refs["operation-outcome"], "Not ready"),
                    },
                }
            },
        },
        "components": {"schemas": components},
    }

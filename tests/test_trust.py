"""JWT trust, the FHIR-server allow-list, audit, CORS and request limits, through HTTP."""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pytest_httpserver import HTTPServer

from cds.audit import audit_table

from .secrets import remember
from .support import ORDER_SIGN, full_prefetch, hook_request, searchset, service_request

ISS = "https://ehr.example.org"
KID_EC, KID_RSA = "ec-key-1", "rsa-key-1"
EC_KEY = ec.generate_private_key(ec.SECP384R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_EC_KEY = ec.generate_private_key(ec.SECP384R1())


def jwk(private_key, kid: str, alg: str) -> dict:
    data = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private_key.public_key()))
    return data | {"kid": kid, "alg": alg, "use": "sig"}


JWKS = {"keys": [jwk(EC_KEY, KID_EC, "ES384"), jwk(RSA_KEY, KID_RSA, "RS384")]}


@pytest.fixture
def clients_file(tmp_path, realdata, ehr):
    """Two trusted clients: ours with inline keys and one allowed FHIR server, and the CDS Hooks sandbox by file."""
    (tmp_path / "sandbox-jwks.json").write_text((realdata / "cds-hooks-sandbox" / "jwks.json").read_text())
    config = {
        "clients": [
            {"iss": ISS, "jwks": JWKS, "jku": [ehr.url_for("/jwks.json")], "fhir_servers": [ehr.url_for("/fhir")]},
            {"iss": "https://sandbox.cds-hooks.org", "jwks_file": "sandbox-jwks.json"},
            {"iss": "https://tenant.example.org", "jwks": JWKS, "tenant": "hospital-a"},
        ]
    }
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def trusted(make_app, clients_file):
    return make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file)).test_client()


def url(path: str) -> str:
    return f"http://localhost{path}"


def token(
    *,
    key=EC_KEY,
    alg="ES384",
    kid=KID_EC,
    aud=None,
    iss=ISS,
    exp_in=300,
    iat_shift=0,
    jti=None,
    extra_headers=None,
    drop=(),
    **claims,
) -> str:
    now = int(time.time())
    payload = {
        "iss": iss,
        "aud": aud or url(f"/cds-services/{ORDER_SIGN}"),
        "exp": now + exp_in,
        "iat": now + iat_shift,
        "jti": jti or str(uuid.uuid4()),
    } | claims
    for name in drop:
        payload.pop(name)
    headers = {"kid": kid, "typ": "JWT"} | (extra_headers or {})
    return remember(jwt.encode(payload, key, algorithm=alg, headers=headers))


def call(client, auth: str | None, path=f"/cds-services/{ORDER_SIGN}", body=None):
    headers = {"Authorization": auth} if auth is not None else {}
    body = body if body is not None else hook_request(orders=[service_request(code="80053")])
    return client.post(path, data=orjson.dumps(body), content_type="application/json", headers=headers)


def unsigned(alg: str = "none") -> str:
    def seg(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': alg, 'typ': 'JWT', 'kid': KID_EC})}.{seg({'iss': ISS, 'aud': url('/cds-services/' + ORDER_SIGN), 'exp': int(time.time()) + 300, 'iat': int(time.time()), 'jti': 'x'})}."


def hs256_with_public_key() -> str:
    pem = EC_KEY.public_key().public_bytes(
        encoding=__import__("cryptography").hazmat.primitives.serialization.Encoding.PEM,
        format=__import__("cryptography").hazmat.primitives.serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": KID_EC}
    payload = {
        "iss": ISS,
        "aud": url(f"/cds-services/{ORDER_SIGN}"),
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
        "jti": "h",
    }
    import hashlib
    import hmac

    def seg(data: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")

    signing = seg(header) + b"." + seg(payload)
    signature = base64.urlsafe_b64encode(hmac.new(pem, signing, hashlib.sha256).digest()).rstrip(b"=")
    return (signing + b"." + signature).decode()


def tampered() -> str:
    head, payload, sig = token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["iss"] = ISS  # same issuer, changed audience: the signature no longer covers it
    claims["aud"] = "https://attacker.example/cds-services"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{head}.{forged}.{sig}"


BAD_TOKENS = {
    "missing": lambda: None,
    "not-bearer": lambda: "Basic dXNlcjpwYXNz",
    "empty-bearer": lambda: "Bearer ",
    "malformed": lambda: "Bearer abc.def",
    "alg-none": lambda: "Bearer " + unsigned("none"),
    "hs256-public-key-as-secret": lambda: "Bearer " + hs256_with_public_key(),
    "wrong-key": lambda: "Bearer " + token(key=OTHER_EC_KEY),
    "unknown-kid": lambda: "Bearer " + token(kid="nope"),
    "expired": lambda: "Bearer " + token(exp_in=-300, iat_shift=-600),
    "future-iat": lambda: "Bearer " + token(iat_shift=600, exp_in=900),
    "wrong-aud": lambda: "Bearer " + token(aud=url("/cds-services/other")),
    "aud-list-with-another": lambda: "Bearer " + token(aud=[url(f"/cds-services/{ORDER_SIGN}"), "https://x.example"]),
    "wrong-iss": lambda: "Bearer " + token(iss="https://stranger.example.org"),
    "jku-not-allowed": lambda: "Bearer " + token(extra_headers={"jku": "https://evil.example.org/jwks.json"}),
    "tenant-mismatch": lambda: "Bearer " + token(iss="https://tenant.example.org", tenant="hospital-b"),
    "tenant-missing": lambda: "Bearer " + token(iss="https://tenant.example.org"),
    "tampered-payload": lambda: "Bearer " + tampered(),
    "oversize": lambda: "Bearer " + token(padding="x" * 9000),
    "no-jti": lambda: "Bearer " + token(drop=("jti",)),
    "no-exp": lambda: "Bearer " + token(drop=("exp",)),
    "lifetime-over-an-hour": lambda: "Bearer " + token(exp_in=7200),
    "typ-not-jwt": lambda: "Bearer " + token(extra_headers={"typ": "at+jwt"}),
    "alg-does-not-match-key": lambda: "Bearer " + token(key=RSA_KEY, alg="RS384", kid=KID_EC),
}


@pytest.mark.parametrize("name", list(BAD_TOKENS))
def test_bad_tokens_are_401_with_no_detail(trusted, name, caplog):
    auth = BAD_TOKENS[name]()
    with caplog.at_level(logging.WARNING):
        response = call(trusted, auth)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert [i["diagnostics"] for i in body["issue"]] == ["invalid token"]
    failures = [
        getattr(r, "fields", {}) for r in caplog.records if getattr(r, "fields", {}).get("event") == "auth-failed"
    ]
    assert failures and failures[0]["reason"], "the reason goes to the log"
    logged = caplog.text + json.dumps(failures)
    if auth and " " in auth and auth.split(" ", 1)[1]:
        assert auth.split(" ", 1)[1] not in logged


def test_a_replayed_jti_is_refused(trusted):
    once = "Bearer " + token()
    assert call(trusted, once).status_code == 200
    assert call(trusted, once).status_code == 401


@pytest.mark.parametrize("jti", ["\ud800abc", "a\x00b"])
def test_a_signed_token_whose_jti_no_store_can_hold_is_a_401_not_a_500(trusted, jti):
    """A lone surrogate reached SQLite's driver (UnicodeEncodeError: a 500); PostgreSQL refuses a NUL."""
    response = call(trusted, "Bearer " + token(jti=jti))
    assert response.status_code == 401


def test_two_long_jtis_that_share_their_first_512_characters_are_two_tokens(trusted):
    """The store's key was cut at 512 characters: the second token was refused as a replay of the first."""
    prefix = "j" * 600
    assert call(trusted, "Bearer " + token(jti=prefix + "1")).status_code == 200
    assert call(trusted, "Bearer " + token(jti=prefix + "2")).status_code == 200


@pytest.mark.parametrize(("key", "alg", "kid"), [(EC_KEY, "ES384", KID_EC), (RSA_KEY, "RS384", KID_RSA)])
def test_valid_es384_and_rs384_tokens_are_accepted(trusted, key, alg, kid):
    response = call(trusted, "Bearer " + token(key=key, alg=alg, kid=kid))
    assert response.status_code == 200
    assert response.get_json() == {"cards": [], "systemActions": []}


def test_every_endpoint_needs_a_token_but_health(trusted):
    assert trusted.get("/cds-services").status_code == 401
    good = "Bearer " + token(aud=url("/cds-services"))
    assert trusted.get("/cds-services", headers={"Authorization": good}).status_code == 200
    feedback = {"feedback": [{"card": "c", "outcome": "overridden", "outcomeTimestamp": "2026-11-27T10:00:00Z"}]}
    path = f"/cds-services/{ORDER_SIGN}/feedback"
    assert call(trusted, None, path, feedback).status_code == 401
    # past authentication: the card was never issued, so 404, not 401
    assert call(trusted, "Bearer " + token(aud=url(path)), path, feedback).status_code == 404
    assert trusted.get("/healthz").status_code == 200
    # the DTR routes follow the same rules as the hooks
    assert trusted.get("/fhir/metadata").status_code == 401
    assert (
        trusted.get(
            "/fhir/metadata", headers={"Authorization": "Bearer " + token(aud=url("/fhir/metadata"))}
        ).status_code
        == 200
    )


def test_the_public_base_url_sets_the_audience(make_app, clients_file):
    client = make_app(TRUSTED_CLIENTS=str(clients_file), PUBLIC_BASE_URL="https://cds.example.org/").test_client()
    assert call(client, "Bearer " + token()).status_code == 401
    ok = token(aud=f"https://cds.example.org/cds-services/{ORDER_SIGN}")
    assert call(client, "Bearer " + ok).status_code == 200


def test_keys_from_an_allowed_jku_are_fetched_and_rotated(trusted, ehr):
    rotated = ec.generate_private_key(ec.SECP384R1())
    ehr.expect_request("/jwks.json").respond_with_json({"keys": [jwk(rotated, "rotated-1", "ES384")]})
    jku = ehr.url_for("/jwks.json")
    response = call(trusted, "Bearer " + token(key=rotated, kid="rotated-1", extra_headers={"jku": jku}))
    assert response.status_code == 200
    assert [r.path for r, _ in ehr.log] == ["/jwks.json"]
    call(trusted, "Bearer " + token(key=rotated, kid="rotated-1", extra_headers={"jku": jku}))
    assert len(ehr.log) == 1, "the JWK Set is cached"


def test_the_sandbox_public_key_loads_as_a_client_key(trusted):
    # Signed with our own key under the sandbox's kid: the configured sandbox key must reject the signature.
    forged = token(iss="https://sandbox.cds-hooks.org", kid="44823f3d-0b01-4a6c-a80e-b9d3e8a7226f")
    assert call(trusted, "Bearer " + forged).status_code == 401


def test_bad_trusted_clients_file_stops_the_service(tmp_path, make_app):
    from cds.config import ConfigError

    bad = tmp_path / "clients.json"
    bad.write_text(json.dumps({"clients": [{"iss": "x", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}]}))
    with pytest.raises(ConfigError, match=r"CDS_TRUSTED_CLIENTS: .*clients\[0\]"):
        make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(bad))
    toml = tmp_path / "clients.toml"
    toml.write_text('[[clients]]\niss = "https://ehr.example.org"\njku = ["https://ehr.example.org/jwks.json"]\n')
    assert make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(toml)) is not None


# ---- FHIR server allow-list ---------------------------------------------------------------------------------


@pytest.fixture
def stranger():
    """A second FHIR server that must never be contacted."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    server.expect_request("/fhir/Patient/pat-1").respond_with_json({"resourceType": "Patient", "id": "pat-1"})
    yield server
    server.clear()
    server.stop()


def test_a_trusted_client_cannot_send_us_to_another_fhir_server(trusted, stranger):
    body = hook_request(fhir_server=stranger.url_for("/fhir"))
    response = call(trusted, "Bearer " + token(), body=body)
    assert response.status_code == 412
    assert "allow-list" in response.get_json()["issue"][0]["diagnostics"]
    assert stranger.log == []


def test_without_trust_the_configured_allow_list_applies(make_app, stranger):
    client = make_app(FHIR_ALLOWED_SERVERS=["https://ehr.example.org/fhir"]).test_client()
    response = call(client, None, body=hook_request(fhir_server=stranger.url_for("/fhir")))
    assert response.status_code == 412 and stranger.log == []


def test_a_trusted_clients_own_server_is_used(trusted, ehr):
    ehr.expect_request("/fhir/Patient/pat-1").respond_with_json({"resourceType": "Patient", "id": "pat-1"})
    data = full_prefetch()
    del data["patient"]
    response = call(trusted, "Bearer " + token(), body=hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 200
    assert [r.path for r, _ in ehr.log] == ["/fhir/Patient/pat-1"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://ehr.example.org/fhir", True),
        ("https://ehr.example.org/fhir/r4", True),
        ("https://EHR.example.org/fhir/", True),
        ("https://ehr.example.org/fhir/../admin", False),
        ("https://ehr.example.org/fhir/%2e%2e/admin", False),
        ("https://ehr.example.org/fhir/./x/../../admin", False),
        ("https://ehr.example.org/fhir/x/..;/..;/admin", False),  # a servlet container reads ..; as ..
        ("https://ehr.example.org/fhir/%2e%2e;v=1/admin", False),
        ("https://ehr.example.org/fhir/Patient;v=1", True),  # a parameter on an ordinary segment climbs nowhere
        ("https://ehr.example.org/fhirx", False),
        ("https://ehr.example.org/admin", False),
        ("http://ehr.example.org/fhir", False),  # another scheme is another origin
        ("https://ehr.example.org/fhir?x=1", False),  # Patient/1 resolved against it drops /fhir
        ("https://ehr.example.org/fhir?", False),
        ("https://ehr.example.org/fhir#x", False),
        ("https://ehr.example.org/fhir/?_format=json", False),
    ],
)
def test_the_allow_list_compares_normalised_paths(url, allowed):
    from cds.fhirclient import is_allowed

    assert is_allowed(url, ("https://ehr.example.org/fhir",)) is allowed


def test_a_next_link_that_climbs_with_path_parameters_is_not_under_the_base():
    """The attacker's pass: ``/fhir/..;/admin/secret`` as a Bundle's next link got the access token; Tomcat and
    other servlet containers strip ``;`` parameters, then resolve the dot segments."""
    from cds.fhirclient import is_under

    assert not is_under("https://ehr.example.org/fhir/..;/admin/secret?page=2", "https://ehr.example.org/fhir")
    assert is_under("https://ehr.example.org/fhir/Condition?page=2", "https://ehr.example.org/fhir")


@pytest.mark.parametrize("tail", ["?x=1", "#x", "?"])
def test_a_fhir_server_with_a_query_or_fragment_gets_no_token(make_app, ehr, tail):
    """Resolving Patient/1 against ``/fhir?x=1`` would ask ``/Patient/1``: off the allowed base, with the token."""
    ehr.expect_request("/Patient/pat-1").respond_with_json({"resourceType": "Patient", "id": "pat-1"})
    client = make_app(FHIR_ALLOWED_SERVERS=[ehr.url_for("/fhir")]).test_client()
    data = full_prefetch()
    del data["patient"]
    body = hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir") + tail)
    body["fhirAuthorization"] = {
        "access_token": "tok-secret",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "cds",
    }
    response = call(client, None, body=body)
    assert response.status_code == 412
    assert "allow-list" in response.get_json()["issue"][0]["diagnostics"]
    assert ehr.log == []


def test_a_next_link_outside_the_base_path_gets_no_token(make_app, ehr):
    internal = ehr.url_for("/internal/admin")
    ehr.expect_request("/fhir/Procedure").respond_with_json(searchset(next_url=internal))
    ehr.expect_request("/internal/admin").respond_with_json(searchset())
    client = make_app(FHIR_ALLOWED_SERVERS=[ehr.url_for("/fhir")]).test_client()
    data = full_prefetch()
    del data["procedures"]
    response = call(client, None, body=hook_request(prefetch=data, fhir_server=ehr.url_for("/fhir")))
    assert response.status_code == 412
    assert all(r.path != "/internal/admin" for r, _ in ehr.log)


# ---- audit, CORS, limits --------------------------------------------------------------------------------------


def audit_rows(app) -> list[dict]:
    assert app.extensions["cds.audit"].flush(), "the group writer commits within moments"
    with app.extensions["cds.engine"].connect() as conn:
        return [dict(r._mapping) for r in conn.execute(audit_table.select().order_by(audit_table.c.id))]


def test_every_hook_call_is_audited(make_app, clients_file):
    app = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file))
    client = app.test_client()
    body = hook_request(prefetch=full_prefetch())
    ok = call(client, "Bearer " + token(), body=body)
    assert ok.status_code == 200
    bad = call(client, "Bearer " + token(), body={"hook": "order-sign"})
    assert bad.status_code == 400
    denied = call(client, None, body=body)
    assert denied.status_code == 401
    rows = audit_rows(app)
    assert [r["status"] for r in rows] == [200, 400, 401]
    first = rows[0]
    assert first["hook_instance"] == body["hookInstance"] and first["client"] == ISS
    assert json.loads(first["card_uuids"]) == [c["uuid"] for c in ok.get_json()["cards"]]
    assert json.loads(first["response"]) == ok.get_json()
    assert app.extensions["cds.audit"].for_card(ok.get_json()["cards"][0]["uuid"])[0]["id"] == first["id"]


def test_refused_calls_are_audited_compactly_and_at_a_bounded_rate(make_app, clients_file):
    app = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file), AUDIT_REFUSALS_PER_MINUTE=5)
    client = app.test_client()
    body = hook_request(prefetch=full_prefetch())
    statuses = [call(client, None, body=body).status_code for _ in range(40)]
    assert statuses == [401] * 40, "every refused call is still answered"
    rows = audit_rows(app)
    assert len(rows) == 5 and all(r["response"] is None and r["status"] == 401 for r in rows)
    assert call(client, "Bearer " + token(), body=body).status_code == 200, "a trusted call is audited as before"
    assert audit_rows(app)[-1]["status"] == 200


@pytest.mark.parametrize(("hops", "rows"), [(1, 10), (0, 5)])
def test_behind_a_proxy_each_caller_has_its_own_refusal_budget(make_app, clients_file, hops, rows):
    """Behind deploy/nginx.conf every caller had nginx's address: one caller's flood used up the audited refusals of
    all. With CDS_PROXY_HOPS=1 the address nginx saw counts; with 0 the header is the caller's and is ignored."""
    app = make_app(
        PUBLIC_BASE_URL="http://localhost/",
        TRUSTED_CLIENTS=str(clients_file),
        AUDIT_REFUSALS_PER_MINUTE=5,
        PROXY_HOPS=hops,
    )
    client = app.test_client()
    body = orjson.dumps(hook_request(prefetch=full_prefetch()))
    for address in ("192.0.2.10", "192.0.2.20"):
        for _ in range(8):
            response = client.post(
                f"/cds-services/{ORDER_SIGN}",
                data=body,
                content_type="application/json",
                headers={"X-Forwarded-For": address},
            )
            assert response.status_code == 401
    assert len(audit_rows(app)) == rows


def test_old_audit_rows_are_purged(make_app):
    app = make_app(AUDIT_RETENTION_DAYS=30)
    call(app.test_client(), None, body=hook_request(prefetch=full_prefetch()))
    app.extensions["cds.audit"].flush()
    with app.extensions["cds.engine"].begin() as conn:
        conn.execute(audit_table.update().values(received_at=datetime.now(UTC) - timedelta(days=31)))
    call(app.test_client(), None, body=hook_request(prefetch=full_prefetch()))
    assert app.extensions["cds.audit"].purge() == 1
    assert len(audit_rows(app)) == 1


def test_cors_for_browser_clients(make_app, clients_file):
    client = make_app(
        PUBLIC_BASE_URL="http://localhost/",
        TRUSTED_CLIENTS=str(clients_file),
        CORS_ORIGINS=["https://sandbox.cds-hooks.org"],
    ).test_client()
    preflight = client.options(
        f"/cds-services/{ORDER_SIGN}",
        headers={"Origin": "https://sandbox.cds-hooks.org", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 200, "a preflight carries no token and must not be refused"
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    other = client.options("/cds-services", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    denied = client.get("/cds-services", headers={"Origin": "https://sandbox.cds-hooks.org"})
    assert (
        denied.status_code == 401 and denied.headers["Access-Control-Allow-Origin"] == "https://sandbox.cds-hooks.org"
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("options", "/fhir/Questionnaire/$questionnaire-package"),
        ("options", "/fhir/Questionnaire/medicare-ffs-2019-12-01/$populate"),
        ("get", "/fhir/metadata"),
    ],
)
def test_a_dtr_app_in_the_browser_may_call_the_fhir_operations(make_app, clients_file, method, path):
    """A DTR SMART app runs in the browser: the /fhir operations sent no CORS headers, so it could not call them."""
    client = make_app(
        PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file), CORS_ORIGINS=["https://dtr.example.org"]
    ).test_client()
    headers = {"Origin": "https://dtr.example.org", "Access-Control-Request-Method": "POST"}
    response = getattr(client, method)(path, headers=headers)
    assert response.headers.get("Access-Control-Allow-Origin") == "https://dtr.example.org", response.status_code
    assert "Access-Control-Allow-Origin" not in client.open(path, method="OPTIONS").headers  # no Origin, no CORS


def test_too_many_draft_orders_is_413(client):
    orders = [service_request(id=f"o{i}", code="80053") for i in range(51)]
    response = call(client, None, body=hook_request(orders=orders))
    assert response.status_code == 413
    assert response.get_json()["issue"][0]["expression"] == ["context.draftOrders"]


def test_too_many_prefetch_entries_is_413(make_app):
    client = make_app(MAX_PREFETCH_ENTRIES=10).test_client()
    data = full_prefetch()
    data["conditions"] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": {"resourceType": "Condition"}}] * 11,
    }
    assert call(client, None, body=hook_request(prefetch=data)).status_code == 413


def test_absurd_nesting_is_400_and_deep_bundles_are_harmless(client):
    deep = "[" * 5000 + "]" * 5000
    response = client.post(f"/cds-services/{ORDER_SIGN}", data=deep, content_type="application/json")
    assert response.status_code == 400
    nested: dict = {"resourceType": "Condition", "id": "c"}
    for _ in range(150):
        nested = {"resourceType": "Bundle", "entry": [{"resource": nested}]}
    data = full_prefetch()
    data["conditions"] = nested
    raw = json.dumps(hook_request(prefetch=data))  # deeper than orjson writes; the service reads up to 1024 levels
    assert client.post(f"/cds-services/{ORDER_SIGN}", data=raw, content_type="application/json").status_code == 200


# ---- issue 15: trust that holds under the production command -------------------------------------------------


def test_trust_without_a_public_base_url_refuses_to_start(make_app, clients_file):
    from cds.config import ConfigError

    with pytest.raises(ConfigError, match="CDS_PUBLIC_BASE_URL"):
        make_app(TRUSTED_CLIENTS=str(clients_file))


def test_the_audience_never_follows_the_host_header(trusted):
    other = "Bearer " + token(aud=f"http://attacker.example/cds-services/{ORDER_SIGN}")
    response = trusted.post(
        f"/cds-services/{ORDER_SIGN}",
        data=orjson.dumps(hook_request(orders=[service_request(code="80053")])),
        content_type="application/json",
        headers={"Authorization": other, "Host": "attacker.example"},
    )
    assert response.status_code == 401


def test_a_token_is_accepted_once_across_workers(make_app, clients_file):
    # Two apps on one database file are two gunicorn workers: each had its own memory store before.
    first = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file)).test_client()
    second = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file)).test_client()
    auth = "Bearer " + token()
    assert call(first, auth).status_code == 200
    assert call(second, auth).status_code == 401
    assert call(first, auth).status_code == 401


def test_a_failing_jwk_set_is_not_fetched_again_for_every_token(trusted, ehr):
    ehr.expect_request("/jwks.json").respond_with_data("down", status=503)
    jku = ehr.url_for("/jwks.json")
    unknown = ec.generate_private_key(ec.SECP384R1())
    statuses = [
        call(trusted, "Bearer " + token(key=unknown, kid=f"new-{i}", extra_headers={"jku": jku})).status_code
        for i in range(5)
    ]
    assert statuses == [401] * 5
    assert len([r for r, _ in ehr.log if r.path == "/jwks.json"]) == 1, "failures are cached (back-off)"
    assert call(trusted, "Bearer " + token()).status_code == 200, "inline keys still work at once"


# ---- the viewer never goes around trust (issue 15.4) ---------------------------------------------------------


def test_the_viewer_is_refused_while_jwt_checks_are_on(make_app, clients_file, stranger):
    client = make_app(PUBLIC_BASE_URL="http://localhost/", TRUSTED_CLIENTS=str(clients_file), VIEWER=True).test_client()
    body = {"request": hook_request(fhir_server=stranger.url_for("/fhir"))}
    response = client.post("/viewer/api/run", json=body)
    assert response.status_code == 403 and response.get_json()["resourceType"] == "OperationOutcome"
    assert client.get("/viewer/").status_code == 403
    assert stranger.log == []


def test_the_viewer_only_replays_against_this_machine_and_sends_security_headers(make_app):
    client = make_app(VIEWER=True).test_client()
    response = client.post(
        "/viewer/api/run", json={"case": "medicare-all-criteria-met", "url": "http://169.254.169.254/latest"}
    )
    assert response.status_code == 400 and "this machine" in response.get_json()["issue"][0]["diagnostics"]
    page = client.get("/viewer/")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_a_replayed_request_sends_its_token_to_no_server_off_the_allow_list(tmp_path, stranger):
    import subprocess
    import sys
    from pathlib import Path

    case = tmp_path / "case"
    case.mkdir()
    request = hook_request(fhir_server=stranger.url_for("/fhir"))
    (case / "request.json").write_text(json.dumps(request))
    cds = str(Path(sys.executable).with_name("cds"))
    env = {k: v for k, v in __import__("os").environ.items() if k != "CDS_FHIR_ALLOWED_SERVERS"}
    result = subprocess.run([cds, "replay", str(case), "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode in (0, 1), result.stderr
    assert stranger.log == [], "the token never left"


def test_no_token_is_accepted_twice_under_the_production_command(tmp_path, clients_file):
    """gunicorn with two workers and no Redis: the used jti lives in the shared database."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from . import servers

    port = servers.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "CDS_TRUSTED_CLIENTS": str(clients_file),
        "CDS_PUBLIC_BASE_URL": base,
        "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'cds.sqlite3'}",
        "CDS_LOG_LEVEL": "WARNING",
    }
    with servers.gunicorn(tmp_path, port, env, "prod", workers=2):
        auth = {"Authorization": "Bearer " + token(aud=f"{base}/cds-services/{ORDER_SIGN}")}
        body = hook_request(orders=[service_request(code="80053")])

        def send(_i: int) -> int:
            return requests.post(f"{base}/cds-services/{ORDER_SIGN}", json=body, headers=auth, timeout=20).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(send, range(24)))
    assert statuses.count(200) == 1 and statuses.count(401) == 23, statuses


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_numeric_strings_for_exp_or_iat_in_a_signed_token_are_a_401(trusted, claim):
    now = int(time.time())
    value = str(now + 300 if claim == "exp" else now)
    response = call(trusted, "Bearer " + token(**{claim: value}))
    assert response.status_code == 401


def test_a_jwk_set_sent_a_byte_at_a_time_is_cut_at_the_timeout_and_fetched_once():
    """The attacker's pass: eight tokens naming a JWK Set that dripped a byte every half second held eight worker
    threads for a minute, each with its own fetch (the timeout bounded each read, not the fetch)."""
    import threading

    from werkzeug.serving import make_server

    from cds.trust import InvalidToken, JWKSCache

    hits = []

    def drip(environ, start_response):
        hits.append(1)
        start_response("200 OK", [("Content-Type", "application/json")])

        def body():
            for _ in range(40):
                time.sleep(0.1)
                yield b" "

        return body()

    server = make_server("127.0.0.1", 0, drip, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    cache, url, outcomes = JWKSCache(timeout=0.5), f"http://127.0.0.1:{server.server_port}/jwks.json", []

    def fetch() -> None:
        try:
            cache.key(url, "k1")
        except InvalidToken as exc:
            outcomes.append(exc.reason)

    started = time.monotonic()
    threads = [threading.Thread(target=fetch) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        server.shutdown()
    assert time.monotonic() - started < 2.5, "the whole fetch is bounded, and the others wait for that one"
    assert len(outcomes) == 4 and len(hits) == 1, (outcomes, hits)
    assert any("took" in reason for reason in outcomes), outcomes


@pytest.mark.parametrize(
    ("declared", "alg", "accepted"),
    [
        (None, "PS256", True),  # an RSA JWK that names no alg serves RS* and PS* (RFC 7517: alg is optional)
        (None, "RS512", True),
        ("RS384", "RS384", True),
        ("RS384", "PS256", False),  # a JWK that names its alg is held to it
    ],
)
def test_an_rsa_key_that_names_no_alg_checks_any_rsa_signature(declared, alg, accepted):
    """PyJWK fills in RS256 for such a key, and a valid PS256 token was refused as "alg does not match"."""
    from jwt import PyJWKSet

    from cds.trust import InvalidToken, TrustedClient, Verifier

    public = jwk(RSA_KEY, "r1", "RS256")
    del public["alg"]
    if declared:
        public["alg"] = declared
    verifier = Verifier({ISS: TrustedClient(ISS, PyJWKSet.from_dict({"keys": [public]}))})
    audience = url(f"/cds-services/{ORDER_SIGN}")
    signed = token(key=RSA_KEY, alg=alg, kid="r1", aud=audience).removeprefix("Bearer ")
    if accepted:
        assert verifier.verify("Bearer " + signed, audience).iss == ISS
    else:
        with pytest.raises(InvalidToken):
            verifier.verify("Bearer " + signed, audience)


def test_caller_text_in_a_refused_token_or_path_is_not_logged(trusted, caplog):
    """The auth-failed line names the route and a reason of this service's words: an ``alg`` of any text was
    quoted in it, and the path carried a service name the caller typed."""
    secret = "caller-text-" + "x" * 40
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256" + secret, "typ": "JWT", "kid": KID_EC}).encode())
    forged = (
        header.rstrip(b"=").decode() + "." + base64.urlsafe_b64encode(b'{"iss": "x"}').decode().rstrip("=") + ".c2ln"
    )
    with caplog.at_level(logging.WARNING):
        assert call(trusted, "Bearer " + forged).status_code == 401
        assert call(trusted, "Bearer " + token(), path=f"/cds-services/{secret}").status_code == 401
    failures = [
        getattr(r, "fields", {}) for r in caplog.records if getattr(r, "fields", {}).get("event") == "auth-failed"
    ]
    assert len(failures) == 2
    assert secret not in caplog.text + json.dumps(failures)
    assert failures[1]["path"] == "/cds-services/<service_id>"

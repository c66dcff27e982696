"""The request handler of ``cds serve`` (Flask's development server, what ``make run`` starts).

Two things the stock handler does that this service promises not to: it logs each request line whole, query
string included (``?patient=…`` is a patient id in the log), and it answers a request its HTTP parser refuses (a
URL or header line over 64 KiB, a bad request line) with an HTML page that quotes the caller's input. Here the
log names the method, the route (a path the caller typed is not logged: the route's pattern is, with only this
service's own names filled in) and the status; a refused request gets the status it would have had, with an
OperationOutcome, as every other refusal of this service.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect
from werkzeug.serving import WSGIRequestHandler

from cds.errors import refused_by_parser
from cds.services import SERVICES

NO_ROUTE = "(no route)"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other: "(other)"


class RequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        method = getattr(self, "command", None) or "-"
        method = method if method in _METHODS or method == "-" else "(other)"  # a method is typed text too
        code = code.value if isinstance(code, HTTPStatus) else code
        self.log("info", '"%s %s" %s %s', method, self._route(method), code, size)

    def _route(self, method: str) -> str:
        """The matched route's pattern, a service id filled in only when it is one of ours ("/cds-services/
        cpt64580-order-sign", "/fhir/Questionnaire/<questionnaire_id>/$populate"); a path no route matches is
        "(no route)". A path can carry anything: a patient's name typed as a service id reached this log."""
        app = getattr(getattr(self, "server", None), "app", None)
        try:  # the absolute form ("http://host/path") and a fragment are not part of the path
            path = unquote(urlsplit(getattr(self, "path", None) or "").path)
            urls = app.url_map.bind("localhost")
            try:
                rule, args = urls.match(path, method=method, return_rule=True)
            except MethodNotAllowed:  # the route exists, for other methods: named all the same
                rule, args = urls.match(path, method=next(iter(urls.allowed_methods(path))), return_rule=True)
        except (HTTPException, RequestRedirect, AttributeError, ValueError, StopIteration):
            return NO_ROUTE
        shown = rule.rule
        service = args.get("service_id")
        if service in SERVICES:
            shown = shown.replace("<service_id>", service)
        return shown

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The parser refused the request: its status and an OperationOutcome, never the caller's input back."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "Error"
        body = refused_by_parser(code, phrase)
        self.close_connection = True
        self.request_version = "HTTP/1.1"  # an unreadable version would make the answer HTTP/0.9: no status line
        self.send_response(code, phrase)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

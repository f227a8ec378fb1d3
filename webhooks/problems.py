"""RFC 9457 problem details: every error the API returns is ``application/problem+json`` with words, not a trace."""

from __future__ import annotations

from flask import Response, json

PROBLEM_TYPE = "about:blank"


class Problem(Exception):
    """Raise anywhere in a view to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str, **extra) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(status: int, title: str, detail: str, headers: dict | None = None, **extra) -> Response:
    body = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail} | extra
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def bad_request(detail: str, **extra) -> Problem:
    return Problem(400, "Bad request", detail, **extra)


def unprocessable(detail: str, **extra) -> Problem:
    return Problem(422, "Input cannot be used", detail, **extra)


def not_found(detail: str) -> Problem:
    return Problem(404, "Not found", detail)


def conflict(detail: str) -> Problem:
    return Problem(409, "Conflict", detail)

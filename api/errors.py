"""Every error the API answers is `{"error": {"status": <int>, "message": "<param>: <what>"}}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException

from pipeline.errors import InputError, StoreError
from pipeline.store.search import SearchUnavailable


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def validation_message(exc: RequestValidationError) -> str:
    """The first problem, named by its parameter: "limit: Input should be less than or equal to 50"."""
    first = exc.errors()[0]
    name = next((str(part) for part in reversed(first.get("loc", ())) if isinstance(part, str)
                 and part not in ("query", "path", "header", "body")), "request")
    return f"{name}: {first.get('msg', 'invalid')}"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return error_response(422, exc.message)

    @app.exception_handler(SearchUnavailable)
    async def search_not_set_up(request: Request, exc: SearchUnavailable) -> JSONResponse:
        return error_response(503, exc.message)

    @app.exception_handler(StoreError)
    async def store_down(request: Request, exc: StoreError) -> JSONResponse:
        # The detail goes to the log; the caller learns what failed, not the driver's words.
        logger.warning("request failed on PostgreSQL: {}", exc.message)
        return error_response(503, "the database is unavailable, try again shortly")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error("unhandled error on {} {}", request.method, request.url.path)
        return error_response(500, "internal error")


class ParameterError(InputError):
    """A request parameter is wrong; the message starts with its name (answered 422)."""

"""NetBackup's error body: ``errorCode`` (a NetBackup status code), ``errorMessage``, ``errorDetails``."""

from __future__ import annotations

from typing import Any

from emulator.exceptions import NbwssError

#: The NetBackup status code each HTTP status carries by default. The OpenAPI files define the
#: body but no values; these are NetBackup status codes of the same meaning (our inference):
#: 20 invalid command parameter, 46 server not allowed access, 227 no entity was found;
#: an internal error carries 9999, which no NetBackup status uses.
ERROR_CODES: dict[int, int] = {400: 20, 401: 46, 404: 227, 405: 20, 406: 20, 409: 20, 415: 20, 500: 9999, 503: 9999}


class HttpError(NbwssError):
    """A REST answer that is an error: HTTP ``status`` with NetBackup's error body.

    ``error_code`` is the NetBackup status code put in ``errorCode`` (by default the one
    :data:`ERROR_CODES` gives for ``status``); ``details`` become ``errorDetails``.
    """

    def __init__(self, status: int, message: str, *, error_code: int | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = ERROR_CODES.get(status, 9999) if error_code is None else error_code
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The error body NetBackup answers with."""
        body: dict[str, Any] = {"errorCode": self.error_code, "errorMessage": str(self)}
        if self.details:
            body["errorDetails"] = list(self.details)
        return body

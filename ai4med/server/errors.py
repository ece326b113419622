"""ApiError: a client-facing error with its HTTP status and a one-line message."""

from __future__ import annotations


class ApiError(Exception):
    """Raised anywhere below an endpoint; the app answers `status` with `{"error": message}`.

    Example:
        >>> e = ApiError(404, "model 'x' not found")
        >>> e.status, str(e)
        (404, "model 'x' not found")
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


#: AIAA's "session expired / unknown session" status
SESSION_EXPIRED = 440


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)

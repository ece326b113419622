"""ApiError: a client-facing error with its HTTP status and a one-line message."""

from __future__ import annotations

import os
import re


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


#: an absolute POSIX path (2+ components); what follows the last "/" is kept
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"`,;:()\[\]{}<>|/]+/)+([^\s'\"`,;:()\[\]{}<>|/]*)")


def scrub_paths(text: str, *roots: str) -> str:
    """`text` without absolute server paths: each becomes its last component.

    The `roots` (workspace, temp folder) are cut first; then any absolute path whose first
    component exists on this machine (`/tmp/...`, `/home/...`; not a URL path such as
    `/v1/models`) is shortened to its file name.

    Example:
        >>> scrub_paths("cannot read /tmp/aiaa-x/tmp/ab/upload0.nii.gz: bad; see /v1/models")
        'cannot read upload0.nii.gz: bad; see /v1/models'
    """
    for root in sorted((r for r in roots if r and len(r) > 1), key=len, reverse=True):
        text = text.replace(root.rstrip("/") + "/", "")

    def repl(m: re.Match[str]) -> str:
        first = m.group(0).split("/", 2)[1]
        return m.group(1) if os.path.isdir("/" + first) else m.group(0)

    return _ABS_PATH.sub(repl, text)

"""The error responses the simulator sends, as docs/drs-api.md documents them.

Body shape ``{"error_code": ..., "error_msg": ...}``; messages are English
(what the gateway sends for ``X-Language: en-us``, the default).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class ApiError:
    status: int
    code: str
    msg: str

    def body(self) -> bytes:
        return orjson.dumps({"error_code": self.code, "error_msg": self.msg})

    def with_msg(self, msg: str) -> ApiError:
        return dataclasses.replace(self, msg=msg)


AUTH_FAILED = ApiError(
    401, "APIGW.0301", "Incorrect IAM authentication information: verify token failed."
)
TOKEN_EXPIRED = ApiError(401, "APIGW.0307", "The token must be updated.")
NO_SUCH_API = ApiError(
    404, "APIGW.0101", "The API does not exist or has not been published in the environment."
)
BAD_PROJECT = ApiError(403, "DRS.M00261", "Invalid project ID.")
PAGE_INVALID = ApiError(400, "DRS.M00210", "Invalid page value.")
PAGE_OVER_LIMIT = ApiError(400, "DRS.M00211", "The page value exceeds the upper limit.")
BAD_PARAMETER = ApiError(400, "DRS.M00200", "Invalid request parameter.")
THROTTLED = ApiError(
    429,
    "APIGW.0308",
    "The throttling threshold has been reached: policy user over ratelimit,limit:200,time:1 second",
)
FORBIDDEN = ApiError(403, "APIGW.0302", "The IAM user is not authorized to access the API.")
GENERIC = ApiError(400, "DRS.10000001", "Failed.")
NO_SUCH_JOB = ApiError(400, "DRS.10000010", "The job does not exist.")


def gateway_error(status: int) -> ApiError:
    """The 5xx body the gateway sends whatever went wrong behind it."""
    return ApiError(status, "APIGW.0601", "Internal server error.")


def default_error(status: int) -> ApiError:
    """A plausible documented error for ``status``, for scripted faults that give no body."""
    by_status = {400: GENERIC, 401: AUTH_FAILED, 403: FORBIDDEN, 404: NO_SUCH_API, 429: THROTTLED}
    if status in by_status:
        return by_status[status]
    if status >= 500:
        return gateway_error(status)
    return ApiError(status, GENERIC.code, GENERIC.msg)

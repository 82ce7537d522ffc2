"""Status names of DRS batch async jobs.

Shared by the client side and the simulator: these are facts about the API,
not logic. ``status`` is free-form in the API; unknown values are accepted.
"""

from typing import Final

VALIDATING: Final = "ASYNC_JOB_VALIDATING"
VALIDATE_FAILED: Final = "ASYNC_JOB_VALIDATE_FAILED"
VALIDATE_SUCCESS: Final = "AUTO_PARAM_VALIDATE_SUCCESS"
COMMIT_SUCCESS: Final = "COMMIT_SUCCESS"

# Dropped from the SDK enum in 3.1.49 (July 2023) but possibly still on old jobs.
LEGACY_CREATING: Final = "ASYNC_JOB_CREATING"
LEGACY_CREATE_FAILED: Final = "ASYNC_JOB_CREATE_FAILED"
LEGACY_COMPLETED: Final = "ASYNC_JOB_COMPLETED"

CURRENT: Final = (VALIDATING, VALIDATE_FAILED, VALIDATE_SUCCESS, COMMIT_SUCCESS)
LEGACY: Final = (LEGACY_CREATING, LEGACY_CREATE_FAILED, LEGACY_COMPLETED)

LIST_PATH_TEMPLATE: Final = "/v5/{project_id}/batch-async-jobs"

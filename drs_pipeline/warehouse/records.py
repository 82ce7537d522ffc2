"""What a raw record of the list endpoint must be to become a row: its fields and limits.

Shared by both paths of normalization, the careful one (``normalize``) and the
clean-project one (``clean_pages``), so that neither imports the other.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import pandas as pd

FIELDS = ("async_job_id", "status", "domain_name", "user_name", "create_time")
# Ids are 36 characters, names at most 64 in IAM: anything far longer is not data.
MAX_FIELD_LENGTH = 256
# Fields that must not be empty; an empty tenant or user name is odd but is a value.
NON_EMPTY_FIELDS = ("async_job_id", "status", "create_time")
# A create_time outside [EARLIEST, LATEST) is rejected.
EARLIEST_CREATE_TIME = pd.Timestamp("2000-01-01", tz="UTC")
LATEST_CREATE_TIME = pd.Timestamp("2100-01-01", tz="UTC")
# Epoch milliseconds as a decimal string, as other v5 endpoints return them: at most
# this many digits.
MAX_EPOCH_MS_DIGITS = 16


class ObservedPage(Protocol):
    """A page of raw records and when it was fetched (the observation time)."""

    @property
    def offset(self) -> int: ...
    @property
    def jobs(self) -> list[Any]: ...
    @property
    def fetched_at(self) -> datetime: ...

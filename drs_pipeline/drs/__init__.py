"""The DRS v5 batch-async-jobs API: client, paging, retries, auth and errors."""

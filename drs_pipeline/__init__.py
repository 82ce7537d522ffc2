"""drs_pipeline: a history of Huawei Cloud DRS batch async jobs, kept in DuckDB by Dagster."""

"""The DuckDB side: normalization of raw records, the SCD2 history merge, the schema."""

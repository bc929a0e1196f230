"""OpenTelemetry setup, the DuckDB span sink, schema, views and queries."""

"""SQL per aggregate: each module owns the statements over one group of tables and returns typed values, read by
column name. Statements on the hot path are built once and run with parameters (building costs more CPU than
running them)."""

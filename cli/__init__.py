"""The `bot` command line: the composition root that wires the core (`bot`), the adapters, the worker (`jobs`),
the stand-ins (`sandbox`) and the benchmarks (`bench`) together. Nothing in `bot/` imports it."""

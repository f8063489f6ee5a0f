"""Prompt chains as data: YAML files whose steps call the model (or ask the user) in order, each seeing the
earlier steps' outputs. `spec` (the format and its checks), `templates` (Jinja2, sandboxed), `library` (loading
the shipped chains and CHAINS_DIR's), `scope` (what templates see), `runner` (a chain as durable steps)."""

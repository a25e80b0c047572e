"""The `agentos` command and its subcommands: run, requirements, implement, keys, status, logs,
report."""

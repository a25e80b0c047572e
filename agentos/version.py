"""agentos's version, in a module of its own: what reads it (the CLI, run.json, the report page)
imports this, not the package's face, which stands above every module it exports."""

__version__ = "0.1.0"

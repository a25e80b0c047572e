"""The real agent CLIs (Claude Code, Gemini CLI) that `make test-clis` installs from npm."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.processes import REPO

NODE_BIN = REPO / "build" / "node" / "node_modules" / ".bin"
#: the key the agent tests lease to a CLI (the loopback servers accept any)
KEY = "sk-ant-leased-key-0123456789"


def need(tool: str) -> Path:
    path = NODE_BIN / tool
    if not path.exists():
        pytest.skip(f"{tool} is not installed in {NODE_BIN}: run 'make test-clis' (needs npm)")
    return path

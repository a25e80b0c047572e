#!/usr/bin/env python3
"""Turn approved LLDs (<repo>/docs/lld/active/*.md) into implementation bundles
(<repo>/docs/implementations/<id>/).

    python scripts/run_implement_from_lld.py --repo R [--parallel 4] [--dry-run] [--implementer X]

Thin on purpose: the implement workflow is two callbacks, `collect_items` (one item per pending
approved LLD) and `execute_item` (prompt the agent, write the bundle), in
agentos/workflows/implement/. The shared runner owns everything else. Same as `agentos implement`.
"""

import sys
from pathlib import Path

try:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout
    from agentos import quick_exit

    quick_exit.install()  # first: the interpreter's teardown is skipped (see its docstring)
    from agentos.workflows.parallel.shutdown import EarlyInterrupt

    EarlyInterrupt.install()  # a Ctrl+C from here on is never lost (see its docstring)
    from agentos.cli import run_workflow_cli
    from agentos.workflows.implement import WORKFLOW  # collect_items + execute_item
except KeyboardInterrupt:
    sys.exit(130)

if __name__ == "__main__":
    run_workflow_cli(WORKFLOW, prog_name="run_implement_from_lld.py")

#!/usr/bin/env python3
"""Turn issue briefs (<repo>/ideas/active/*.md) into reviewed LLDs: approved ones in
<repo>/docs/lld/active/, Drafts in <repo>/docs/lld/drafts/.

    python scripts/run_requirements_workflow.py --repo R --drafter SPEC [--parallel 4] [--dry-run]

Thin on purpose: the requirements workflow is two callbacks, `collect_items` (one item per pending
brief) and `execute_item` (draft, review, write the LLD), in agentos/workflows/requirements/. The
shared runner owns every option, the sequential/parallel choice, keys, output, Ctrl+C and the
summary. Same as `agentos requirements`.
"""

import sys
from pathlib import Path

try:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runnable from a checkout
    from agentos.commands import quick_exit

    quick_exit.install()  # first: the interpreter's teardown is skipped (see its docstring)
    from agentos.engine.shutdown import EarlyInterrupt

    EarlyInterrupt.install()  # a Ctrl+C from here on is never lost (see its docstring)
    from agentos.commands.cli import run_workflow_cli
    from agentos.workflows.requirements import WORKFLOW  # collect_items + execute_item
except KeyboardInterrupt:
    sys.exit(130)

if __name__ == "__main__":
    run_workflow_cli(WORKFLOW, prog_name="run_requirements_workflow.py")

"""The suite's plugin: the process scope every test runs in, the leftover-process check after it
(tests/support/processes.py says how both work), the chaos figures at the end.

Layout: unit/ tests code in this process; cli/ runs the command line (click's CliRunner or a
short `agentos` process); e2e/ runs agentos as a process over real repositories, agent CLIs and
Dask (marked `slow` by e2e/conftest.py); chaos/ is adversarial (marked `chaos`); support/ holds
what they share.
"""

pytest_plugins = ["support.processes", "support.listener"]

"""What the tests share: running agentos as a process inside the test's scope (processes), the
run directory's files (rundir), key files, fake providers and agent servers, chaos helpers."""

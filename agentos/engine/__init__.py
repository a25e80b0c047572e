"""The run loop, the same for every backend.

batch.py       the queue, the keys, the journal, progress and messages of one run
scheduler.py   which item goes next: retries, backoff, rate-limit requeues (pure)
controller.py  the event loop of the parallel backends: fill, drain, terminate
attempt.py     one attempt of one item, wherever it runs
shutdown.py    two-stage Ctrl+C/SIGTERM: handlers that only set a flag
output/        item output: captured in the worker, prefixed and shown in the parent
backends/      where attempts run: this process, loky workers, a Dask cluster
"""

"""The executor: loky worker pool, key coordinator, output capture, shutdown, journal.

Modules, one concept each:

    pool.py         the loky pool and the controller loop (data-flow picture in its docstring)
    worker.py       worker initializer and task function (runs in the workers)
    attempt.py      one attempt of one item, in a worker or in-process
    context.py      ItemContext and ctx.run (subprocesses in their own process group)
    capture.py      fd-level capture of an item's output (worker side)
    output.py       the prefixing listener: terminal, log files, redaction (parent side)
    controller.py   the event loop both parallel backends share
    dask_backend.py --backend dask (client side); dask_worker.py: its tasks on the workers
    key_server.py   the Manager process serving the coordinator (loky backend)
    terminal.py     serialised writes to the parent's terminal, colours
    progress.py     tqdm bar / periodic status line
    credentials.py  key loading, labels, redaction, the coordinator and its Manager server
    scheduler.py    queue, retries, rate-limit accounting (pure)
    batch.py        what sequential and parallel modes share
    sequential.py   sequential mode
    shutdown.py     two-stage SIGINT/SIGTERM handling
    process_tree.py process groups, parent-death signal, kill by run tag
    journal.py      run directory, journal.jsonl, joblog.tsv, resume
    sanitize.py     item id rules
"""

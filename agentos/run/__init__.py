"""The parent side of a run: from the command line to the summary.

options.py    the options every command shares
runner.py     options → items → checks → the engine → the summary and exit code
recorded.py   what run.json records of a run's options, and --resume restores
resume.py     which items an earlier pass finished
summary.py    summary.json and the summary table
notify.py     the summary sent when the run ends
locks.py      one run of a workflow per repository at a time
about.py      what run.json says about the run for people
writable.py   every place the run writes, checked before anything runs
"""

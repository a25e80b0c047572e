"""An item's output, from its file descriptors to the terminal and its log.

capture.py    worker side: fds 1 and 2 of an attempt onto two pipes to the parent
listener.py   parent side: one thread reads every pipe, prefixes, redacts, logs
control.py    parent side: who may connect to the listener, and what a worker tells it
lines.py      parent side: bytes read into whole lines on the terminal and in the logs
escape.py     what an item prints reaches the terminal escaped, never obeyed
terminal.py   serialised writes to the parent's terminal, colours
progress.py   the progress bar or the periodic status line
"""

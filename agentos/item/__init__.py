"""What a workflow's `execute_item(item, ctx)` gets and uses; runs in the workers.

unit.py          Item: one unit of work
workflow.py      Workflow and Option: what a workflow declares
context.py       ItemContext: the one face an item uses (its keys, commands, usage, files)
keys.py          the attempt's keys: its lease, a key per call from the governor, redaction
process.py       the commands an item runs: own session, the key in their environment, the pump
ids.py           the item id rule and ids made from arbitrary text
refusals.py      a provider's kinds of "no", read from answers, headers and messages
process_tree.py  process groups, the parent-death signal, the run tag
"""

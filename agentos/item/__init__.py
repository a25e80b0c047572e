"""What a workflow's `execute_item(item, ctx)` gets and uses; runs in the workers.

workflow.py      Item, Workflow and Option: what a workflow declares
context.py       ItemContext: the attempt's key, its subprocesses, its usage, redaction
ids.py           the item id rule and ids made from arbitrary text
refusals.py      a provider's kinds of "no", read from answers, headers and messages
process_tree.py  process groups, the parent-death signal, the run tag
"""

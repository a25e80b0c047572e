"""`agentos report RUN_DIR`: one self-contained HTML page about a run.

    run dir ──► data.RunRecord.load ──► charts (plotly figures) ──► page.render ──► report.html
    (journal, summary, run.json,          timeline of attempts,     summary table,
     metrics.jsonl, logs/)                calls and refusals,       failed items' log
                                          spend over time           tails, options

`data` reads the run directory and needs nothing outside the base install; `charts` and `page`
need plotly (the `report` extra), whose JavaScript is embedded in the page so that it opens from
disk with no network.
"""

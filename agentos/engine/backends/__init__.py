"""Where attempts run.

sequential.py   in this process, one after another, like a plain tool
loky.py         loky worker processes on this machine (loky_worker.py: their side)
dask.py         a Dask cluster (dask_worker.py: the workers' side)
"""

"""Collection rules for the source tree (``python -m pytest`` from the repository root)."""

import importlib.util

# cypool.dask and its doctests need the optional dask extra; its tests skip without it.
collect_ignore_glob = [] if importlib.util.find_spec("dask") else ["src/cypool/dask/*"]

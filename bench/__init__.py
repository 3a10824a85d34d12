"""Load benchmark of the help line: real hops over HTTP against a same-run baseline.

Run it with ``make bench`` (``python -m bench``); see ``bench/README.md``.
"""

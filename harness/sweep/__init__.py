"""Sweeps: a suite expanded into runs, executed locally (core-aware) or on Ray, resumably.

Modules: ``plan`` (run folders, their state on disk, the dry-run estimate), ``runner`` (one run in
its own process: ``python -m harness.sweep.runner RUN_DIR``), ``local`` (the core-packing local
executor), ``ray_executor`` (one Ray task per run, files shipped back to the driver), ``display``
(live table, summary, ``harness status``), ``lock`` (one sweep per suite folder), ``cli`` (the
``sweep``, ``status`` and ``demo`` commands).
"""

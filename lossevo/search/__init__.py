"""The search: a campaign from its TOML config to a run directory — the generation loop,
variation, constant tuning, multi-task fitness, map backends, the SQLite store and reports.

It drives :mod:`lossevo.evaluation` over expressions from :mod:`lossevo.symbolic`.
"""

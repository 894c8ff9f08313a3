"""``lossevo compare``: evolved losses against robust losses and training schemes.

Every contender trains on the same tasks, instances (seeds) and budget; the outputs say who
wins on two headline test scores (clean and worst environment), by how much, how reliably
(paired Wilcoxon tests, ranks across tasks) and against a chance floor. A package rather than
``lossevo/compare.py`` so that ``lossevo.compare`` stays the function. Modules: ``config``
(TOML → contenders as plain data), ``tuning`` (each contender's grid point chosen on
validation), ``protocol`` (work units, the worker, the run), ``stats`` (tests and
intervals), ``rows`` (per-score statistics, the floor, ranks), ``report``
(CSV/JSON/Markdown), ``plots`` (PNG), ``units`` (the output directory and the finished units
kept in it). The chance floor (the constant predictor's
scores) is lossevo.evaluation.chance: multi-task campaigns normalize by it too.
"""

from lossevo.comparison.config import (
    CompareConfig,
    Contender,
    builtin_names,
    compare_config_from_mapping,
    load_compare_config,
)
from lossevo.comparison.protocol import (
    CompareInterrupted,
    compare,
    make_units,
    run_comparison,
    run_unit,
)

__all__ = [
    "CompareConfig",
    "CompareInterrupted",
    "Contender",
    "builtin_names",
    "compare",
    "compare_config_from_mapping",
    "load_compare_config",
    "make_units",
    "run_comparison",
    "run_unit",
]

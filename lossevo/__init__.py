"""lossevo: discover loss functions by genetic programming, measured under label noise and shift.

The symbolic core turns expression text into sympy, canonical keys and compiled torch losses;
the fitness engine trains models with a loss under noisy labels and scores them on shifted test
environments; campaigns evolve losses and keep every candidate in a run directory.

>>> import lossevo
>>> lossevo.to_sympy("sub(mul(y_true, log(y_pred)), div(y_pred, 2.5))")
-0.4*y_pred + y_true*plog(y_pred)
"""

from lossevo.compile import compile_expression
from lossevo.fidelity import Fidelity
from lossevo.fitness import Evaluation, evaluate, evaluate_many
from lossevo.loss import SymbolicLoss
from lossevo.probes import check_expression
from lossevo.racing import Racing
from lossevo.scale import Scale, measure_scale
from lossevo.symbolic import canonical_key, to_latex, to_sympy
from lossevo.tasks import Budget, Environment, Noise, Shift, Task, list_tasks, load_task

__version__ = "0.1.0"
__all__ = [
    "Budget",
    "Environment",
    "Evaluation",
    "Fidelity",
    "Noise",
    "Racing",
    "Scale",
    "Shift",
    "SymbolicLoss",
    "Task",
    "__version__",
    "canonical_key",
    "check_expression",
    "compare",
    "compile_expression",
    "evaluate",
    "evaluate_many",
    "export_loss",
    "list_tasks",
    "load_task",
    "measure_scale",
    "resume",
    "run",
    "to_latex",
    "to_sympy",
]


def __getattr__(name: str):
    """Campaign and export entry points load on first use (they pull in more modules)."""
    if name in ("run", "resume"):
        from lossevo import campaign

        return getattr(campaign, name)
    if name == "compare":
        from lossevo.comparison import compare

        return compare
    if name == "export_loss":
        from lossevo.export import export_loss

        return export_loss
    raise AttributeError(f"module 'lossevo' has no attribute {name!r}")

"""lossevo: discover loss functions by genetic programming, measured under label noise and shift.

The symbolic core turns expression text into sympy, canonical keys and compiled torch losses;
the fitness engine trains models with a loss under noisy labels and scores them on shifted test
environments; campaigns evolve losses and keep every candidate in a run directory.

>>> import lossevo
>>> lossevo.to_sympy("sub(mul(y_true, log(y_pred)), div(y_pred, 2.5))")
-0.4*y_pred + y_true*plog(y_pred)
"""

from lossevo.evaluation.fidelity import Fidelity
from lossevo.evaluation.fitness import Evaluation, evaluate, evaluate_many
from lossevo.evaluation.racing import Racing
from lossevo.evaluation.tasks import Budget, Environment, Noise, Task, list_tasks, load_task
from lossevo.symbolic.compile import compile_expression
from lossevo.symbolic.expression import canonical_key, to_latex, to_sympy
from lossevo.symbolic.kinds import TaskKind
from lossevo.symbolic.loss import SymbolicLoss
from lossevo.symbolic.probes import check_expression
from lossevo.symbolic.scale import Scale, measure_scale

__version__ = "0.1.0"
__all__ = [
    "Budget",
    "Environment",
    "Evaluation",
    "Fidelity",
    "Noise",
    "Racing",
    "Scale",
    "SymbolicLoss",
    "Task",
    "TaskKind",
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
        from lossevo.search import campaign

        return getattr(campaign, name)
    if name == "compare":
        from lossevo.comparison import compare

        return compare
    if name == "export_loss":
        from lossevo.symbolic.export import export_loss

        return export_loss
    raise AttributeError(f"module 'lossevo' has no attribute {name!r}")

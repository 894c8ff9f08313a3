"""lossevo: discover loss functions by genetic programming, measured under label noise and shift.

The symbolic core: expression text ↔ DEAP tree ↔ sympy ↔ compiled torch loss.

>>> import lossevo
>>> lossevo.to_sympy("sub(mul(y_true, log(y_pred)), div(y_pred, 2.5))")
-0.4*y_pred + y_true*plog(y_pred)
"""

from lossevo.compile import compile_expression
from lossevo.loss import SymbolicLoss
from lossevo.probes import check_expression
from lossevo.symbolic import canonical_key, to_latex, to_sympy

__version__ = "0.1.0"
__all__ = [
    "SymbolicLoss",
    "__version__",
    "canonical_key",
    "check_expression",
    "compile_expression",
    "to_latex",
    "to_sympy",
]

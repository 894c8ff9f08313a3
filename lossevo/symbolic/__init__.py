"""The symbolic core: one primitive table, trees ↔ text ↔ sympy, compiled torch losses.

Everything that knows what an expression *is* lives here — parsing, the DEAP grammar, the
canonical sympy form and its key, the torch compiler, the numpy oracle, the probes that reject
a candidate before training, and the standalone export. Nothing here trains a model.
"""

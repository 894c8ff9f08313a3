"""lossevo: discover loss functions by genetic programming, measured under label noise and shift."""

__version__ = "0.1.0"
__all__ = ["__version__"]

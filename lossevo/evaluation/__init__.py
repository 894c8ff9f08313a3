"""Evaluation: what a loss is scored on and how — tasks, data, noise, shifted environments,
stacked models, batched training, racing over instances, statistics and the fitness vector.

It takes a loss (a compiled expression or a baseline) and returns numbers; it knows nothing of
populations, run directories or campaigns.
"""

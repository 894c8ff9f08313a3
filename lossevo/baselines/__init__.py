"""Named baselines for `lossevo compare`: robust losses (`losses`) and training schemes
(`schemes`) with their papers' recommended hyperparameters."""

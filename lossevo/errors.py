"""Errors the CLI maps to exit codes; kept free of heavy imports so that mapping them costs
nothing (importing the campaign would load torch for ``lossevo tasks``)."""

from __future__ import annotations

__all__ = ["CampaignFailed"]


class CampaignFailed(RuntimeError):
    """Every candidate of a campaign was rejected: nothing was learned. The message counts
    the reasons, which usually point at the task (e.g. a learning rate that diverges)."""

"""dro: Wasserstein, χ², CVaR and group distributionally robust optimization."""

__all__: list[str] = []

"""Every config under experiments/ parses: a typo in a long experiment's file must fail here,
in seconds, not after the campaign before it has run for an hour."""

from pathlib import Path

import pytest

from lossevo.comparison.config import compare_config_from_mapping
from lossevo.search.config import config_from_mapping, read_toml

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_experiment_config_is_valid(path):
    data = read_toml(path)
    if "contenders" in data:  # a comparison; its evolved contenders need runs that may not exist
        data["contenders"] = [c for c in data["contenders"]
                              if not (isinstance(c, dict) and "evolved" in c)] or ["ce"]
        assert compare_config_from_mapping(data).tasks
    else:
        assert config_from_mapping(data).tasks


def test_the_discovery_comparison_covers_the_campaign_tasks():
    """Compare reports the campaign's own tasks by the same names and budgets."""
    root = CONFIGS[0].parent
    campaign = config_from_mapping(read_toml(root / "discovery.toml"))
    data = read_toml(root / "discovery-compare.toml")
    data["contenders"] = ["ce"]
    compared = {t.name: t for t in compare_config_from_mapping(data).tasks}
    for task in campaign.tasks:
        assert compared[task.name] == task

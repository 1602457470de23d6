"""Journey mixes: validated like every load parameter, and really applied to the Locust user class.

The user-class checks run in a fresh interpreter: Locust monkey-patches the standard library with gevent
on import, which breaks inside pytest once ssl is loaded (the load itself runs as `python -m load` too).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from load.mixes import JOURNEYS, MIXES, check_mix
from load.profiles import LoadConfigError, params_from_mapping, resolve_params

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
from load.journeys import ShopUser, configure
def names(cls):
    counts = {}
    for fn in cls.tasks:
        counts[fn.__name__] = counts.get(fn.__name__, 0) + 1
    return counts
buying = configure(0.5, "buying")
print(json.dumps({"declared": names(ShopUser), "buying": names(buying),
                  "factor": buying.think_time_factor, "base_factor": ShopUser.think_time_factor,
                  "journeys": sorted(n for n in dir(ShopUser) if n in %r)}))
"""


@pytest.fixture(scope="module")
def user_classes() -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (JOURNEYS,)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_browsing_mix_is_the_task_decorators_weights(user_classes: dict[str, Any]) -> None:
    """The default mix must not silently change the traffic shape the benchmarks were measured with."""
    assert user_classes["declared"] == dict(MIXES["browsing"].weights)


def test_every_mix_weighs_every_journey_of_the_user_class(user_classes: dict[str, Any]) -> None:
    assert user_classes["journeys"] == sorted(JOURNEYS)
    for mix in MIXES.values():
        assert set(mix.weights) == set(JOURNEYS)


def test_configure_applies_the_mix_weights(user_classes: dict[str, Any]) -> None:
    assert user_classes["buying"] == {j: w for j, w in MIXES["buying"].weights.items() if w > 0}
    assert user_classes["factor"] == 0.5


def test_buying_raises_the_checkout_share_several_fold() -> None:
    assert MIXES["buying"].share("checkout") >= 5 * MIXES["browsing"].share("checkout")
    assert MIXES["buying"].share("sign_in_again") >= 3 * MIXES["browsing"].share("sign_in_again")


def test_unknown_mix_is_a_load_config_error_naming_the_field_and_choices() -> None:
    with pytest.raises(LoadConfigError) as info:
        resolve_params("steady", mix="shopping-spree")
    assert info.value.field == "mix"
    assert "browsing" in info.value.message and "buying" in info.value.message


def test_mix_round_trips_through_summary_params() -> None:
    params = resolve_params("steady", 3, "10s", mix="buying")
    assert params.mix == "buying"
    assert params_from_mapping(params.to_dict()) == params
    assert resolve_params("steady").mix == "browsing"
    assert check_mix("browsing").name == "browsing"


def test_cli_rejects_an_unknown_mix_before_starting() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "load",
            "--profile",
            "steady",
            "--mix",
            "nope",
            "--host",
            "http://127.0.0.1:9",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--mix" in out.stderr and "buying" in out.stderr

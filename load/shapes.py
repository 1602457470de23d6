"""Locust LoadTestShape classes, one per profile, each a thin adapter over the pure schedule in
`load.profiles` (where the curves are defined and tested without Locust).

Importing this module imports Locust, which monkey-patches the standard library with gevent: only the
load process (`python -m load`) imports it."""

from __future__ import annotations

from typing import ClassVar

from locust import LoadTestShape

from load.profiles import PROFILES, LoadParams, schedule_at


class ProfileShape(LoadTestShape):
    """Follows `schedule_at(params, run time)`; returns None (stop) when the duration is over."""

    abstract = True
    profile: ClassVar[str] = ""

    def __init__(self, params: LoadParams) -> None:
        super().__init__()
        if params.profile != self.profile:
            raise ValueError(f"{type(self).__name__} runs profile {self.profile!r}, got {params.profile!r}")
        self.params = params

    def tick(self) -> tuple[int, float] | None:
        target = schedule_at(self.params, self.get_run_time())
        return None if target is None else (target.users, target.spawn_rate)


class SteadyShape(ProfileShape):
    profile = "steady"


class RampShape(ProfileShape):
    profile = "ramp"


class SpikeShape(ProfileShape):
    profile = "spike"


class StepShape(ProfileShape):
    profile = "step"


class SoakShape(ProfileShape):
    profile = "soak"


class DiurnalShape(ProfileShape):
    profile = "diurnal"


SHAPES: dict[str, type[ProfileShape]] = {
    cls.profile: cls for cls in (SteadyShape, RampShape, SpikeShape, StepShape, SoakShape, DiurnalShape)
}
assert set(SHAPES) == set(PROFILES), "every profile needs a shape class"


def shape_for(params: LoadParams) -> ProfileShape:
    return SHAPES[params.profile](params)

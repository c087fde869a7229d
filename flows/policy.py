"""The one place that sets orchestration policy for every task.

``redweb_task(fn, kind=...)`` wraps a plain function from ``tasks/`` or ``model/`` as a Prefect
task: network steps get retries with exponential backoff and jitter, GPU steps the ``gpu`` tag
(a Prefect concurrency limit on that tag keeps one job per GPU), every step a cache policy.
Default cache policy is NO_CACHE: the catalog's states are what make re-runs skip finished
work, and a cache that outlives a wiped catalog would skip work wrongly.
"""
from __future__ import annotations

from typing import Any, Callable, Literal

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

Kind = Literal["cpu", "network", "gpu", "db"]

_POLICY: dict[str, dict[str, Any]] = {
    "cpu": dict(retries=0, tags=["cpu"]),
    "db": dict(retries=2, retry_delay_seconds=[1, 5], tags=["db"]),
    "network": dict(retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=2), retry_jitter_factor=0.5,
                    tags=["network"]),
    "gpu": dict(retries=1, retry_delay_seconds=10, tags=["gpu"]),
}


def redweb_task(fn: Callable, *, kind: Kind = "cpu", **overrides: Any):
    """Wrap ``fn`` as a Prefect task with the project's policy for ``kind``."""
    options: dict[str, Any] = {"cache_policy": NO_CACHE, "log_prints": True, **_POLICY[kind]}
    options.update(overrides)
    return task(fn, **options)

"""The load generator Job: its arguments are accepted by the real `python -m load` parser and profile
validation, it targets the in-cluster gateway Service, serves its metrics on the port Prometheus scrapes,
and is bounded in time so load never outlives its run."""

from __future__ import annotations

from typing import Any

from deploy_support import kind_objects, render
from k8s_walk import container_port, find, pod_spec

from load.__main__ import build_parser
from load.profiles import resolve_params, resolve_workers
from load.target import check_url
from sample_shop.topology import LOAD_METRICS_PORT


def _job() -> dict[str, Any]:
    return find(render("kind-load"), "Job", "load-generator", "shop")


def test_arguments_are_valid_for_python_m_load() -> None:
    container = pod_spec(_job())["containers"][0]
    assert container["command"] == ["python", "-m", "load"]
    args = build_parser().parse_args(container["args"])
    params = resolve_params(args.profile, args.users, args.duration, args.spawn_rate, args.think_time_factor)
    assert params.duration_s > 0 and params.users > 0
    assert args.metrics_port == LOAD_METRICS_PORT == container_port(container, "metrics")
    assert args.metrics_host == "0.0.0.0", "Prometheus scrapes the pod IP, not its loopback"
    assert str(args.out).startswith(
        next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "results")
    )


def test_load_goes_only_to_the_shops_gateway() -> None:
    args = build_parser().parse_args(pod_spec(_job())["containers"][0]["args"])
    _, hostname, port = check_url(args.host)
    service, namespace, svc = hostname.split(".")
    assert (namespace, svc) == ("shop", "svc")
    gateway = find(kind_objects(), "Service", service, namespace)
    assert gateway["metadata"]["name"] == "gateway" and port == gateway["spec"]["ports"][0]["port"]


def test_job_is_bounded_in_time_and_not_retried() -> None:
    job = _job()
    args = build_parser().parse_args(pod_spec(job)["containers"][0]["args"])
    params = resolve_params(args.profile, args.users, args.duration, args.spawn_rate, args.think_time_factor)
    deadline = job["spec"]["activeDeadlineSeconds"]
    assert params.duration_s < deadline <= params.duration_s * 3, "deadline: the run plus a margin, no more"
    assert job["spec"]["backoffLimit"] == 0
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] > 0


def test_the_job_runs_a_master_and_workers_within_its_cpu_limit() -> None:
    """`--workers N` in the pod: Locust's master and N worker processes share the results folder, and the
    container may use N cores (a CPU limit below N would throttle the workers into one core's worth)."""
    container = pod_spec(_job())["containers"][0]
    workers = resolve_workers(build_parser().parse_args(container["args"]).workers)
    assert workers >= 2
    limit = str(container["resources"]["limits"]["cpu"])
    cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    assert cores >= workers

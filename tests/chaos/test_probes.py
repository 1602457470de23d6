"""The chaosshop health probe against the real session stack (real services, real Prometheus)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chaosshop.probes import stack_healthy

from sample_shop.topology import ReplicaEndpoint, StackDescriptor


def _descriptor_copy(stack: StackDescriptor, folder: Path, replicas: list[ReplicaEndpoint]) -> Path:
    (folder / StackDescriptor.FILE_NAME).write_text(dataclasses.replace(stack, replicas=replicas).to_json())
    return folder


def test_stack_healthy_counts_scraped_replicas_per_service(
    clean_stack: StackDescriptor, tmp_path: Path
) -> None:
    assert stack_healthy({"state_dir": clean_stack.state_dir}) is True
    catalog = clean_stack.replicas_of("catalog")
    assert len(catalog) == 2  # the suite runs two catalog replicas

    # kind names a replica by its pod, not an index: the probe counts per service, so it still holds
    renamed = [dataclasses.replace(r, replica=r.replica + 7) for r in clean_stack.replicas]
    assert stack_healthy({"state_dir": str(_descriptor_copy(clean_stack, tmp_path, renamed))}) is True

    # a declared third catalog replica that Prometheus does not scrape: not healthy
    (tmp_path / "more").mkdir()
    more = [*clean_stack.replicas, dataclasses.replace(catalog[0], replica=2)]
    assert stack_healthy({"state_dir": str(_descriptor_copy(clean_stack, tmp_path / "more", more))}) is False

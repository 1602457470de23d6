"""The kind target's assumptions (testbed/runtime/kind.py) agree with what `make deploy` applies (the kind
overlay rendered with the real `kubectl kustomize`) and with kind-config.yaml: the Deployments it waits
for, the replicas it describes, the host ports it probes and publishes in stack.json. Static: no cluster."""

from __future__ import annotations

import yaml
from deploy_support import REPO, kind_objects
from k8s_walk import find, of_kind, shop_deployments

from testbed.runtime.kind import EXPECTED_DEPLOYMENTS, HOST_PORT_OF_POD, HOST_PORTS, deployed_replicas


def test_the_deployments_waited_for_are_the_ones_deployed() -> None:
    deployed: dict[str, set[str]] = {}
    for d in of_kind(kind_objects(), "Deployment"):
        deployed.setdefault(d["metadata"]["namespace"], set()).add(d["metadata"]["name"])
    assert deployed == {ns: set(names) for ns, names in EXPECTED_DEPLOYMENTS.items()}


def test_the_replicas_described_are_the_ones_deployed() -> None:
    replicas = {name: d["spec"]["replicas"] for name, d in shop_deployments(kind_objects()).items()}
    assert set(replicas.values()) == {deployed_replicas()} == {2}


def test_the_host_ports_probed_are_the_ones_kind_maps_to_the_services() -> None:
    config = yaml.safe_load((REPO / "kind-config.yaml").read_text())
    mappings = {
        m["hostPort"]: m["containerPort"]
        for node in config["nodes"]
        for m in node.get("extraPortMappings", [])
    }
    assert set(mappings) == set(HOST_PORTS.values())
    namespace_of = {name: ns for ns, names in EXPECTED_DEPLOYMENTS.items() for name in names}
    for service, host in HOST_PORT_OF_POD.items():
        node_port = find(kind_objects(), "Service", service, namespace_of[service])["spec"]["ports"][0][
            "nodePort"
        ]
        assert mappings[HOST_PORTS[host]] == node_port, service

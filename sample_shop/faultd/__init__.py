"""The fault controller and the stack's control API: one fault API for a whole stack (docs/faults.md).

- `api.create_control_app`: the control API (/faults, /policy, /phases, /metrics, /healthz).
- `controller.FaultController`: validates faults once, keeps the desired state, pushes it to every replica's
  admin API and re-applies it when a replica restarts; `controller.local_controller` builds it on a local
  supervisor's process table (`processes.ProcessControl`).
- `discovery`: where the replicas are (the local process table, or the Kubernetes API on kind).
- `client.ControlClient`: what the CLI and the experiments call the API with.

Locally the supervisor (testbed/runtime/supervisor.py) serves the app in its own process and adds its
/processes route; on kind it runs as its own Deployment, `python -m sample_shop.faultd`. Importing this
package is cheap (the CLI imports its client): nothing is imported here.
"""

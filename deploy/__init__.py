"""Kubernetes deployment of the chaos shop: kustomize manifests, and the helper that assembles
its generated parts (`python -m deploy.assemble`)."""

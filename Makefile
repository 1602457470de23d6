# The testbed's front door. Every target is a thin wrapper around the `testbed` CLI or a tool in .venv,
# so that what the README shows, what CI runs and what a user types are the same commands.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TESTBED := $(BIN)/testbed

# the default experiment: a real finding (retries absorb a 30 % payment failure burst) in ~2 minutes while
# every SLO holds by design, so the CI job is green unless resilience regresses (docs/experiments.md)
EXP ?= payment-errors
PROFILE ?= steady
TARGET ?= local
USERS ?=
DURATION ?=
SPAWN_RATE ?=
REPLICAS ?=
CLUSTER ?= chaos-shop
KIND_CONTEXT := kind-$(CLUSTER)
# the prometheus-adapter chart of `make kind-autoscaling` (adapter v0.12.0; deploy/prometheus-adapter/values.yaml)
PROMETHEUS_ADAPTER_CHART := 4.11.0

# $(call need,TOOL,INSTALL_URL): stop with a clear message when a kind tool is missing
need = command -v $(1) >/dev/null 2>&1 || { echo "error: $(1) is not installed; see $(2) (docs/kind.md)" >&2; exit 1; }

.DEFAULT_GOAL := help
.PHONY: help setup up down status test test-fast lint load experiment slo-check slo-rules notebooks bench \
        bench-smoke traces-ui cluster images deploy kind-autoscaling kind-load cluster-down clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required (found %s); set PYTHON=python3.11" % sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	@touch $@

setup: $(VENV)/.installed ## create .venv, install Python deps and the system packages (scripts/system-packages.txt) if missing
	@scripts/install-system-deps.sh
	@echo "setup done. Next: 'make experiment' (the main job) or 'make test'."

up: ## start the local stack (services + Prometheus), e.g. make up REPLICAS=catalog=2
	$(TESTBED) up $(if $(REPLICAS),--replicas $(REPLICAS))

down: ## stop the local stack; leaves no process or port behind
	$(TESTBED) down

status: ## show every process, its health and URL
	$(TESTBED) status

test: ## run the test suite (real processes, real Prometheus, real Locust and chaos run)
	$(BIN)/pytest --durations=25  # the slowest tests and their times end the log (CI keeps under 30 min)

test-fast: ## the tests that need no stack, for the edit-test loop (about a minute): pytest -m "not stack and not slow"
	$(BIN)/pytest -m "not stack and not slow"

lint: ## ruff, and mypy (strict on slo/, sample_shop/kit/, sample_shop/faultd/, testbed/: [tool.mypy] in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

load: ## run a load profile against the stack: make load PROFILE=spike USERS=20 DURATION=60s [SPAWN_RATE=5]
	$(TESTBED) load --profile $(PROFILE) $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) $(if $(SPAWN_RATE),--spawn-rate $(SPAWN_RATE))

experiment: ## run one experiment end to end: make experiment [EXP=name] [PROFILE=steady] [TARGET=local] [USERS=n]
	$(TESTBED) experiment run $(EXP) --target $(TARGET) $(if $(filter-out file,$(origin PROFILE)),--profile $(PROFILE)) $(if $(USERS),--users $(USERS))

slo-check: ## the SLO gate over the latest run (exit 0 met, 1 breached, 2 cannot judge)
	$(TESTBED) slo check --run runs/latest

slo-rules: ## regenerate and check the Prometheus rules from slo/*.yaml
	$(TESTBED) slo rules --check

notebooks: ## execute every notebook headless against runs/latest
	$(BIN)/python -m notebooks.execute

traces-ui: ## traces in a real UI here: Phoenix (installed once into ~/.cache), the stack sending to it, one checkout
	$(BIN)/python -m testbed.tracesui

bench: ## run the benchmarks and rewrite bench/RESULTS.md
	$(BIN)/python -m bench

bench-smoke: ## the benchmarks with tiny durations (also part of make test)
	$(BIN)/python -m bench --smoke

cluster: ## kind: create the cluster from kind-config.yaml (1 control plane, 2 workers, host ports on 127.0.0.1)
	@$(call need,kind,https://kind.sigs.k8s.io/docs/user/quick-start/#installation)
	kind create cluster --name $(CLUSTER) --config kind-config.yaml --wait 120s

images: ## kind: build the one shop image (deploy/Dockerfile) and load it into the cluster
	@$(call need,docker,https://docs.docker.com/engine/install/)
	DOCKER_BUILDKIT=1 docker build -t chaos-shop:0.1.0 -f deploy/Dockerfile .
	kind load docker-image chaos-shop:0.1.0 --name $(CLUSTER)

deploy: ## kind: generate secrets/SLO rules/Grafana provisioning, apply the shop and observability, wait until ready
	@$(call need,kubectl,https://kubernetes.io/docs/tasks/tools/)
	$(BIN)/python -m deploy.assemble
	kubectl --context $(KIND_CONTEXT) apply --server-side -k deploy/overlays/kind
	kubectl --context $(KIND_CONTEXT) -n shop rollout status statefulset/postgres --timeout=300s
	kubectl --context $(KIND_CONTEXT) -n shop wait --for=condition=Available deployment --all --timeout=300s
	kubectl --context $(KIND_CONTEXT) -n shop-observability wait --for=condition=Available deployment --all --timeout=300s
	@echo "ready: gateway http://127.0.0.1:8080  Grafana http://127.0.0.1:3000  Prometheus http://127.0.0.1:9090  Jaeger http://127.0.0.1:16686"

kind-autoscaling: ## kind: the metrics adapter the notifications HPA reads its backlog metric from (Helm)
	@$(call need,helm,https://helm.sh/docs/intro/install/)
	helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
	helm --kube-context $(KIND_CONTEXT) upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
	  --version $(PROMETHEUS_ADAPTER_CHART) --namespace shop-observability -f deploy/prometheus-adapter/values.yaml --wait
	kubectl --context $(KIND_CONTEXT) -n shop get hpa notifications

kind-load: ## kind: one bounded load run inside the cluster (Job: steady, 10 users, 5 min), following its progress
	kubectl --context $(KIND_CONTEXT) -n shop delete job load-generator --ignore-not-found
	kubectl --context $(KIND_CONTEXT) apply -k deploy/overlays/kind-load
	kubectl --context $(KIND_CONTEXT) -n shop wait --for=condition=Ready pod -l job-name=load-generator --timeout=180s
	kubectl --context $(KIND_CONTEXT) -n shop logs -f job/load-generator

cluster-down: ## kind: delete the cluster (and with it every pod, volume and fault)
	kind delete cluster --name $(CLUSTER)

clean: ## stop the stack and remove the state folder (runs/ is kept)
	-$(TESTBED) down
	rm -rf .testbed

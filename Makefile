# hwameistor.io/local — `make help` lists the targets.
SHELL := /usr/bin/env bash -o pipefail
.DEFAULT_GOAL := help

BIN_OUT ?= _output/bin

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the Debian packages the tests and demo need (when missing).
	hack/install-deps.sh

.PHONY: control-plane
control-plane: ## Build (or reuse cached) etcd, kube-apiserver, kube-controller-manager, kubectl, kwok.
	hack/build-control-plane.sh >/dev/null

.PHONY: build
build: ## Build the project's binaries into _output/bin.
	go build -o $(BIN_OUT)/hwameistor-scheduler ./scheduler
	go build -o $(BIN_OUT)/hwameistor-controllers ./controllers/cmd/hwameistor-controllers
	go build -o $(BIN_OUT)/hwameistor-csi-controller ./csidriver/cmd/hwameistor-csi-controller
	go build -o $(BIN_OUT)/hwameistor-node ./csidriver/cmd/hwameistor-node
	go build -o $(BIN_OUT)/hwameistor-sim ./kwok/cmd/hwameistor-sim
	go build -o $(BIN_OUT)/kubectl-hwameistor ./cmd/kubectl-hwameistor

.PHONY: manifests
manifests: ## Regenerate deepcopy code and CRDs (manifests/crds) from api/.
	go tool controller-gen object paths=./api/... paths=./plugins/localstorage/apis/...
	go tool controller-gen crd paths=./api/... output:crd:artifacts:config=manifests/crds

.PHONY: verify
verify: ## gofmt, go vet and pin checks.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	go vet ./...
	hack/verify-pins.sh

.PHONY: test
test: deps control-plane verify ## Unit and integration tests (real etcd + kube-apiserver), -race where it matters, and the VM suite.
	hack/test.sh

.PHONY: test-vm
test-vm: deps control-plane ## The VM suite alone: the storage path on a real kernel in test guests under qemu (part of make test).
	hack/test-vm.sh

.PHONY: guest-image
guest-image: deps ## Build (or reuse cached) the test guests' kernel, initramfs and root disk.
	hack/build-guest-image.sh >/dev/null

.PHONY: bench
bench: deps control-plane ## Benchmarks (hours): scale scenarios with both schedulers, Go benchmarks, scheduler_perf; rewrites docs/benchmarks.md (kwok/benchdoc/README.md).
	hack/bench.sh

.PHONY: cluster-up
cluster-up: deps ## Start a local control plane (etcd, apiserver, controller-manager, kwok) with the CRDs.
	hack/cluster-up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local control plane and remove its state.
	hack/cluster-down.sh

.PHONY: demo
demo: deps control-plane ## The local demo: control plane, 20 fake nodes, volumes scheduled and provisioned, a drain that migrates them (Ctrl-C stops it).
	go run ./kwok/cmd/hwameistor-sim demo

.PHONY: clean
clean: cluster-down ## Remove build output (the control-plane cache stays).
	rm -rf _output

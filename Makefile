# docshift — run `make help` for the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/docshift
SERVICES := scripts/services.sh
ENV_FILE := .services/env
# Loads the addresses of the running services (KAFKA_SEEDS, PG_URL, MONGO_URI).
WITH_ENV := source $(ENV_FILE) &&

.PHONY: help build test unit demo bench lint services-up services-down services-status clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/docshift
	$(GO) build -o $(BIN) ./cmd/docshift

test: lint services-up ## start the real services (Kafka, PostgreSQL, MongoDB wire server) and run every test
	$(WITH_ENV) $(GO) test -count=1 -timeout 20m ./...

unit: ## run the tests that need no services (integration tests skip)
	env -u KAFKA_SEEDS -u PG_URL -u MONGO_URI $(GO) test -count=1 ./...

demo: build services-up ## seed a multi-tenant data set, run snapshot -> Kafka -> consumer, print counts per tenant
	$(WITH_ENV) scripts/demo.sh $(BIN)

bench: services-up ## run the benchmarks, one package at a time so that none measures while another loads the machine (DOCSHIFT_BENCH_RECORDS=1000000,4000000 for bigger topics; snapshots of 200k and 1M documents by default, DOCSHIFT_BENCH_DOCS=4000000 with DOCSHIFT_BENCH_CHUNK_DOCS=200000 and DOCSHIFT_MONGO_HEAP=12g on the test server for 4M)
	$(WITH_ENV) $(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -benchmem -timeout 60m ./...

lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

services-up: ## start the local services (idempotent); addresses in .services/env
	$(SERVICES) up

services-down: ## stop the local services and remove their data
	$(SERVICES) down

services-status: ## say which local services run
	$(SERVICES) status

clean: ## remove build output
	rm -rf bin

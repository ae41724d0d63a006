# Developer entry points. CI runs .ci/run (make ci), which pins the same tool
# versions and checks that they match the ones below.

BUF_VERSION := v1.75.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
GOLANGCI_LINT_VERSION := v2.15.0

# Tools are installed into GOBIN (or GOPATH/bin) and run from there.
GOBIN := $(or $(shell go env GOBIN),$(shell go env GOPATH)/bin)
export PATH := $(GOBIN):$(PATH)

.PHONY: all build test lint proto bench tools ci

all: build test

## build: compile every package
build:
	go build ./...

## test: the full test suite, exactly as the README and CI run it
test:
	go test -race -count=1 -timeout 20m ./...

## lint: golangci-lint (.golangci.yml), buf lint and buf format
lint:
	golangci-lint run ./...
	buf lint
	buf format --diff --exit-code --path proto/sabot

## proto: reprint validate.proto from the Go dependency, then regenerate gen/
proto:
	go run ./internal/cmd/validateproto -out proto/third_party/buf/validate/validate.proto
	buf generate

## bench: every benchmark, no tests
bench:
	go test -run '^$$' -bench . -benchmem ./...

## tools: install the pinned code generators and linters
tools:
	go install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
	go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

## ci: everything CI checks (tools, generated code, lint, tests)
ci:
	.ci/run

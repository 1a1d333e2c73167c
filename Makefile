# The one test command (README, CI): vet, formatting, every test with the race detector, and a
# one-iteration smoke run of every benchmark so they cannot rot. Redis tests need redis-server on
# PATH (.ci/run installs it).
GO ?= go

.PHONY: test build bench clean

test:
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -run '^$$' -bench . -benchtime 1x ./...

build:
	$(GO) build -o bin/ ./cmd/... ./examples/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s ./...

clean:
	rm -rf bin

# The one test command (README, CI): vet, formatting, every test with the race detector, and a
# one-iteration smoke run of every benchmark so they cannot rot. Redis tests need redis-server on
# PATH, and the Eureka client test node and npm (.ci/run installs them); the npm client is
# installed here, from the lock file.
GO ?= go
EUREKAJS := test/e2e/eurekajs

.PHONY: test build bench clean

test: $(EUREKAJS)/node_modules/.package-lock.json
	@test -z "$$(gofmt -l .)" || { echo "gofmt would change:"; gofmt -l .; exit 1; }
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	$(GO) test -race -count=1 -run '^$$' -bench . -benchtime 1x ./...

build:
	$(GO) build -o bin/ ./cmd/... ./examples/...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s ./...

# eureka-js-client for test/e2e/eureka_test.go, exactly as locked. Without npm the test says what
# to install (or A8_SKIP_NODE_TESTS=1 skips it knowingly).
$(EUREKAJS)/node_modules/.package-lock.json: $(EUREKAJS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(EUREKAJS) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "npm not found: the eureka-js-client test will fail (apt-get install -y nodejs npm, or A8_SKIP_NODE_TESTS=1)"; \
	fi

clean:
	rm -rf bin $(EUREKAJS)/node_modules

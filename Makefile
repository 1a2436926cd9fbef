# corral — build, test and measure. Every target installs what it needs.

GO        ?= go
BIN       := bin/corral
# Two cores: run two test packages at a time; the e2e suites are I/O bound.
TESTFLAGS ?= -p 2 -count=1 -timeout 30m
# A count, not a duration: Go 1.26's fuzz coordinator can fail a target
# with "context deadline exceeded" when a duration runs out under load
# (golang/go#75804); a count has no deadline to race.
FUZZTIME  ?= 20000x
# How many tries the fuzzer may spend shrinking each new input it keeps (a
# count, as above): a long one took the default minute, stalling the run.
FUZZMINIMIZETIME ?= 2000x
# Debian packages the tests and the demo use.
APT_DEPS  := iproute2 util-linux curl jq python3 clang llvm postgresql postgresql-client pgbouncer chromium openssh-server openssh-client openssh-sftp-server systemd openssl

.PHONY: all build generate check-generate test fuzz lint bench demo install-deps install uninstall clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/corral

generate:
	$(GO) generate ./bpf

# The generated eBPF objects are committed; regenerating them must change
# nothing. Skipped (with a note) where clang is not installed.
check-generate:
	@if command -v clang >/dev/null; then \
		$(GO) generate ./bpf && git diff --exit-code -- bpf/corral_bpfel.go bpf/corral_bpfel.o || { echo "bpf/: generated files are stale: run make generate and commit"; exit 1; }; \
	else echo "check-generate: clang not installed, skipped"; fi

install-deps:
	@missing=$$(for p in $(APT_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(GO) mod download

# The test command (README). Privileged tests skip as non-root; with
# CORRAL_REQUIRE_PRIVILEGED=1 (CI) a skip is a failure.
test: install-deps
	$(GO) test $(TESTFLAGS) ./...

# Bounded fuzzing of the parsers that see untrusted input. Each run starts
# from the seed corpus only: a corpus grown by earlier long runs would make
# gathering its baseline outlast the time bound.
fuzz:
	$(GO) clean -fuzzcache
	$(GO) test -run '^$$' -fuzz '^FuzzParseEndpoint$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./agent/config
	$(GO) test -run '^$$' -fuzz '^FuzzParseCgroupPath$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./agent/workload
	$(GO) test -run '^$$' -fuzz '^FuzzClassify$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzScrub$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzClientMessages$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzStartup$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzLooksLikeJWT$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./agent/oidc
	$(GO) test -run '^$$' -fuzz '^FuzzFastKey$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/postgres
	$(GO) test -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./recorder
	$(GO) test -run '^$$' -fuzz '^FuzzCommands$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./intercept/ssh/shellcmd
	$(GO) test -run '^$$' -fuzz '^FuzzString$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./internal/jsonenc

lint: check-generate
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfel\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Benchmarks against their baselines in the same run, printed as ratios.
bench: install-deps
	$(GO) test -run '^$$' -bench Connect -benchmem -benchtime 20000x ./test/bench | tee bench.out
	$(GO) test -run '^$$' -bench 'Pgbench|IdleSessionMemory|SSHCat' -benchtime 1x ./test/bench | tee -a bench.out
	$(GO) test -run '^$$' -bench RecordStatement -benchmem ./recorder | tee -a bench.out
	@echo; echo "ratios (1.00 = as fast as the baseline):"
	@$(GO) run ./test/bench/benchratio < bench.out

# corral's main job on this machine: protect a service on a test host and
# show an unmodified client being intercepted.
demo: install-deps build
	./scripts/demo.sh $(BIN)

# A VM or bare-metal host run by systemd: the binary in $(PREFIX)/bin, the
# units (systemd/), an example /etc/corral/corral.yaml if there is none;
# started at once when systemd is PID 1 and DESTDIR is empty.
PREFIX  ?= /usr/local
DESTDIR ?=
install: build
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' ./systemd/install.sh $(BIN)

# Stops corral, removes its pinned eBPF links, units and binary; keeps
# /etc/corral and /var/lib/corral (make uninstall PURGE=1 removes them).
uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' ./systemd/uninstall.sh $(if $(PURGE),--purge)

clean:
	rm -rf bin bench.out

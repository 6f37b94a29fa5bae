# lazypod: build, test and demo. `make help` lists the targets.
#
# The scripts in scripts/ do the work; each says at its top what it does and what it reads.

GO ?= go
# Build tags: talk to Podman over its API only, and leave out what needs C libraries.
# scripts/lib.sh has the same list for scripts run on their own.
TAGS := remote exclude_graphdriver_btrfs containers_image_openpgp
export LAZYPOD_GO_TAGS := $(TAGS)

.PHONY: all build deps test demo bench soak clean help

all: build

help:
	@echo "make build   build build/lazypod (static)"
	@echo "make test    install missing Debian packages, build, start a private Podman in build/podman,"
	@echo "             build the test images, go vet, go test -race; stops Podman afterwards"
	@echo "             (TEST_TIMEOUT=20m, PKGS=./..., GOTESTFLAGS=\"-run X -v\")"
	@echo "make demo    run the demo server behind lazypod on http://127.0.0.1:8080/ (DEMO_PORT=8080)"
	@echo "make bench   benchmarks against direct and systemd-socket-proxyd with a private Podman in"
	@echo "             build/bench-podman; writes BENCHMARKS.md and docs/bench.png (ROUNDS=6)"
	@echo "make soak    the heavy fault-injection variants (LAZYPOD_SOAK=1) and every fuzzer for"
	@echo "             FUZZTIME (3m) each; the figures go in RELIABILITY.md"
	@echo "make deps    install the Debian packages that tests and the demo need, if missing"
	@echo "make clean   stop private Podmans and remove build/ (cached images too)"

build:
	@echo "==> building build/lazypod"
	@CGO_ENABLED=0 $(GO) build -ldflags '-s -w' -tags '$(TAGS)' -o build/lazypod ./cmd/lazypod

deps:
	@scripts/deps.sh

test: deps build
	@scripts/test.sh

demo: deps build
	@scripts/demo.sh

bench: deps build
	@scripts/bench.sh

soak: deps build
	@scripts/soak.sh

clean:
	@scripts/podman-service.sh stop build/podman
	@scripts/podman-service.sh stop build/demo
	rm -rf --one-file-system build

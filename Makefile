# lazypod: build, test and demo. `make help` lists the targets.
#
# The scripts in scripts/ do the work; each says at its top what it does and what it reads.

GO ?= go
# Build tags: talk to Podman over its API only, and leave out what needs C libraries.
# scripts/lib.sh has the same list for scripts run on their own.
TAGS := remote exclude_graphdriver_btrfs containers_image_openpgp
export LAZYPOD_GO_TAGS := $(TAGS)
# The version lazypod version prints: git describe's, else "dev" outside a git tree. The commit
# comes from the build information Go embeds.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# Where make install puts things (GNU conventions: DESTDIR for staging, as a package build does).
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
MANDIR ?= $(DATADIR)/man
# systemd's own directories, as its pkg-config file gives them, else the usual ones.
systemd_var = $(or $(shell pkg-config --variable=$(1) systemd 2>/dev/null),$(2))
SYSTEMDUNITDIR ?= $(call systemd_var,systemdsystemunitdir,/lib/systemd/system)
SYSTEMDUSERUNITDIR ?= $(call systemd_var,systemduserunitdir,/usr/lib/systemd/user)
SYSTEMDGENERATORDIR ?= $(call systemd_var,systemdsystemgeneratordir,/lib/systemd/system-generators)
SYSTEMDUSERGENERATORDIR ?= $(call systemd_var,systemdusergeneratordir,/usr/lib/systemd/user-generators)

# The man pages, made from docs/man/*.md with go-md2man (Podman's tool; a go.mod tool).
MANPAGES := build/man/lazypod.1 build/man/lazypod.unit.5

# make deb: a Debian package of the install tree, in DEBDIR.
DEBDIR ?= build/deb
# git describe's v1.2-3-gabc as 1.2~3~gabc; a bare commit (no tag yet) as 0~gitabc.
DEB_VERSION = $(shell echo '$(VERSION)' | sed -E 's/^v([0-9])/\1/; /^[0-9]+\./!s/^/0~git/; s/-/~/g')
DEB_ARCH = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)

.PHONY: all build deps test demo bench soak clean help install uninstall man deb

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
	@echo "make install install the binary, the generator links, lazypod-update.{service,timer} and the"
	@echo "             bash completion (PREFIX=/usr/local, DESTDIR, BINDIR, SYSTEMDUNITDIR...)"
	@echo "make uninstall  remove them"
	@echo "make deb     build/deb/lazypod_VERSION_ARCH.deb from that tree (PREFIX=/usr)"
	@echo "make clean   stop private Podmans and remove build/ (cached images too)"

build:
	@echo "==> building build/lazypod"
	@CGO_ENABLED=0 $(GO) build -buildvcs=auto -ldflags '-s -w -X main.version=$(VERSION)' -tags '$(TAGS)' -o build/lazypod ./cmd/lazypod

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

# install puts the binary, the system and user generator links (lazypod-generator,
# lazypod-user-generator: as Quadlet's, they turn *.lazypod into units at daemon-reload),
# lazypod-update.service and .timer (system and user, ExecStart= pointing at BINDIR) and the
# bash completion under DESTDIR. It does not enable or start anything.
install: build man
	install -D -m 755 build/lazypod $(DESTDIR)$(BINDIR)/lazypod
	install -D -m 644 build/man/lazypod.1 $(DESTDIR)$(MANDIR)/man1/lazypod.1
	install -D -m 644 build/man/lazypod.unit.5 $(DESTDIR)$(MANDIR)/man5/lazypod.unit.5
	install -d $(DESTDIR)$(SYSTEMDGENERATORDIR) $(DESTDIR)$(SYSTEMDUSERGENERATORDIR)
	ln -sf $(BINDIR)/lazypod $(DESTDIR)$(SYSTEMDGENERATORDIR)/lazypod-generator
	ln -sf $(BINDIR)/lazypod $(DESTDIR)$(SYSTEMDUSERGENERATORDIR)/lazypod-user-generator
	for d in $(SYSTEMDUNITDIR) $(SYSTEMDUSERUNITDIR); do \
		install -d $(DESTDIR)$$d && \
		sed 's|/usr/local/bin/lazypod|$(BINDIR)/lazypod|' units/lazypod-update.service >$(DESTDIR)$$d/lazypod-update.service && \
		install -m 644 units/lazypod-update.timer $(DESTDIR)$$d/lazypod-update.timer && \
		chmod 644 $(DESTDIR)$$d/lazypod-update.service || exit 1; \
	done
	install -D -m 644 completions/lazypod.bash $(DESTDIR)$(BASHCOMPDIR)/lazypod

# uninstall removes what install put, and nothing else.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/lazypod \
		$(DESTDIR)$(SYSTEMDGENERATORDIR)/lazypod-generator \
		$(DESTDIR)$(SYSTEMDUSERGENERATORDIR)/lazypod-user-generator \
		$(DESTDIR)$(SYSTEMDUNITDIR)/lazypod-update.service $(DESTDIR)$(SYSTEMDUNITDIR)/lazypod-update.timer \
		$(DESTDIR)$(SYSTEMDUSERUNITDIR)/lazypod-update.service $(DESTDIR)$(SYSTEMDUSERUNITDIR)/lazypod-update.timer \
		$(DESTDIR)$(BASHCOMPDIR)/lazypod \
		$(DESTDIR)$(MANDIR)/man1/lazypod.1 $(DESTDIR)$(MANDIR)/man5/lazypod.unit.5

man: $(MANPAGES)

build/man/%: docs/man/%.md
	@mkdir -p build/man
	$(GO) tool go-md2man -in $< -out $@

# deb builds the package from make install's tree (PREFIX=/usr): Depends: podman (>= 4.3), and
# systemd for the sockets; its maintainer scripts reload systemd, so the generator runs. Removed,
# it first stops the units its generator made (their lazypod is going: a started one would stay
# loaded, not-found), and purged, it removes lazypod's state, /var/lib/lazypod. The definition
# files, the user's, stay.
deb: build man
	rm -rf $(DEBDIR)/root
	$(MAKE) --no-print-directory -o build -o man install DESTDIR=$(abspath $(DEBDIR))/root PREFIX=/usr
	# Quadlet's directory for system definitions, which Debian 12's Podman (4.3, no Quadlet) lacks;
	# shared with Podman's package where it has one, and removed with the last of them if empty.
	install -d $(DEBDIR)/root/etc/containers/systemd $(DEBDIR)/root/DEBIAN
	printf '%s\n' 'Package: lazypod' 'Version: $(DEB_VERSION)' 'Architecture: $(DEB_ARCH)' \
		"Installed-Size: $$(du -sk --exclude=DEBIAN $(DEBDIR)/root | cut -f1)" \
		'Maintainer: lazypod developers <lazypod@localhost>' \
		'Depends: podman (>= 4.3), systemd' 'Section: admin' 'Priority: optional' \
		'Description: run Podman containers on demand behind systemd sockets' \
		' lazypod starts a container on the first connection to its socket, holds the' \
		' connections until it is ready, and stops it when idle. It reads Quadlet' \
		' .container files as *.lazypod definitions, and updates images with rollback.' \
		>$(DEBDIR)/root/DEBIAN/control
	printf '%s\n' '#!/bin/sh' 'set -e' \
		'if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi' \
		>$(DEBDIR)/root/DEBIAN/postinst
	printf '%s\n' '#!/bin/sh' 'set -e' \
		'if [ "$$1" = remove ] && [ -d /run/systemd/system ]; then' \
		'    units=$$(grep -ls "^# Generated by lazypod " /run/systemd/generator/* | sed "s|.*/||")' \
		'    [ -z "$$units" ] || systemctl stop $$units || true' \
		'fi' >$(DEBDIR)/root/DEBIAN/prerm
	printf '%s\n' '#!/bin/sh' 'set -e' \
		'if [ "$$1" = purge ]; then rm -rf /var/lib/lazypod; fi' \
		'if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi' \
		>$(DEBDIR)/root/DEBIAN/postrm
	chmod 755 $(DEBDIR)/root/DEBIAN/postinst $(DEBDIR)/root/DEBIAN/prerm $(DEBDIR)/root/DEBIAN/postrm
	dpkg-deb --root-owner-group --build $(DEBDIR)/root $(DEBDIR)/lazypod_$(DEB_VERSION)_$(DEB_ARCH).deb

clean:
	@scripts/podman-service.sh stop build/podman
	@scripts/podman-service.sh stop build/demo
	rm -rf --one-file-system build

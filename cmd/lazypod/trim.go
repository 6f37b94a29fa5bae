package main

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// trimDelay is how long after the container got ready the process trims
// its memory: the held flows are forwarded by then, and a stream of new
// ones keeps the pages it needs.
const trimDelay = time.Second

// trimMemory gives back what start-up used and serving does not need, once
// the container is ready: the Go heap's free pages (debug.FreeOSMemory),
// and this process's mappings of its own binary's read-only pages (code
// and read-only data: madvise MADV_DONTNEED). Most of lazypod's RSS is
// the binary's pages that the 344 package initialisers of the Podman
// bindings' dependencies touched once at start-up; they stay in the page
// cache, shared with every other lazypod process and reclaimable, and the
// few that serving runs come back on first use as minor faults.
func (s *server) trimMemory() {
	debug.FreeOSMemory()
	if err := dropBinaryPages(); err != nil {
		s.log.Debug("trimming memory", "err", err)
	}
}

// dropBinaryPages drops this process's mappings of the pages of its
// executable's read-only file mappings. Writable ones (data) are left: to
// drop them would lose what was written.
func dropBinaryPages() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// "00400000-01a2c000 r-xp 00000000 fd:01 1234 /usr/bin/lazypod"
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[5] != exe || strings.Contains(fs[1], "w") {
			continue
		}
		lo, hi, _ := strings.Cut(fs[0], "-")
		a, err1 := strconv.ParseUint(lo, 16, 64)
		b, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || b <= a {
			continue
		}
		// Not Go memory: a raw madvise, not syscall.Madvise of a slice.
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(a), uintptr(b-a), syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
	}
	return sc.Err()
}

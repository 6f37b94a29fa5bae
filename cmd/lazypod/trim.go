package main

import (
	"bufio"
	"os"
	"runtime"
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
	// Two collections: the first moves what sync.Pools hold (Go's
	// splice pipes, two descriptors each) to their victim caches, the
	// second frees it, and FreeOSMemory returns the pages.
	runtime.GC()
	debug.FreeOSMemory()
	if err := dropBinaryPages(); err != nil {
		s.log.Debug("trimming memory", "err", err)
	}
}

// dropBinaryPages drops this process's mappings of the pages of its
// executable's read-only file mappings that hold only the file's pages.
// Writable mappings (data) are left, and so is any mapping with a page of
// its own (Anonymous: in smaps): a read-only one the dynamic loader wrote
// before it made it read-only (RELRO, in a cgo build) would be read back
// from the file, its relocations lost. lazypod's static binary has none.
func dropBinaryPages() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return err
	}
	defer f.Close()
	var (
		lo, hi uint64
		ours   bool // the current mapping is a read-only one of exe
	)
	drop := func() error {
		if !ours || hi <= lo {
			return nil
		}
		// Not Go memory: a raw madvise, not syscall.Madvise of a slice.
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), syscall.MADV_DONTNEED); errno != 0 {
			return errno
		}
		return nil
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		switch {
		case len(fs) >= 5 && strings.Contains(fs[0], "-") && !strings.HasSuffix(fs[0], ":"):
			// A mapping's first line:
			// "00400000-01a2c000 r-xp 00000000 fd:01 1234 /usr/bin/lazypod"
			if err := drop(); err != nil {
				return err
			}
			a, b, _ := strings.Cut(fs[0], "-")
			var err1, err2 error
			lo, err1 = strconv.ParseUint(a, 16, 64)
			hi, err2 = strconv.ParseUint(b, 16, 64)
			ours = err1 == nil && err2 == nil && len(fs) >= 6 && fs[5] == exe && !strings.Contains(fs[1], "w")
		case len(fs) >= 2 && fs[0] == "Anonymous:" && fs[1] != "0":
			ours = false // pages of its own: keep them
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return drop()
}

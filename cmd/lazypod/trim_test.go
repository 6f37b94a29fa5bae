package main

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// rssFileKB returns this process's resident file-backed memory (RssFile).
func rssFileKB(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}

// TestDropBinaryPages: dropping the binary's read-only mappings takes most
// of its pages out of the resident set, and the process runs on (the
// pages it needs come back).
func TestDropBinaryPages(t *testing.T) {
	before := rssFileKB(t)
	if err := dropBinaryPages(); err != nil {
		t.Fatalf("dropBinaryPages: %v", err)
	}
	after := rssFileKB(t)
	t.Logf("RssFile %d kB before, %d kB after", before, after)
	if after > before/2 {
		t.Errorf("RssFile %d kB after dropping the binary's pages, from %d kB; want under half", after, before)
	}
	// Still runs: parsing, formatting, the standard library's code.
	if got := strconv.Itoa(len(strings.Fields("a b c"))); got != "3" {
		t.Errorf("after the drop: got %q", got)
	}
}

package systemd

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWant links sockets and timers as systemctl enable would: a unit to
// its own file, an instance without one to its template's.
func TestWant(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"web.socket", "web-update.timer", "app@.socket", "app@blue.socket"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := Want(dir, []string{"web.socket", "web-update.timer", "app@8081.socket", "app@blue.socket"}); err != nil {
		t.Fatal(err)
	}
	for link, want := range map[string]string{
		"sockets.target.wants/web.socket":      "../web.socket",
		"timers.target.wants/web-update.timer": "../web-update.timer",
		"sockets.target.wants/app@8081.socket": "../app@.socket",
		"sockets.target.wants/app@blue.socket": "../app@blue.socket",
	} {
		got, err := os.Readlink(filepath.Join(dir, link))
		if err != nil || got != want {
			t.Errorf("%s -> %q, %v; want %s", link, got, err, want)
		}
	}
}

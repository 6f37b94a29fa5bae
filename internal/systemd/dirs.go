package systemd

import (
	"os"
	"path/filepath"
)

// StateDir is where lazypod keeps its state when not told: the
// StateDirectory= systemd made ($STATE_DIRECTORY, its first entry), else
// /var/lib/lazypod for root, else $XDG_STATE_HOME/lazypod.
func StateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.SplitList(d)[0]
	}
	if os.Geteuid() == 0 {
		return "/var/lib/lazypod"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "lazypod")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".local", "state", "lazypod")
}

// RuntimeDir is where short-lived sockets go: the RuntimeDirectory=
// systemd made ($RUNTIME_DIRECTORY), else /run/lazypod for root, else
// $XDG_RUNTIME_DIR/lazypod, else a directory under stateDir.
func RuntimeDir(stateDir string) string {
	if d := os.Getenv("RUNTIME_DIRECTORY"); d != "" {
		return filepath.SplitList(d)[0]
	}
	if os.Geteuid() == 0 {
		return "/run/lazypod"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "lazypod")
	}
	return filepath.Join(stateDir, "run")
}

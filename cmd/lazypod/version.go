package main

import (
	"cmp"
	"runtime/debug"
)

// versionLine is what lazypod version prints: "lazypod VERSION", then the
// commit the binary was built from, as Go's build information records it
// (with ", modified" for a tree with uncommitted changes).
func versionLine() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "lazypod " + cmp.Or(version, "unknown")
	}
	return formatVersion(version, info)
}

// formatVersion formats the version line from v, the version given at
// build time, and the build information.
func formatVersion(v string, info *debug.BuildInfo) string {
	if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		v = info.Main.Version
	}
	line := "lazypod " + cmp.Or(v, "unknown")
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return line
	}
	line += " (commit " + rev
	if modified == "true" {
		line += ", modified"
	}
	return line + ")"
}

package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	rev := debug.BuildSetting{Key: "vcs.revision", Value: "0123abcd"}
	dirty := debug.BuildSetting{Key: "vcs.modified", Value: "true"}
	clean := debug.BuildSetting{Key: "vcs.modified", Value: "false"}
	for _, tt := range []struct {
		name, v, main string
		settings      []debug.BuildSetting
		want          string
	}{
		{"git describe and commit", "v0.3.0-12-g0123abc", "(devel)", []debug.BuildSetting{rev, clean}, "lazypod v0.3.0-12-g0123abc (commit 0123abcd)"},
		{"modified tree", "v0.3.0-dirty", "(devel)", []debug.BuildSetting{rev, dirty}, "lazypod v0.3.0-dirty (commit 0123abcd, modified)"},
		{"go install of a version", "", "v0.3.0", nil, "lazypod v0.3.0"},
		{"nothing known", "", "(devel)", nil, "lazypod unknown"},
		{"no version, a commit", "", "(devel)", []debug.BuildSetting{rev}, "lazypod unknown (commit 0123abcd)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			info := &debug.BuildInfo{Main: debug.Module{Version: tt.main}, Settings: tt.settings}
			if got := formatVersion(tt.v, info); got != tt.want {
				t.Errorf("formatVersion = %q; want %q", got, tt.want)
			}
		})
	}
}

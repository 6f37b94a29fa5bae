package launcher

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseProbeStrict feeds ParseProbe mutations of real --ready values
// (more seeds in testdata/fuzz/FuzzParseProbeStrict): it must not panic, a
// rejection is one line that names the value, and what it accepts is valid
// and reads back the same from its String.
func FuzzParseProbeStrict(f *testing.F) {
	for _, s := range []string{"tcp", "http:/", "http:/healthz", "exec:/bin/check --quick", "healthcheck", "notify", "none"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseProbe(s)
		if err != nil {
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("ParseProbe(%q) error %q has several lines", s, msg)
			}
			if want := fmt.Sprintf("invalid --ready %q", s); !strings.Contains(msg, want) {
				t.Fatalf("ParseProbe(%q) error %q does not name the value; want it to contain %q", s, msg, want)
			}
			if p != (Probe{}) {
				t.Fatalf("ParseProbe(%q) = %+v with error %v; want the zero Probe", s, p, err)
			}
			return
		}
		if err := p.validate(); err != nil {
			t.Fatalf("ParseProbe(%q) accepted %+v, which does not validate: %v", s, p, err)
		}
		if p.String() != s {
			t.Fatalf("ParseProbe(%q).String() = %q; want the value back", s, p.String())
		}
		back, err := ParseProbe(p.String())
		if err != nil || back != p {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, p, p.String(), back, err)
		}
		if p.Kind == ProbeExec && len(strings.Fields(p.Arg)) == 0 {
			t.Fatalf("ParseProbe(%q) accepted an exec probe with no command", s)
		}
	})
}

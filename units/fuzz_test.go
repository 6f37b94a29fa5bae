package units

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParse feeds Parse mutations of the testdata definitions: it must not
// panic, its errors are one line, and what it accepts renders, with
// ExecStart= arguments that read back as lazypod serve's.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*.lazypod"))
	if err != nil || len(seeds) == 0 {
		f.Fatalf("no seeds in testdata: %v", err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := Parse("/etc/containers/systemd/fuzz.lazypod", strings.NewReader(text), RenderOptions{})
		if err != nil {
			if strings.ContainsAny(err.Error(), "\n\r") {
				t.Fatalf("error %q has several lines", err)
			}
			return
		}
		for _, user := range []bool{false, true} {
			o := RenderOptions{Binary: "/usr/bin/lazypod", User: user}
			files, err := Render(d, o)
			if err != nil {
				if strings.ContainsAny(err.Error(), "\n\r") {
					t.Fatalf("error %q has several lines", err)
				}
				continue
			}
			i := slices.IndexFunc(files, func(f File) bool { return f.Name == "fuzz.service" })
			if i < 0 {
				t.Fatalf("no fuzz.service among the files")
			}
			if user {
				continue // %t in --podman-url is systemd's to expand
			}
			checkExecStart(t, d, o, files[i].Content)
		}
	})
}

// checkExecStart reads the ExecStart= of a rendered service back as
// systemd splits it, before it expands specifiers and environment
// references, and compares it with the arguments Render meant.
func checkExecStart(t *testing.T, d *Definition, o RenderOptions, service string) {
	t.Helper()
	_, rest, ok := strings.Cut(service, "\nExecStart=")
	if !ok {
		t.Fatalf("no ExecStart= in\n%s", service)
	}
	var line strings.Builder
	for l := range strings.SplitSeq(rest, "\n") {
		l = strings.TrimLeft(l, " \t")
		if c, ok := strings.CutSuffix(l, `\`); ok {
			line.WriteString(c + " ")
			continue
		}
		line.WriteString(l)
		break
	}
	got, err := SplitCommand(line.String())
	if err != nil {
		t.Fatalf("splitting ExecStart= %q: %v", line.String(), err)
	}
	// The binary is quoted as it is; the rest as Quadlet quotes, its
	// specifiers and $VARIABLES left for systemd.
	got[0] = undouble(t, undouble(t, got[0], '%'), '$')
	want := []string{o.Binary, "serve"}
	for _, g := range serveGroups(d, o) {
		want = append(want, g...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ExecStart= reads back as\n%q\nwant\n%q", got, want)
	}
}

// TestExecStartReadsBack runs checkExecStart on the testdata definitions.
func TestExecStartReadsBack(t *testing.T) {
	for _, name := range []string{"minimal", "full", "mixed", "passthrough", "quoting", "template@"} {
		t.Run(name, func(t *testing.T) {
			o := RenderOptions{Binary: "/usr/local/bin/lazy pod"}
			d, err := ParseFile(filepath.Join("testdata", name+".lazypod"), o)
			if err != nil {
				t.Fatal(err)
			}
			files, err := Render(d, o)
			if err != nil {
				t.Fatal(err)
			}
			i := slices.IndexFunc(files, func(f File) bool { return f.Name == name+".service" })
			checkExecStart(t, d, o, files[i].Content)
		})
	}
}

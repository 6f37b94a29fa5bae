package units

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// systemdArgs reads an ExecStart= command line back as systemd does:
// split into words with quotes and C escapes, then each word's "%%"
// (specifier expansion) and "$$" (environment expansion) undone. A lone
// '%' or '$' would be expanded by systemd: an error.
func systemdArgs(t *testing.T, line string) []string {
	t.Helper()
	ws, err := splitWords(line)
	if err != nil {
		t.Fatalf("splitting %q: %v", line, err)
	}
	for i, w := range ws {
		ws[i] = undouble(t, undouble(t, w, '%'), '$')
	}
	return ws
}

// undouble replaces every pair of c by one c, failing on a lone one.
func undouble(t *testing.T, s string, c byte) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			if i+1 >= len(s) || s[i+1] != c {
				t.Fatalf("lone %c in %q: systemd would expand it", c, s)
			}
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func TestQuoteArg(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"/usr/bin/app", "/usr/bin/app"},
		{"", `""`},
		{"two words", `"two words"`},
		{`a"b`, `"a\"b"`},
		{"it's", `"it's"`},
		{`back\slash`, `"back\\slash"`},
		{"100%", "100%%"},
		{"%h", "%%h"},
		{"$HOME", "$$HOME"},
		{"${HOME}", "$${HOME}"},
		{"a b$c%d", `"a b$$c%%d"`},
		{";", `";"`},
		{`\;`, `"\\;"`},
		{"line\nbreak", `"line\nbreak"`},
		{"tab\there", `"tab\there"`},
		{"cr\r", `"cr\r"`},
		{"bell\a", `"bell\x07"`},
		{"del\x7f", `"del\x7f"`},
		{"#hash", "#hash"},
		{"é😀", "é😀"},
	}
	for _, tt := range tests {
		got := quoteArg(tt.in)
		if got != tt.want {
			t.Errorf("quoteArg(%q) = %s; want %s", tt.in, got, tt.want)
		}
		if back := systemdArgs(t, got); len(back) != 1 || back[0] != tt.in {
			t.Errorf("quoteArg(%q) = %s reads back as %q", tt.in, got, back)
		}
	}
}

// FuzzQuoteArg checks that any word without a NUL reads back unchanged,
// alone and between others.
func FuzzQuoteArg(f *testing.F) {
	for _, s := range []string{"", "a b", `"'\`, "%$;", "\n\t", "x\\", "${A}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 || !utf8.ValidString(s) {
			return
		}
		q := quoteArg(s)
		if strings.ContainsAny(q, "\n\r") {
			t.Fatalf("quoteArg(%q) = %q holds a line break", s, q)
		}
		back := systemdArgs(t, "a "+q+" b")
		if len(back) != 3 || back[1] != s {
			t.Fatalf("quoteArg(%q) = %s reads back as %q", s, q, back)
		}
	})
}

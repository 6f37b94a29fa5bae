package units

import (
	"fmt"
	"strings"
)

// quoteArg quotes one word of an ExecStart= command line so that systemd
// reads back exactly s: '%' becomes "%%" (no specifier expansion) and '$'
// becomes "$$" (no environment expansion); a word that is empty or holds
// spaces, quotes, backslashes, ';' or control characters is put in double
// quotes, with backslash escapes for '"', '\' and control characters.
// s must not hold a NUL byte, which no unit file can carry.
func quoteArg(s string) string {
	quote := s == ""
	for _, r := range s {
		if r == ' ' || r == '"' || r == '\'' || r == '\\' || r == ';' || r < 0x20 || r == 0x7f {
			quote = true
			break
		}
	}
	var b strings.Builder
	if quote {
		b.WriteByte('"')
	}
	for _, r := range s {
		switch r {
		case '%':
			b.WriteString("%%")
		case '$':
			b.WriteString("$$")
		case '"', '\\':
			if quote {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	if quote {
		b.WriteByte('"')
	}
	return b.String()
}

// escapeSpecifiers escapes '%' for a unit setting that expands systemd's
// specifiers, such as ListenStream= or Description=.
func escapeSpecifiers(s string) string { return strings.ReplaceAll(s, "%", "%%") }

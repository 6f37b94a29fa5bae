package units

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine is go-systemd's limit on a physical line (SYSTEMD_LINE_MAX).
const maxLine = 2048

// scanned is one section header or Key= line found by scanLines.
type scanned struct {
	section string
	key     string // "" for a section header
	line    int
}

// scanLines walks the file's lines to find where each section header and
// each Key= starts, for error messages; the values come from go-systemd's
// parser. It also refuses what go-systemd and systemd would read
// differently, or what go-systemd would read silently wrong: text before
// the first section, a header without its ']', a line without '=', a
// comment ending in a backslash (systemd never continues a comment),
// a comment inside a continued value (systemd skips it, go-systemd keeps
// it), a value ending in an escaped backslash (systemd does not continue
// it, go-systemd does), control characters, invalid UTF-8 and lines too
// long for go-systemd.
func scanLines(path string, data string) ([]scanned, error) {
	var (
		out      []scanned
		section  string
		inValue  bool // the previous line continues into this one
		lineErr  = func(n int, msg string) error { return &Error{Path: path, Line: n, Section: section, Msg: msg} }
		lines    = strings.Split(data, "\n")
		lastLine = len(lines)
	)
	if strings.HasSuffix(data, "\n") {
		lastLine-- // the empty string after the final newline
	}
	for i := 0; i < lastLine; i++ {
		n := i + 1
		raw := strings.TrimSuffix(lines[i], "\r")
		if len(raw) >= maxLine {
			return nil, lineErr(n, "line is 2048 bytes or longer: split the value over lines ending in a backslash")
		}
		if !utf8.ValidString(raw) {
			return nil, lineErr(n, "line is not valid UTF-8: save the file as UTF-8")
		}
		for _, r := range raw {
			if r != '\t' && (r < 0x20 || r == 0x7f) {
				return nil, lineErr(n, "line holds a control character: remove it (use escapes such as \\n inside quoted words)")
			}
		}
		t := strings.TrimLeftFunc(raw, unicode.IsSpace)
		if inValue {
			switch {
			case strings.TrimSpace(t) == "":
				inValue = false
			case t[0] == '#' || t[0] == ';':
				return nil, lineErr(n, "comment inside a value continued with a backslash: move the comment above the key")
			default:
				inValue = continues(raw)
				if err := checkEscapedEnd(raw); err != nil {
					return nil, lineErr(n, err.Error())
				}
			}
			continue
		}
		switch {
		case t == "":
		case t[0] == '#' || t[0] == ';':
			if strings.HasSuffix(strings.TrimRight(t, " "), `\`) {
				return nil, lineErr(n, "comment ends in a backslash, which would hide the next line from lazypod but not from systemd: remove the backslash")
			}
		case t[0] == '[':
			end := strings.IndexByte(t, ']')
			if end < 0 {
				return nil, lineErr(n, "section header without ']': write [Container], [Lazypod], [Unit], [Socket], [Service] or [Install]")
			}
			if strings.TrimSpace(t[end+1:]) != "" {
				return nil, lineErr(n, "text after the section header: put it on its own line")
			}
			section = t[1:end]
			out = append(out, scanned{section: section, line: n})
		case section == "" && len(out) == 0:
			return nil, lineErr(n, "text before the first section: put keys under [Container] or [Lazypod]")
		default:
			k, _, ok := strings.Cut(t, "=")
			key := strings.TrimSpace(k)
			if !ok || key == "" {
				return nil, lineErr(n, "not a Key=Value line: write Key=Value, or start a comment with #")
			}
			if err := checkEscapedEnd(raw); err != nil {
				return nil, &Error{Path: path, Line: n, Section: section, Key: key, Msg: err.Error()}
			}
			out = append(out, scanned{section: section, key: key, line: n})
			inValue = continues(raw)
		}
	}
	return out, nil
}

// continues reports whether go-systemd continues a value line onto the
// next: it ends in a backslash.
func continues(raw string) bool { return strings.HasSuffix(raw, `\`) }

// checkEscapedEnd refuses a line ending in an even number of backslashes:
// systemd reads it as an escaped backslash that ends the value, go-systemd
// as a continuation.
func checkEscapedEnd(raw string) error {
	run := len(raw) - len(strings.TrimRight(raw, `\`))
	if run >= 2 && run%2 == 0 {
		return errEscapedEnd
	}
	return nil
}

var errEscapedEnd = errorString(`value ends in an escaped backslash (\\), which systemd and lazypod read differently: quote the word, e.g. "C:\\"`)

type errorString string

func (e errorString) Error() string { return string(e) }

// joinValue joins a value's continuation lines as systemd does: each
// backslash before a line break becomes a space and the next line's
// leading whitespace is dropped. go-systemd keeps the backslash and the
// newline in the value.
func joinValue(v string) string {
	if !strings.Contains(v, "\n") {
		return v
	}
	var b strings.Builder
	for i, part := range strings.Split(v, "\n") {
		if i > 0 {
			part = strings.TrimLeftFunc(part, unicode.IsSpace)
		}
		if p, ok := strings.CutSuffix(part, `\`); ok {
			part = p + " "
		}
		b.WriteString(part)
	}
	return strings.TrimSpace(b.String())
}

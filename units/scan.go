package units

import "strings"

// scanned is one section header or Key= line found by scanLines.
type scanned struct {
	section string
	key     string // "" for a section header
	line    int
}

// scanLines finds the line where each section header and each Key=
// starts, for error messages. It reads lines as Quadlet's parser does,
// which gives the values: surrounding whitespace trimmed, a line ending
// in a backslash continued by the next, comments inside a continued
// value skipped.
func scanLines(data string) []scanned {
	var (
		out     []scanned
		section string
		inValue bool
	)
	for i, raw := range strings.Split(strings.TrimSuffix(data, "\n"), "\n") {
		t := strings.TrimSpace(raw)
		comment := t == "" || t[0] == '#' || t[0] == ';'
		switch {
		case comment:
			continue
		case inValue:
		case t[0] == '[' && strings.Contains(t, "]"):
			section = t[1:strings.Index(t, "]")]
			out = append(out, scanned{section: section, line: i + 1})
		default:
			k, _, _ := strings.Cut(t, "=")
			out = append(out, scanned{section: section, key: strings.TrimSpace(k), line: i + 1})
		}
		inValue = strings.HasSuffix(t, `\`)
	}
	return out
}

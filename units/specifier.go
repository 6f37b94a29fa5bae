package units

import (
	"fmt"
	"strings"
)

// A definition is a unit file: systemd expands specifiers (%h, %t, %i) in
// the values lazypod writes into the units, as it does for Quadlet's. To
// check a value when the units are generated, lazypod expands them with
// sample values of the right shape (a path for %h, a number for %i);
// lazypod serve checks the expanded values again when it starts.

// samples are systemd's specifiers (systemd.unit(5), "Specifiers") with a
// value of each one's shape.
var samples = map[byte]string{
	'a': "x86-64", 'A': "1", 'b': "0123456789abcdef0123456789abcdef", 'B': "1",
	'C': "/var/cache", 'd': "/run/credentials/x.service", 'D': "/usr/share", 'E': "/etc",
	'f': "/x", 'g': "root", 'G': "0", 'h': "/root", 'H': "host", 'i': "1", 'I': "1",
	'j': "x", 'J': "x", 'l': "host", 'L': "/var/log", 'm': "0123456789abcdef0123456789abcdef",
	'M': "1", 'n': "x.service", 'N': "x", 'o': "debian", 'p': "x", 'P': "x", 'q': "host",
	's': "/bin/sh", 'S': "/var/lib", 't': "/run", 'T': "/tmp", 'u': "root", 'U': "0",
	'v': "6.1.0", 'V': "/var/tmp", 'w': "12", 'W': "1", 'y': "/x", 'Y': "/", '%': "%",
}

// sample expands the specifiers in s with sample values, for checking; an
// unknown specifier, or a '%' that ends s, is an error, as it is to
// systemd.
func sample(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("ends in %%, which systemd reads as a specifier: write %%%% for a literal %%")
		}
		v, ok := samples[s[i+1]]
		if !ok {
			return "", fmt.Errorf("%%%c is not a systemd specifier: write %%%% for a literal %%", s[i+1])
		}
		b.WriteString(v)
		i++
	}
	return b.String(), nil
}

// hasSpecifier reports whether s holds a specifier other than %%.
func hasSpecifier(s string) bool {
	return strings.Contains(strings.ReplaceAll(s, "%%", ""), "%")
}

// literal escapes s for a unit setting that expands specifiers, so that
// systemd reads back s.
func literal(s string) string { return strings.ReplaceAll(s, "%", "%%") }

package units

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// splitWords, for tests, splits a value into words the way systemd splits
// Environment= and ExecStart= (extract_first_word with EXTRACT_UNQUOTE and
// EXTRACT_CUNESCAPE): words are separated by spaces or tabs; double and
// single quotes group, also in the middle of a word; backslash escapes
// (\" \\ \n \t \xHH \uHHHH and the other C escapes) work inside and outside
// quotes. Unlike systemd it refuses unknown escapes, and words holding a
// NUL byte or invalid UTF-8.
func splitWords(s string) ([]string, error) {
	var (
		words  []string
		word   strings.Builder
		inWord bool
		quote  byte
	)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			r, n, err := unescapeOne(s[i+1:])
			if err != nil {
				return nil, err
			}
			word.WriteString(r)
			inWord = true
			i += 1 + n
			continue
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteByte(c)
			inWord = true
		}
		i++
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if inWord {
		words = append(words, word.String())
	}
	for _, w := range words {
		if strings.IndexByte(w, 0) >= 0 {
			return nil, errors.New("a word holds a NUL byte")
		}
		if !utf8.ValidString(w) {
			return nil, errors.New("a word is not valid UTF-8")
		}
	}
	return words, nil
}

// unescapeOne decodes the escape sequence after a backslash at the start
// of s, as systemd's cunescape_one. It returns the decoded text and how
// many bytes of s it used.
func unescapeOne(s string) (string, int, error) {
	if s == "" {
		return "", 0, errors.New("a backslash ends the value: write \\\\ for a backslash")
	}
	switch s[0] {
	case 'a':
		return "\a", 1, nil
	case 'b':
		return "\b", 1, nil
	case 'f':
		return "\f", 1, nil
	case 'n':
		return "\n", 1, nil
	case 'r':
		return "\r", 1, nil
	case 't':
		return "\t", 1, nil
	case 'v':
		return "\v", 1, nil
	case 's':
		return " ", 1, nil
	case '\\', '"', '\'':
		return s[:1], 1, nil
	case 'x':
		if len(s) >= 3 {
			if n, err := strconv.ParseUint(s[1:3], 16, 8); err == nil && n != 0 {
				return string([]byte{byte(n)}), 3, nil
			}
		}
		return "", 0, errors.New(`bad \x escape: want \xHH with HH two hex digits, not 00`)
	case 'u', 'U':
		width := 4
		if s[0] == 'U' {
			width = 8
		}
		if len(s) > width {
			if n, err := strconv.ParseUint(s[1:1+width], 16, 32); err == nil && n != 0 && utf8.ValidRune(rune(n)) {
				return string(rune(n)), 1 + width, nil
			}
		}
		return "", 0, fmt.Errorf(`bad \%c escape: want %d hex digits of a Unicode code point`, s[0], width)
	case '0', '1', '2', '3', '4', '5', '6', '7':
		if len(s) >= 3 {
			if n, err := strconv.ParseUint(s[:3], 8, 8); err == nil && n != 0 {
				return string([]byte{byte(n)}), 3, nil
			}
		}
		return "", 0, errors.New(`bad octal escape: want \NNN with three octal digits, not 000`)
	}
	r, _ := utf8.DecodeRuneInString(s)
	return "", 0, fmt.Errorf(`unknown escape \%c: write \\ for a backslash`, r)
}

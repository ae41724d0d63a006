package kafka

import (
	"unicode/utf16"
	"unicode/utf8"
)

// maxJSONDepth bounds nesting in values the decoder skips, so a hostile
// record cannot exhaust the stack.
const maxJSONDepth = 64

// jsonScanner is a strict, allocation-free reader of one JSON text. It
// validates what it reads: a record that is not valid JSON is malformed
// even where its fields are not in the schema.
type jsonScanner struct {
	data    []byte
	pos     int
	skipBuf []byte // unescaped strings that are skipped, reused
}

func (s *jsonScanner) reset(b []byte) { s.data, s.pos = b, 0 }

func (s *jsonScanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

func (s *jsonScanner) consume(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

// end checks that only whitespace follows the top-level value.
func (s *jsonScanner) end() error {
	s.ws()
	if s.pos != len(s.data) {
		return malformedf("trailing data after the JSON object at byte %d: %s", s.pos, s.near())
	}
	return nil
}

// near quotes a few bytes around the position, for error messages.
func (s *jsonScanner) near() string {
	if s.pos >= len(s.data) {
		return "unexpected end of input"
	}
	end := min(s.pos+16, len(s.data))
	return "near " + strconvQuote(s.data[s.pos:end])
}

func strconvQuote(b []byte) string {
	out := make([]byte, 0, len(b)+2)
	out = append(out, '"')
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
			out = append(out, '\\', 'x', "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
			continue
		}
		out = append(out, c)
	}
	return string(append(out, '"'))
}

func (s *jsonScanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return malformedf("invalid literal at byte %d: %s", s.pos, s.near())
	}
	s.pos += len(lit)
	return nil
}

// number returns the JSON number token at the position (empty if there is
// none), validated against the JSON grammar.
func (s *jsonScanner) number() []byte {
	start, i, d := s.pos, s.pos, s.data
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return nil
	}
	if i < len(d) && d[i] == '.' {
		i++
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := i
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
		if i == j {
			return nil
		}
	}
	s.pos = i
	return d[start:i]
}

// str reads the string at the position (which is '"'). Without escapes it
// returns a slice of the input; with escapes it unescapes into *buf
// (appending, or from its start when resetBuf) and returns that part.
func (s *jsonScanner) str(buf *[]byte, resetBuf bool) ([]byte, error) {
	s.pos++ // opening quote
	start, d := s.pos, s.data
	i := start
	for i < len(d) {
		c := d[i]
		if c == '"' {
			s.pos = i + 1
			return d[start:i], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, malformedf("control character in string at byte %d", i)
		}
		i++
	}
	if i >= len(d) {
		return nil, malformedf("unterminated string starting at byte %d", start-1)
	}
	// Slow path: escapes.
	out := *buf
	if resetBuf {
		out = out[:0]
	}
	base := len(out)
	out = append(out, d[start:i]...)
	for i < len(d) {
		c := d[i]
		switch {
		case c == '"':
			s.pos = i + 1
			*buf = out
			return out[base:], nil
		case c < 0x20:
			return nil, malformedf("control character in string at byte %d", i)
		case c != '\\':
			out = append(out, c)
			i++
			continue
		}
		i++
		if i >= len(d) {
			break
		}
		switch d[i] {
		case '"', '\\', '/':
			out = append(out, d[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, n, ok := hex4(d[i+1:])
			if !ok {
				return nil, malformedf("invalid \\u escape at byte %d", i-1)
			}
			i += n
			if utf16.IsSurrogate(r) {
				// A pair is \uD8xx\uDCxx; a lone surrogate becomes U+FFFD.
				if i+2 < len(d) && d[i+1] == '\\' && d[i+2] == 'u' {
					if r2, n2, ok := hex4(d[i+3:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							r = dec
							i += 2 + n2
						} else {
							r = utf8.RuneError
						}
					}
				} else {
					r = utf8.RuneError
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return nil, malformedf("invalid escape \\%c at byte %d", d[i], i-1)
		}
		i++
	}
	return nil, malformedf("unterminated string starting at byte %d", start-1)
}

func hex4(b []byte) (rune, int, bool) {
	if len(b) < 4 {
		return 0, 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0, false
		}
	}
	return r, 4, true
}

// skip reads and validates one value of any type.
func (s *jsonScanner) skip(depth int) error {
	if depth > maxJSONDepth {
		return malformedf("JSON nested deeper than %d", maxJSONDepth)
	}
	switch c := s.peek(); c {
	case '"':
		_, err := s.str(&s.skipBuf, true)
		return err
	case '{':
		s.pos++
		s.ws()
		if s.consume('}') {
			return nil
		}
		for {
			s.ws()
			if s.peek() != '"' {
				return malformedf("expected a field name at byte %d: %s", s.pos, s.near())
			}
			if _, err := s.str(&s.skipBuf, true); err != nil {
				return err
			}
			s.ws()
			if !s.consume(':') {
				return malformedf("expected ':' at byte %d: %s", s.pos, s.near())
			}
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.consume(',') {
				continue
			}
			if s.consume('}') {
				return nil
			}
			return malformedf("expected ',' or '}' at byte %d: %s", s.pos, s.near())
		}
	case '[':
		s.pos++
		s.ws()
		if s.consume(']') {
			return nil
		}
		for {
			s.ws()
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			s.ws()
			if s.consume(',') {
				continue
			}
			if s.consume(']') {
				return nil
			}
			return malformedf("expected ',' or ']' at byte %d: %s", s.pos, s.near())
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	default:
		if len(s.number()) == 0 {
			return malformedf("invalid value at byte %d: %s", s.pos, s.near())
		}
		return nil
	}
}

package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"unicode/utf8"

	"github.com/docker/docker/api/types/events"
)

// maxEventBytes bounds one event of the /events stream: an object larger
// than this ends the stream with an error rather than growing the buffer
// without end.
const maxEventBytes = 64 << 20

// messageDecoder reads Docker's /events body, a sequence of JSON objects
// (the engine writes one per line), into events.Message values: the same
// values, and the same errors, as encoding/json's Decoder, which the
// Docker client uses, but without reflection for the objects the engine
// writes (decodeFast); anything else is handed to encoding/json.
type messageDecoder struct {
	r   io.Reader
	buf []byte
	off int // buf[off:n] is read and not yet decoded
	n   int

	// What is known of the object at off (offsets from off), so that a
	// stream read in small pieces is scanned once:
	nlFrom int        // buf[off:off+nlFrom] has no newline
	slow   bool       // decodeFast did not take the object's first line
	scan   objectScan // where its end is searched
}

func newMessageDecoder(r io.Reader) *messageDecoder {
	return &messageDecoder{r: r, buf: make([]byte, 64<<10)}
}

// Decode reads the next event into m (overwriting all of it). It returns
// io.EOF at the end of the stream after a whole event, and
// io.ErrUnexpectedEOF within one.
func (d *messageDecoder) Decode(m *events.Message) error {
	for {
		for d.off < d.n && isSpace(d.buf[d.off]) {
			d.off++
		}
		if d.off < d.n {
			if c := d.buf[d.off]; c != '{' {
				return fmt.Errorf("decode docker event: unexpected %q where an event object begins", c)
			}
			rest := d.buf[d.off:d.n]
			if !d.slow {
				if nl := bytes.IndexByte(rest[d.nlFrom:], '\n'); nl >= 0 {
					nl += d.nlFrom
					if decodeFast(rest[:nl], m) {
						d.consume(nl + 1)
						return nil
					}
					d.slow = true
				} else {
					d.nlFrom = len(rest)
				}
			}
			if end := d.scan.end(rest); end > 0 {
				d.consume(end)
				if decodeFast(rest[:end], m) {
					return nil
				}
				*m = events.Message{}
				if err := json.Unmarshal(rest[:end], m); err != nil {
					return fmt.Errorf("decode docker event: %w", err)
				}
				return nil
			}
		}
		if err := d.fill(); err != nil {
			return err
		}
	}
}

// consume moves past the object at off, n bytes long.
func (d *messageDecoder) consume(n int) {
	d.off += n
	d.nlFrom, d.slow, d.scan = 0, false, objectScan{}
}

// fill reads more of the stream, keeping what is not decoded yet.
func (d *messageDecoder) fill() error {
	if d.off > 0 {
		d.n = copy(d.buf, d.buf[d.off:d.n])
		d.off = 0
	}
	if d.n == len(d.buf) {
		if len(d.buf) >= maxEventBytes {
			return fmt.Errorf("decode docker event: an event larger than %d bytes", maxEventBytes)
		}
		d.buf = append(d.buf, make([]byte, len(d.buf))...)
	}
	for range 100 {
		k, err := d.r.Read(d.buf[d.n:])
		d.n += k
		switch {
		case k > 0:
			return nil
		case err == nil:
			continue
		case errors.Is(err, io.EOF) && d.off < d.n:
			return io.ErrUnexpectedEOF
		default:
			return err
		}
	}
	return io.ErrNoProgress
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// objectScan finds the end of the JSON object at the start of a buffer
// (which begins with '{'), carrying on where it stopped as the buffer
// grows. It only matches braces and brackets outside strings:
// json.Unmarshal validates the object.
type objectScan struct {
	pos, depth        int
	inString, escaped bool
}

// end is the length of the object at the start of b, or 0 if b ends
// before it does.
func (s *objectScan) end(b []byte) int {
	for ; s.pos < len(b); s.pos++ {
		c := b[s.pos]
		switch {
		case s.inString:
			switch {
			case s.escaped:
				s.escaped = false
			case c == '\\':
				s.escaped = true
			case c == '"':
				s.inString = false
			}
		case c == '"':
			s.inString = true
		case c == '{' || c == '[':
			s.depth++
		case c == '}' || c == ']':
			s.depth--
			if s.depth == 0 {
				return s.pos + 1
			}
		}
	}
	return 0
}

// decodeFast decodes data, one JSON object with nothing but whitespace
// around it, into m, reporting whether it could: it takes the fields of
// events.Message under the names Docker writes them, strings, integers
// and null, and nothing else. When it returns false, m is to be
// discarded and the object decoded by encoding/json (which then finds
// what decodeFast did not take, or an error). When it returns true, m
// holds what json.Unmarshal would have made of data.
//
// Every string of m is a part of one copy of data (one allocation per
// event), except those with escapes.
func decodeFast(data []byte, m *events.Message) bool {
	*m = events.Message{}
	p := fastParser{s: string(data)}
	p.space()
	ok := p.object(func(key string) bool {
		switch key {
		case "status":
			return p.strField(&m.Status)
		case "id":
			return p.strField(&m.ID)
		case "from":
			return p.strField(&m.From)
		case "Type":
			s := string(m.Type)
			ok := p.strField(&s)
			m.Type = events.Type(s)
			return ok
		case "Action":
			s := string(m.Action)
			ok := p.strField(&s)
			m.Action = events.Action(s)
			return ok
		case "scope":
			return p.strField(&m.Scope)
		case "time":
			return p.intField(&m.Time)
		case "timeNano":
			return p.intField(&m.TimeNano)
		case "Actor":
			return p.actor(&m.Actor)
		}
		return false // encoding/json matches names case-insensitively: its call
	})
	p.space()
	return ok && p.i == len(p.s)
}

// fastParser walks one JSON object of decodeFast.
type fastParser struct {
	s string
	i int
}

func (p *fastParser) space() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

// byte consumes c if it comes next.
func (p *fastParser) byte(c byte) bool {
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads an object, calling member for each key with the parser
// at the key's value; member reads the value, or returns false.
func (p *fastParser) object(member func(key string) bool) bool {
	if !p.byte('{') {
		return false
	}
	p.space()
	if p.byte('}') {
		return true
	}
	for {
		p.space()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.space()
		if !p.byte(':') {
			return false
		}
		p.space()
		if !member(key) {
			return false
		}
		p.space()
		if p.byte('}') {
			return true
		}
		if !p.byte(',') {
			return false
		}
	}
}

// null consumes a null literal.
func (p *fastParser) null() bool {
	if len(p.s)-p.i >= 4 && p.s[p.i:p.i+4] == "null" {
		p.i += 4
		return true
	}
	return false
}

// str reads a string: a part of s when it has no escapes and is valid
// UTF-8, else encoding/json's reading of the string alone.
func (p *fastParser) str() (string, bool) {
	if p.i >= len(p.s) || p.s[p.i] != '"' {
		return "", false
	}
	start := p.i + 1
	plain := true
	for j := start; j < len(p.s); j++ {
		c := p.s[j]
		switch {
		case c == '"':
			v := p.s[start:j]
			p.i = j + 1
			if plain || utf8.ValidString(v) {
				return v, true
			}
			return p.unquote(start-1, j+1)
		case c == '\\':
			end := stringEnd(p.s, j)
			if end < 0 {
				return "", false
			}
			p.i = end
			return p.unquote(start-1, end)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return "", false
}

// stringEnd is the index after the closing quote of the string whose
// body contains s[j] (a backslash), or -1.
func stringEnd(s string, j int) int {
	for ; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// unquote decodes the string token s[from:to] with encoding/json (escapes,
// invalid UTF-8 replaced as it does).
func (p *fastParser) unquote(from, to int) (string, bool) {
	var v string
	if json.Unmarshal([]byte(p.s[from:to]), &v) != nil {
		return "", false
	}
	return v, true
}

// strField reads a string into dst; null leaves dst as it is, as
// encoding/json does.
func (p *fastParser) strField(dst *string) bool {
	if p.null() {
		return true
	}
	v, ok := p.str()
	if ok {
		*dst = v
	}
	return ok
}

// intField reads an integer into dst; null leaves dst as it is. Anything
// else (a fraction, an exponent, an int64 overflow) is left to
// encoding/json.
func (p *fastParser) intField(dst *int64) bool {
	if p.null() {
		return true
	}
	j := p.i
	neg := j < len(p.s) && p.s[j] == '-'
	if neg {
		j++
	}
	start := j
	var v uint64
	for j < len(p.s) && p.s[j] >= '0' && p.s[j] <= '9' {
		v = v*10 + uint64(p.s[j]-'0')
		j++
	}
	digits := j - start
	if digits == 0 || digits > 19 || digits > 1 && p.s[start] == '0' { // 19 digits cannot overflow a uint64
		return false
	}
	if j < len(p.s) && (p.s[j] == '.' || p.s[j] == 'e' || p.s[j] == 'E') {
		return false
	}
	switch {
	case !neg && v <= math.MaxInt64:
		*dst = int64(v)
	case neg && v <= math.MaxInt64+1:
		*dst = -int64(v-1) - 1
	default:
		return false
	}
	p.i = j
	return true
}

// actor reads the Actor object into a (merging, as encoding/json does when
// a key repeats).
func (p *fastParser) actor(a *events.Actor) bool {
	if p.null() {
		return true
	}
	return p.object(func(key string) bool {
		switch key {
		case "ID":
			return p.strField(&a.ID)
		case "Attributes":
			return p.attributes(&a.Attributes)
		}
		return false
	})
}

// attributes reads an object of strings into *dst (made when nil, kept
// otherwise, as encoding/json does); null sets it to nil.
func (p *fastParser) attributes(dst *map[string]string) bool {
	if p.null() {
		*dst = nil
		return true
	}
	if p.i < len(p.s) && p.s[p.i] == '{' && *dst == nil {
		*dst = make(map[string]string, 16)
	}
	attrs := *dst
	return p.object(func(key string) bool {
		v, ok := p.str()
		if ok { // null or another type: encoding/json decides
			attrs[key] = v
		}
		return ok
	})
}

package event

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends the event's JSON payload to dst: the same bytes
// encoding/json produces for it (keys in struct order, attribute keys
// sorted, HTML characters escaped), without reflection, since the
// publisher encodes every event it reads.
func (e *Event) AppendJSON(dst []byte) ([]byte, error) {
	if y := e.Time.Year(); y < 0 || y > 9999 { // what time.Time refuses to encode
		b, err := json.Marshal(e)
		return append(dst, b...), err
	}
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, int64(e.V), 10)
	dst = appendField(dst, "id", e.ID)
	dst = appendField(dst, "node", e.Node)
	dst = appendField(dst, "type", e.Type)
	dst = appendField(dst, "action", e.Action)
	dst = appendField(dst, "action_detail", e.ActionDetail)
	dst = append(dst, `,"actor":{"id":`...)
	dst = appendString(dst, e.Actor.ID)
	dst = append(dst, `,"attributes":`...)
	dst = AppendAttributes(dst, e.Actor.Attributes)
	dst = append(dst, '}')
	dst = appendField(dst, "scope", e.Scope)
	dst = append(dst, `,"time":"`...)
	dst = e.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","time_nano":`...)
	dst = strconv.AppendInt(dst, e.TimeNano, 10)
	return append(dst, '}'), nil
}

// AppendAttributes appends attrs as encoding/json encodes a
// map[string]string: null when nil, else an object with its keys sorted.
func AppendAttributes(dst []byte, attrs map[string]string) []byte {
	if attrs == nil {
		return append(dst, "null"...)
	}
	var buf [32]string // on the stack for all but very large maps
	keys := buf[:0]
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, attrs[k])
	}
	return append(dst, '}')
}

// sizeHint is about the length of the event's JSON (exact when nothing
// needs escaping), so that Marshal allocates once.
func (e *Event) sizeHint() int {
	n := 200 + len(e.ID) + len(e.Node) + len(e.Type) + len(e.Action) + len(e.ActionDetail) + len(e.Actor.ID) + len(e.Scope)
	for k, v := range e.Actor.Attributes {
		n += len(k) + len(v) + 6
	}
	return n
}

func appendField(dst []byte, key, value string) []byte {
	dst = append(dst, ',', '"')
	dst = append(dst, key...)
	dst = append(dst, '"', ':')
	return appendString(dst, value)
}

const hexDigits = "0123456789abcdef"

// plainASCII[b] is true for the ASCII bytes encoding/json writes as they
// are in a string (with HTML escaping).
var plainASCII = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// AppendString appends s as a JSON string, quoted and escaped exactly as
// encoding/json does (with HTML escaping), for encoders of other types
// that must match encoding/json byte for byte.
func AppendString(dst []byte, s string) []byte { return appendString(dst, s) }

// appendString quotes s as encoding/json does with HTML escaping: ", \ and
// control characters escaped, <, > and & as \u003c…, invalid UTF-8 as
// \ufffd, U+2028 and U+2029 as \u2028 and \u2029.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if plainASCII[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

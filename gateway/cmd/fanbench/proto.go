package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// The three client protocols, reduced to what a benchmark client needs:
// recognise an event, the moment it is subscribed (or live), pings it must
// answer and errors it must report. Payloads are never decoded in full:
// the bench index and the publish time are read from known keys.

var (
	actorKey = []byte(`"actor":{"id":"`)
	timeKey  = []byte(`"time_nano":`)
)

// scanEvent reads the bench index (the actor id, decimal digits) and the
// publish time (time_nano) of a bench event payload, wherever it is
// embedded in a frame.
func scanEvent(b []byte) (n, sentNano int64, ok bool) {
	i := bytes.Index(b, actorKey)
	if i < 0 {
		return 0, 0, false
	}
	rest := b[i+len(actorKey):]
	end := bytes.IndexByte(rest, '"')
	if end <= 0 {
		return 0, 0, false
	}
	n, ok = parseDigits(rest[:end])
	if !ok {
		return 0, 0, false
	}
	j := bytes.Index(rest, timeKey)
	if j < 0 {
		return 0, 0, false
	}
	rest = rest[j+len(timeKey):]
	k := 0
	for k < len(rest) && rest[k] >= '0' && rest[k] <= '9' {
		k++
	}
	sentNano, ok = parseDigits(rest[:k])
	return n, sentNano, ok
}

// parseDigits parses a non-negative decimal number (leading zeros allowed)
// that fits an int64.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if v > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, true
}

// frameKind is what one message of a protocol is to a benchmark client.
type frameKind int

const (
	kindOther frameKind = iota // ignored (status, bookmark, connect reply, INFO, +OK …)
	kindEvent                  // an event: count it
	kindReady                  // dockcast live, Centrifugo subscribe reply, NATS PONG
	kindPing                   // answer it (Centrifugo {}, NATS PING)
	kindError                  // report it; the text says which
)

// dockcastLine classifies one dockcast server frame (one JSON object). For
// an error frame, text is its code.
func dockcastLine(line []byte) (frameKind, string) {
	switch {
	case bytes.HasPrefix(line, []byte(`{"type":"event"`)):
		return kindEvent, ""
	case bytes.HasPrefix(line, []byte(`{"type":"live"`)):
		return kindReady, ""
	case bytes.HasPrefix(line, []byte(`{"type":"error"`)):
		code, _ := dockcastError(line)
		return kindError, code
	}
	return kindOther, ""
}

// dockcastError reads an error frame's code and resume_from_seq (0 when
// it has none).
func dockcastError(line []byte) (code string, resume uint64) {
	var f struct {
		Code   string `json:"code"`
		Resume uint64 `json:"resume_from_seq"`
	}
	if err := json.Unmarshal(line, &f); err != nil || f.Code == "" {
		return "undecodable error frame", 0
	}
	return f.Code, f.Resume
}

// withFromSeq is u with its from_seq parameter set to seq.
func withFromSeq(u string, seq uint64) (string, error) {
	p, err := url.Parse(u)
	if err != nil {
		return "", err
	}
	q := p.Query()
	q.Set("from_seq", strconv.FormatUint(seq, 10))
	p.RawQuery = q.Encode()
	return p.String(), nil
}

// eachLine calls fn for every non-empty newline-separated line of frame:
// a batch=1 dockcast frame or a Centrifugo frame holds several.
func eachLine(frame []byte, fn func(line []byte)) {
	for len(frame) > 0 {
		line := frame
		if i := bytes.IndexByte(frame, '\n'); i >= 0 {
			line, frame = frame[:i], frame[i+1:]
		} else {
			frame = nil
		}
		if len(line) > 0 {
			fn(line)
		}
	}
}

// Centrifugo command ids the client uses.
const (
	cfConnectID   = 1
	cfSubscribeID = 2
)

// centrifugoCommands are the client's first frame: connect, then subscribe
// to channel, one JSON command per line.
func centrifugoCommands(channel string) []byte {
	ch, _ := json.Marshal(channel) // a string: cannot fail
	return []byte(fmt.Sprintf(`{"id":%d,"connect":{}}`+"\n"+`{"id":%d,"subscribe":{"channel":%s}}`, cfConnectID, cfSubscribeID, ch))
}

// centrifugoLine classifies one reply or push of Centrifugo's JSON
// protocol. The subscribe reply is kindReady; an error reply or a
// disconnect push is kindError with its text.
func centrifugoLine(line []byte) (frameKind, string) {
	if bytes.Equal(line, []byte(`{}`)) {
		return kindPing, ""
	}
	if bytes.HasPrefix(line, []byte(`{"push":`)) {
		if bytes.Contains(line, []byte(`"pub":`)) {
			return kindEvent, ""
		}
		if bytes.Contains(line, []byte(`"disconnect":`)) {
			return kindError, "disconnect push: " + truncate(string(line), 200)
		}
		return kindOther, ""
	}
	var r struct {
		ID    int             `json:"id"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return kindError, "undecodable frame: " + truncate(string(line), 200)
	}
	if len(r.Error) > 0 {
		return kindError, fmt.Sprintf("reply %d: error %s", r.ID, truncate(string(r.Error), 200))
	}
	if r.ID == cfSubscribeID {
		return kindReady, ""
	}
	return kindOther, ""
}

// natsCommands are a NATS client's first bytes: CONNECT without headers
// (the server then strips them from messages), one core subscription, and
// a PING whose PONG proves the subscription is registered.
func natsCommands(subject string) []byte {
	return []byte(`CONNECT {"verbose":false,"pedantic":false,"protocol":1,"echo":false,"headers":false,"lang":"go","version":"fanbench"}` +
		"\r\nSUB " + subject + " 1\r\nPING\r\n")
}

// natsPong answers the server's PING.
var natsPong = []byte("PONG\r\n")

// errNATSProtocol is a byte stream that is not the NATS protocol.
var errNATSProtocol = errors.New("nats protocol")

// natsParser reads the server side of the NATS protocol from WebSocket
// frames, which carry a byte stream: a message may span frames and a frame
// may hold many messages.
type natsParser struct {
	buf []byte // an incomplete message carried to the next frame
}

// feed parses data and calls fn for each complete message: kindEvent with
// its payload, kindPing, kindReady (PONG), kindError with the -ERR text,
// kindOther (INFO, +OK). A malformed stream is an error.
func (p *natsParser) feed(data []byte, fn func(kind frameKind, payload []byte)) error {
	in := data
	if len(p.buf) > 0 {
		p.buf = append(p.buf, data...)
		in = p.buf
	}
	used, err := parseNATS(in, fn)
	if err != nil {
		p.buf = p.buf[:0]
		return err
	}
	rest := in[used:]
	if len(p.buf) > 0 {
		n := copy(p.buf, rest)
		p.buf = p.buf[:n]
	} else if len(rest) > 0 {
		p.buf = append(p.buf[:0], rest...)
	}
	if len(p.buf) > 64<<20 {
		return fmt.Errorf("%w: %d bytes without a complete message", errNATSProtocol, len(p.buf))
	}
	return nil
}

// parseNATS parses the complete messages at the start of b and returns how
// many bytes they took.
func parseNATS(b []byte, fn func(kind frameKind, payload []byte)) (int, error) {
	used := 0
	for {
		rest := b[used:]
		eol := bytes.Index(rest, []byte("\r\n"))
		if eol < 0 {
			if len(rest) > 4096 {
				return used, fmt.Errorf("%w: control line longer than 4096 bytes", errNATSProtocol)
			}
			return used, nil
		}
		line := rest[:eol]
		op, args, _ := bytes.Cut(line, []byte(" "))
		switch string(op) {
		case "MSG", "HMSG":
			f := bytes.Fields(args)
			// MSG <subject> <sid> [reply-to] <#bytes>
			// HMSG <subject> <sid> [reply-to] <#header bytes> <#total bytes>
			want := 3
			if string(op) == "HMSG" {
				want = 4
			}
			if len(f) < want || len(f) > want+1 {
				return used, fmt.Errorf("%w: bad %s line %q", errNATSProtocol, op, truncate(string(line), 100))
			}
			total, ok := parseDigits(f[len(f)-1])
			hdr := int64(0)
			if ok && string(op) == "HMSG" {
				hdr, ok = parseDigits(f[len(f)-2])
				ok = ok && hdr <= total
			}
			if !ok || total > 64<<20 {
				return used, fmt.Errorf("%w: bad size in %q", errNATSProtocol, truncate(string(line), 100))
			}
			start := eol + 2
			end := start + int(total)
			if len(rest) < end+2 {
				return used, nil // the payload is in a later frame
			}
			if rest[end] != '\r' || rest[end+1] != '\n' {
				return used, fmt.Errorf("%w: payload of %d bytes not followed by CRLF", errNATSProtocol, total)
			}
			fn(kindEvent, rest[start+int(hdr):end])
			used += end + 2
			continue
		case "PING":
			fn(kindPing, nil)
		case "PONG":
			fn(kindReady, nil)
		case "-ERR":
			fn(kindError, args)
		case "INFO", "+OK":
			fn(kindOther, nil)
		default:
			return used, fmt.Errorf("%w: unknown operation %q", errNATSProtocol, truncate(string(op), 40))
		}
		used += eol + 2
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// itoa is strconv.Itoa for int64.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }

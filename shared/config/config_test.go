package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

type sample struct {
	Logging
	Wait  time.Duration `env:"S_WAIT" envDefault:"5s"`
	Size  ByteSize      `env:"S_SIZE" envDefault:"1GiB"`
	Count int           `env:"S_COUNT" envDefault:"3"`
	Flag  bool          `env:"S_FLAG"`
}

func (s *sample) Validate(p *Problems) {
	if s.Count < 1 {
		p.Add("S_COUNT", "must be at least 1, got %d", s.Count)
	}
}

func getenv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	var s sample
	if err := Load(&s, getenv(nil)); err != nil {
		t.Fatal(err)
	}
	if s.Wait != 5*time.Second || s.Size != 1<<30 || s.Count != 3 || s.Level != "info" || s.Format != "text" {
		t.Fatalf("%+v", s)
	}
}

func TestLoadProblems(t *testing.T) {
	t.Parallel()
	cases := map[string]map[string]string{
		"S_WAIT":     {"S_WAIT": "soon"},
		"S_SIZE":     {"S_SIZE": "big"},
		"S_COUNT":    {"S_COUNT": "0"},
		"S_FLAG":     {"S_FLAG": "maybe"},
		"LOG_LEVEL":  {"LOG_LEVEL": "loud"},
		"LOG_FORMAT": {"LOG_FORMAT": "xml"},
	}
	for name, environ := range cases {
		var s sample
		err := Load(&s, getenv(environ))
		var p Problems
		if !errors.As(err, &p) || len(p) != 1 {
			t.Errorf("%s: want one problem, got %v", name, err)
			continue
		}
		if !strings.HasPrefix(p[0], name+": ") || strings.Contains(p[0], "\n") {
			t.Errorf("%s: problem does not name the variable on one line: %q", name, p[0])
		}
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
	good := map[string]int64{"1GiB": 1 << 30, "512MB": 512e6, "64k": 64 << 10, "100": 100, " 2 MiB ": 2 << 20, "0": 0}
	for in, want := range good {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || int64(b) != want {
			t.Errorf("%q: %d, %v", in, b, err)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "1.5GiB", "99999999999TiB", "1 XB"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
	if ByteSize(1<<30).String() != "1GiB" {
		t.Error(ByteSize(1 << 30).String())
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := Logging{Level: "warn", Format: "json"}
	log := l.NewLogger(&buf)
	log.Info("hidden")
	log.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Fatal(buf.String())
	}
}

func FuzzByteSize(f *testing.F) {
	for _, s := range []string{"1GiB", "512MB", "0", "-1", "9223372036854775807", "8EiB", "1tib"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b ByteSize
		if err := b.UnmarshalText([]byte(s)); err != nil {
			return
		}
		if b < 0 {
			t.Fatalf("%q parsed to negative %d", s, b)
		}
		var again ByteSize
		if err := again.UnmarshalText([]byte(b.String())); err != nil || again != b {
			t.Fatalf("%q -> %s does not round trip: %v", s, b, err)
		}
	})
}

package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/filter"
)

// Config is the publisher's configuration, read from the environment.
type Config struct {
	shared.Logging

	// NATSURL lists the NATS servers (comma separated); empty runs an embedded server.
	NATSURL string `env:"NATS_URL"`
	// NATSCreds is a NATS credentials file.
	NATSCreds string `env:"NATS_CREDS"`
	// EmbeddedNATS is the listen address of the embedded server.
	EmbeddedNATS string `env:"PUBLISHER_EMBEDDED_NATS" envDefault:"127.0.0.1:4222"`
	// DataDir is where the embedded server stores its streams.
	DataDir string `env:"PUBLISHER_DATA_DIR" envDefault:"./data"`
	// Node is the <node> subject token; empty takes the engine's name.
	Node string `env:"PUBLISHER_NODE"`
	// Filters are Docker --filter terms, comma separated, applied by the engine.
	Filters string `env:"PUBLISHER_FILTERS"`
	// Stream is the JetStream stream name.
	Stream string `env:"PUBLISHER_STREAM" envDefault:"DOCKER_EVENTS"`
	// MaxAge, MaxBytes and Replicas are the stream's limits.
	MaxAge   time.Duration   `env:"PUBLISHER_STREAM_MAX_AGE" envDefault:"168h"`
	MaxBytes shared.ByteSize `env:"PUBLISHER_STREAM_MAX_BYTES" envDefault:"1GiB"`
	Replicas int             `env:"PUBLISHER_STREAM_REPLICAS" envDefault:"1"`
	// HTTPAddr serves /healthz, /readyz and /metrics.
	HTTPAddr string `env:"PUBLISHER_HTTP_ADDR" envDefault:":8081"`
}

// Load reads the configuration through getenv and validates it. The error,
// if any, is a [shared.Problems] with one line per problem.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	if err := shared.Load(&c, getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Embedded reports whether the publisher runs its own NATS server.
func (c *Config) Embedded() bool { return strings.TrimSpace(c.NATSURL) == "" }

// EngineFilter returns the parsed PUBLISHER_FILTERS (validated by Load).
func (c *Config) EngineFilter() filter.Filter {
	f, _ := filter.ParseList(c.Filters, filter.EngineKeys)
	return f
}

// Validate implements [shared.Validator].
func (c *Config) Validate(p *shared.Problems) {
	if !c.Embedded() {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if err := CheckNATSURL(strings.TrimSpace(u)); err != nil {
				p.Add("NATS_URL", "%v", err)
			}
		}
	} else {
		if err := CheckHostPort(c.EmbeddedNATS); err != nil {
			p.Add("PUBLISHER_EMBEDDED_NATS", "%v", err)
		}
		if strings.TrimSpace(c.DataDir) == "" {
			p.Add("PUBLISHER_DATA_DIR", "must not be empty")
		} else if st, err := os.Stat(c.DataDir); err == nil && !st.IsDir() {
			p.Add("PUBLISHER_DATA_DIR", "%q is not a directory", c.DataDir)
		}
	}
	if c.NATSCreds != "" {
		if f, err := os.Open(c.NATSCreds); err != nil {
			p.Add("NATS_CREDS", "cannot read credentials file: %v", err)
		} else {
			_ = f.Close()
		}
	}
	if c.Node != "" {
		if err := CheckNode(c.Node); err != nil {
			p.Add("PUBLISHER_NODE", "%v", err)
		}
	}
	if _, err := filter.ParseList(c.Filters, filter.EngineKeys); err != nil {
		p.Add("PUBLISHER_FILTERS", "%v", err)
	}
	if err := CheckStreamName(c.Stream); err != nil {
		p.Add("PUBLISHER_STREAM", "%v", err)
	}
	if c.MaxAge < 0 {
		p.Add("PUBLISHER_STREAM_MAX_AGE", "must not be negative, got %v", c.MaxAge)
	}
	if c.MaxBytes <= 0 {
		p.Add("PUBLISHER_STREAM_MAX_BYTES", "must be more than 0, got %d", int64(c.MaxBytes))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		p.Add("PUBLISHER_STREAM_REPLICAS", "must be between 1 and 5, got %d", c.Replicas)
	}
	if err := CheckHostPort(c.HTTPAddr); err != nil {
		p.Add("PUBLISHER_HTTP_ADDR", "%v", err)
	}
}

// CheckNATSURL accepts one NATS server URL: scheme nats, tls, ws or wss and a host.
func CheckNATSURL(s string) error {
	if s == "" {
		return fmt.Errorf("empty server URL")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", redact(s), unwrapURLError(err))
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%q: scheme must be nats, tls, ws or wss", redact(s))
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q: no host", redact(s))
	}
	if p := u.Port(); p != "" {
		if _, err := parsePort(p); err != nil {
			return fmt.Errorf("%q: %v", redact(s), err)
		}
	}
	return nil
}

// redact hides a password that a URL may carry.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(s, "@"); i >= 0 {
			return "…@" + s[i+1:]
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// CheckHostPort accepts "host:port" or ":port" with a numeric port 0..65535.
func CheckHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", s, unwrapAddrError(err))
	}
	if strings.ContainsAny(host, " \t/") {
		return fmt.Errorf("%q: bad host %q", s, host)
	}
	if _, err := parsePort(port); err != nil {
		return fmt.Errorf("%q: %v", s, err)
	}
	return nil
}

func unwrapAddrError(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

func parsePort(p string) (int, error) {
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 || strings.HasPrefix(p, "+") {
		return 0, fmt.Errorf("port %q is not a number from 0 to 65535", p)
	}
	return n, nil
}

// SplitHostPort parses an address accepted by CheckHostPort.
func SplitHostPort(s string) (string, int, error) {
	if err := CheckHostPort(s); err != nil {
		return "", 0, err
	}
	host, port, _ := net.SplitHostPort(s)
	n, _ := parsePort(port)
	return host, n, nil
}

// CheckStreamName accepts a JetStream stream name.
func CheckStreamName(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 255 {
		return fmt.Errorf("longer than 255 bytes")
	}
	if i := strings.IndexFunc(s, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' || r == '/' || r == '\\'
	}); i >= 0 {
		return fmt.Errorf("%q: a stream name cannot contain whitespace, control characters, '.', '*', '>', '/' or '\\'", s)
	}
	return nil
}

// CheckNode accepts a node name: letters, digits, '_', '=' and '-', at most 255 bytes.
func CheckNode(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	if len(s) > 255 {
		return fmt.Errorf("longer than 255 bytes")
	}
	for _, r := range s {
		if !nodeRune(r) {
			return fmt.Errorf("%q: only letters, digits, '_', '=' and '-' are allowed (it is a subject token and a key)", s)
		}
	}
	return nil
}

func nodeRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '=' || r == '-'
}

// SanitizeNode turns any name (the engine's) into a valid node name,
// replacing every other character with '_'.
func SanitizeNode(s string) string {
	if s == "" {
		return "_"
	}
	out := make([]rune, 0, len(s))
	for _, r := range s {
		if nodeRune(r) {
			out = append(out, r)
		} else {
			out = append(out, '_')
		}
	}
	if len(out) > 255 {
		out = out[:255]
	}
	return string(out)
}

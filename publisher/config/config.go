package config

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	shared "github.com/dockcast/dockcast/shared/config"
	"github.com/dockcast/dockcast/shared/filter"
	"github.com/dockcast/dockcast/shared/natsutil"
)

// Config is the publisher's configuration, read from the environment.
type Config struct {
	shared.Logging
	// NATSTLS is TLS to NATS (NATS_CA, NATS_CERT, NATS_KEY).
	shared.NATSTLS

	// NATSURL lists the NATS servers (comma separated); empty runs an embedded server.
	NATSURL string `env:"NATS_URL"`
	// NATSCreds is a NATS credentials file.
	NATSCreds string `env:"NATS_CREDS"`
	// EmbeddedNATS is the listen address of the embedded server.
	EmbeddedNATS string `env:"PUBLISHER_EMBEDDED_NATS" envDefault:"127.0.0.1:4222"`
	// DataDir is where the embedded server stores its streams.
	DataDir string `env:"PUBLISHER_DATA_DIR" envDefault:"./data"`
	// EmbeddedSync is the embedded server's JetStream sync_interval:
	// "always" (fsync every write) or a Go duration.
	EmbeddedSync string `env:"PUBLISHER_EMBEDDED_SYNC" envDefault:"always"`
	// Node is the <node> subject token; empty takes the engine's name.
	Node string `env:"PUBLISHER_NODE"`
	// Filters are Docker --filter terms, comma separated, applied by the engine.
	Filters string `env:"PUBLISHER_FILTERS"`
	// Stream is the JetStream stream name.
	Stream string `env:"PUBLISHER_STREAM" envDefault:"DOCKER_EVENTS"`
	// MaxAge, MaxBytes, Replicas and DuplicateWindow are the stream's
	// limits; an existing stream only gets those present in the
	// environment (see Explicit).
	MaxAge          time.Duration   `env:"PUBLISHER_STREAM_MAX_AGE" envDefault:"168h"`
	MaxBytes        shared.ByteSize `env:"PUBLISHER_STREAM_MAX_BYTES" envDefault:"1GiB"`
	Replicas        int             `env:"PUBLISHER_STREAM_REPLICAS" envDefault:"1"`
	DuplicateWindow time.Duration   `env:"PUBLISHER_STREAM_DUPLICATE_WINDOW" envDefault:"2m"`
	// QueueMaxBytes bounds the queue between the Docker reader and the writer.
	QueueMaxBytes shared.ByteSize `env:"PUBLISHER_QUEUE_MAX_BYTES" envDefault:"64MiB"`
	// Hub is edge mode: leaf-node URLs of the central NATS (comma
	// separated), with HubCreds, HubCA/HubCert/HubKey and HubDomain.
	Hub       string `env:"PUBLISHER_HUB"`
	HubCreds  string `env:"PUBLISHER_HUB_CREDS"`
	HubCA     string `env:"PUBLISHER_HUB_CA"`
	HubCert   string `env:"PUBLISHER_HUB_CERT"`
	HubKey    string `env:"PUBLISHER_HUB_KEY"`
	HubDomain string `env:"PUBLISHER_HUB_DOMAIN" envDefault:"hub"`
	// HTTPAddr serves /healthz, /readyz and /metrics.
	HTTPAddr string `env:"PUBLISHER_HTTP_ADDR" envDefault:":8081"`

	explicit natsutil.Explicit
}

// The smallest queue bound accepted (a test can use a tiny queue).
const minQueueBytes = 1 << 10

// Load reads the configuration through getenv and validates it. The error,
// if any, is a [shared.Problems] with one line per problem.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	if err := shared.Load(&c, getenv); err != nil {
		return Config{}, err
	}
	c.explicit = natsutil.Explicit{
		MaxAge:     getenv("PUBLISHER_STREAM_MAX_AGE") != "",
		MaxBytes:   getenv("PUBLISHER_STREAM_MAX_BYTES") != "",
		Replicas:   getenv("PUBLISHER_STREAM_REPLICAS") != "",
		Duplicates: getenv("PUBLISHER_STREAM_DUPLICATE_WINDOW") != "",
	}
	return c, nil
}

// Explicit says which stream limits the environment sets: only those
// change an existing stream (contract, "The stream is shared").
func (c *Config) Explicit() natsutil.Explicit { return c.explicit }

// Embedded reports whether the publisher runs its own NATS server.
func (c *Config) Embedded() bool { return strings.TrimSpace(c.NATSURL) == "" }

// Edge reports whether the publisher runs in edge mode (PUBLISHER_HUB).
func (c *Config) Edge() bool { return strings.TrimSpace(c.Hub) != "" }

// SyncInterval is PUBLISHER_EMBEDDED_SYNC as a duration; 0 means always
// (validated by Load).
func (c *Config) SyncInterval() time.Duration {
	if strings.EqualFold(strings.TrimSpace(c.EmbeddedSync), "always") {
		return 0
	}
	d, _ := time.ParseDuration(strings.TrimSpace(c.EmbeddedSync))
	return d
}

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
	if s := strings.TrimSpace(c.EmbeddedSync); !strings.EqualFold(s, "always") {
		if d, err := time.ParseDuration(s); err != nil || d <= 0 {
			p.Add("PUBLISHER_EMBEDDED_SYNC", "%q: want always or a duration such as 1s or 2m", c.EmbeddedSync)
		}
	}
	if c.NATSCreds != "" {
		if err := CheckCreds(c.NATSCreds); err != nil {
			p.Add("NATS_CREDS", "%v", err)
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
	switch {
	case c.DuplicateWindow <= 0:
		p.Add("PUBLISHER_STREAM_DUPLICATE_WINDOW", "must be more than 0, got %v", c.DuplicateWindow)
	case c.MaxAge < 0:
		p.Add("PUBLISHER_STREAM_MAX_AGE", "must not be negative, got %v", c.MaxAge)
	case c.MaxAge > 0 && c.MaxAge < c.DuplicateWindow:
		p.Add("PUBLISHER_STREAM_MAX_AGE", "%v is shorter than the duplicate window (PUBLISHER_STREAM_DUPLICATE_WINDOW %v)", c.MaxAge, c.DuplicateWindow)
	}
	if c.MaxBytes <= 0 {
		p.Add("PUBLISHER_STREAM_MAX_BYTES", "must be more than 0, got %d", int64(c.MaxBytes))
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		p.Add("PUBLISHER_STREAM_REPLICAS", "must be between 1 and 5, got %d", c.Replicas)
	}
	if c.QueueMaxBytes < minQueueBytes {
		p.Add("PUBLISHER_QUEUE_MAX_BYTES", "must be at least %s, got %s", shared.ByteSize(minQueueBytes), c.QueueMaxBytes)
	}
	c.validateHub(p)
	if err := CheckHostPort(c.HTTPAddr); err != nil {
		p.Add("PUBLISHER_HTTP_ADDR", "%v", err)
	}
}

// validateHub checks edge mode's variables.
func (c *Config) validateHub(p *shared.Problems) {
	if !c.Edge() {
		for name, v := range map[string]string{"PUBLISHER_HUB_CREDS": c.HubCreds, "PUBLISHER_HUB_CA": c.HubCA,
			"PUBLISHER_HUB_CERT": c.HubCert, "PUBLISHER_HUB_KEY": c.HubKey} {
			if v != "" {
				p.Add(name, "only applies with PUBLISHER_HUB (edge mode)")
			}
		}
		return
	}
	if !c.Embedded() {
		p.Add("PUBLISHER_HUB", "edge mode writes to the embedded server, which is a leaf node of the hub: unset NATS_URL")
	}
	for _, u := range strings.Split(c.Hub, ",") {
		if err := CheckLeafURL(strings.TrimSpace(u)); err != nil {
			p.Add("PUBLISHER_HUB", "%v", err)
		}
	}
	if c.HubCreds != "" {
		if err := CheckCreds(c.HubCreds); err != nil {
			p.Add("PUBLISHER_HUB_CREDS", "%v", err)
		}
	}
	shared.CheckTLSFiles(p, "PUBLISHER_HUB_CA", c.HubCA, "PUBLISHER_HUB_CERT", c.HubCert, "PUBLISHER_HUB_KEY", c.HubKey)
	if err := CheckDomain(c.HubDomain); err != nil {
		p.Add("PUBLISHER_HUB_DOMAIN", "%v", err)
	}
}

// CheckCreds accepts a readable NATS credentials file: a user JWT and a
// user seed, decorated as `nsc` writes them.
func CheckCreds(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("cannot read credentials file: %v", unwrapPathError(err))
	}
	if jwt, err := nkeys.ParseDecoratedJWT(b); err != nil || jwt == string(b) || !bytes.Contains(b, []byte("NATS USER JWT")) {
		return fmt.Errorf("%s is not a NATS credentials file: no user JWT block", path)
	}
	if _, err := nkeys.ParseDecoratedUserNKey(b); err != nil {
		return fmt.Errorf("%s is not a NATS credentials file: no valid user seed (%v)", path, err)
	}
	return nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

// CheckLeafURL accepts one leaf-node URL of the hub: scheme nats-leaf,
// nats, tls, ws or wss, and a host.
func CheckLeafURL(s string) error {
	return checkURL(s, "leaf-node URL", "nats-leaf", "nats", "tls", "ws", "wss")
}

// CheckDomain accepts a JetStream domain name: letters, digits, '_' and
// '-', at most 255 bytes.
func CheckDomain(s string) error {
	if s == "" || len(s) > 255 || strings.ContainsFunc(s, func(r rune) bool { return !nodeRune(r) || r == '=' }) {
		return fmt.Errorf("%q: a JetStream domain has only letters, digits, '_' and '-' (at most 255)", s)
	}
	return nil
}

// CheckNATSURL accepts one NATS server URL: scheme nats, tls, ws or wss and a host.
func CheckNATSURL(s string) error {
	return checkURL(s, "server URL", "nats", "tls", "ws", "wss")
}

// checkURL accepts a URL with one of schemes, a host and a valid port.
func checkURL(s, what string, schemes ...string) error {
	if s == "" {
		return fmt.Errorf("empty %s", what)
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", redact(s), unwrapURLError(err))
	}
	if !slices.Contains(schemes, u.Scheme) {
		return fmt.Errorf("%q: scheme must be %s or %s", redact(s), strings.Join(schemes[:len(schemes)-1], ", "), schemes[len(schemes)-1])
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

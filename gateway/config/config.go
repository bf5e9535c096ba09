// Package config is the gateway's configuration, read from the environment
// (see the contract's "Gateway configuration" table) and validated with one
// line per problem naming the variable.
//
// Entry point: Load.
package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"

	shared "github.com/dockcast/dockcast/shared/config"

	"github.com/dockcast/dockcast/gateway/auth"
)

// Config is the gateway's configuration.
type Config struct {
	shared.Logging
	// NATSTLS is TLS to NATS: NATS_CA, NATS_CERT, NATS_KEY.
	shared.NATSTLS
	// NATSURL is a comma list of NATS server URLs.
	NATSURL string `env:"NATS_URL" envDefault:"nats://127.0.0.1:4222"`
	// NATSCreds is a NATS credentials file, optional.
	NATSCreds string `env:"NATS_CREDS"`
	// Addr is the HTTP listen address.
	Addr string `env:"GATEWAY_ADDR" envDefault:":8080"`
	// Stream is the JetStream stream holding the events.
	Stream string `env:"GATEWAY_STREAM" envDefault:"DOCKER_EVENTS"`
	// TokensFile lists the access tokens (see package auth for the format).
	TokensFile string `env:"GATEWAY_TOKENS_FILE"`
	// AllowAnonymous serves clients without a token from anywhere when no
	// tokens file is set; otherwise only loopback clients are served.
	AllowAnonymous bool `env:"GATEWAY_ALLOW_ANONYMOUS" envDefault:"false"`
	// AllowedOrigins is a comma list of browser origins (scheme://host[:port])
	// allowed to open /ws besides the gateway's own host.
	AllowedOrigins string `env:"GATEWAY_ALLOWED_ORIGINS"`
	// MaxClients is the number of client connections served at once.
	MaxClients int `env:"GATEWAY_MAX_CLIENTS" envDefault:"10000"`
	// MaxClientsPerIP is the number of client connections served at once
	// for one address (an IPv6 /64).
	MaxClientsPerIP int `env:"GATEWAY_MAX_CLIENTS_PER_IP" envDefault:"100"`
	// TrustedProxies is a comma list of CIDRs (or addresses) of reverse
	// proxies whose Forwarded / X-Forwarded-For headers name the client.
	TrustedProxies string `env:"GATEWAY_TRUSTED_PROXIES"`
	// AdminAddr, when set, is where /metrics is served instead of Addr.
	AdminAddr string `env:"GATEWAY_ADMIN_ADDR"`

	// Tokens is the parsed tokens file (nil without one), set by Validate.
	Tokens *auth.Tokens
	// Origins is AllowedOrigins parsed and normalised, set by Validate.
	Origins []string
	// Proxies is TrustedProxies parsed, set by Validate.
	Proxies []netip.Prefix
}

// Load reads the configuration with getenv. The error is a
// shared/config.Problems with one "VARIABLE: problem" line per bad value.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	if err := shared.Load(&c, getenv); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every value; it loads the tokens file.
func (c *Config) Validate(p *shared.Problems) {
	if err := checkNATSURLs(c.NATSURL); err != nil {
		p.Add("NATS_URL", "%v", err)
	}
	if c.NATSCreds != "" {
		if err := readable(c.NATSCreds); err != nil {
			p.Add("NATS_CREDS", "%v", err)
		}
	}
	if err := checkAddr(c.Addr); err != nil {
		p.Add("GATEWAY_ADDR", "%v", err)
	}
	if err := checkStream(c.Stream); err != nil {
		p.Add("GATEWAY_STREAM", "%v", err)
	}
	if c.TokensFile != "" {
		t, err := auth.LoadFile(c.TokensFile)
		if err != nil {
			p.Add("GATEWAY_TOKENS_FILE", "%v", err)
		} else {
			c.Tokens = t
		}
	}
	origins, err := ParseOrigins(c.AllowedOrigins)
	if err != nil {
		p.Add("GATEWAY_ALLOWED_ORIGINS", "%v", err)
	}
	c.Origins = origins
	if c.MaxClients < 1 {
		p.Add("GATEWAY_MAX_CLIENTS", "must be at least 1, got %d", c.MaxClients)
	}
	if c.MaxClientsPerIP < 1 {
		p.Add("GATEWAY_MAX_CLIENTS_PER_IP", "must be at least 1, got %d", c.MaxClientsPerIP)
	}
	proxies, err := ParseProxies(c.TrustedProxies)
	if err != nil {
		p.Add("GATEWAY_TRUSTED_PROXIES", "%v", err)
	}
	c.Proxies = proxies
	if c.AdminAddr != "" {
		if err := checkAddr(c.AdminAddr); err != nil {
			p.Add("GATEWAY_ADMIN_ADDR", "%v", err)
		} else if c.AdminAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
			p.Add("GATEWAY_ADMIN_ADDR", "%q is GATEWAY_ADDR too: give the admin listener its own address", c.AdminAddr)
		}
	}
}

// ParseProxies parses GATEWAY_TRUSTED_PROXIES: a comma list of CIDRs or
// single addresses. An empty string gives none.
func ParseProxies(s string) ([]netip.Prefix, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return nil, fmt.Errorf("empty entry in %q", s)
		}
		if strings.Contains(raw, "/") {
			pfx, err := netip.ParsePrefix(raw)
			if err != nil || pfx.Addr().Zone() != "" {
				return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or an address", raw)
			}
			if pfx.Addr().Is4In6() {
				pfx = netip.PrefixFrom(pfx.Addr().Unmap(), max(pfx.Bits()-96, 0))
			}
			out = append(out, pfx.Masked())
			continue
		}
		a, err := netip.ParseAddr(raw)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not a CIDR like 10.0.0.0/8 or an address", raw)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Access describes who may connect, for the start-up log line.
func (c *Config) Access() string {
	switch {
	case c.Tokens != nil:
		return fmt.Sprintf("token-protected (%d tokens from %s)", c.Tokens.Len(), c.TokensFile)
	case c.AllowAnonymous:
		return "anonymous-open: any client may read every event (GATEWAY_ALLOW_ANONYMOUS=true)"
	default:
		return "protected mode: loopback clients only (set GATEWAY_TOKENS_FILE or GATEWAY_ALLOW_ANONYMOUS=true to serve others)"
	}
}

func checkNATSURLs(s string) error {
	parts := strings.Split(s, ",")
	for _, raw := range parts {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return fmt.Errorf("empty URL in %q", s)
		}
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("%q is not a URL: %v", raw, err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%q: scheme must be nats, tls, ws or wss", raw)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		if port := u.Port(); port != "" {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("%q: bad port %q", raw, port)
			}
		}
	}
	return nil
}

func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %v", path, err)
	}
	return f.Close()
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %v", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	return nil
}

func checkStream(name string) error {
	if name == "" {
		return fmt.Errorf("empty stream name")
	}
	if strings.ContainsAny(name, ".*> \t\r\n/\\") {
		return fmt.Errorf("%q: a stream name may not contain '.', '*', '>', '/', '\\' or whitespace", name)
	}
	return nil
}

// ParseOrigins parses a comma list of origins scheme://host[:port] (http or
// https) into their lower-case form. An empty string gives none.
func ParseOrigins(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for _, raw := range strings.Split(s, ",") {
		raw = strings.TrimSpace(raw)
		o, err := NormaliseOrigin(raw)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// NormaliseOrigin checks that s is an origin (scheme://host[:port], no
// path, query or user) and returns it in lower case.
func NormaliseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an origin like https://app.example.com: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q is not an origin like https://app.example.com: scheme must be http or https", s)
	}
	if u.Host == "" || u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin like https://app.example.com: only scheme://host[:port]", s)
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: bad port %q", s, port)
		}
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

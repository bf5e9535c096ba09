package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// eventStream is one /events request of the engine, read event by event.
//
// It is the Docker client's Events without its costs: the request goes
// through the client's own HTTP client (its transport, socket or TLS
// configuration, and the API version it negotiated), and the body is
// decoded by messageDecoder in the caller's goroutine, without
// reflection and without a channel hand-off per event.
type eventStream struct {
	body io.ReadCloser
	dec  *messageDecoder
}

// openEvents requests /events with opts. Since and Until are passed as
// they are: the watcher gives them as Docker's "seconds.nanoseconds".
// scheme is "https" for an engine behind TLS, else "" (http).
func openEvents(ctx context.Context, cli *client.Client, scheme string, opts events.ListOptions) (*eventStream, error) {
	host, err := client.ParseHostURL(cli.DaemonHost())
	if err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	if scheme == "" {
		scheme = "http"
	}
	q := url.Values{}
	if opts.Since != "" {
		q.Set("since", opts.Since)
	}
	if opts.Until != "" {
		q.Set("until", opts.Until)
	}
	if opts.Filters.Len() > 0 {
		f, err := filters.ToJSON(opts.Filters)
		if err != nil {
			return nil, fmt.Errorf("docker events: filters: %w", err)
		}
		q.Set("filters", f)
	}
	p := path.Join(host.Path, "/events")
	if v := cli.ClientVersion(); v != "" {
		p = path.Join(host.Path, "/v"+strings.TrimPrefix(v, "v"), "/events")
	}
	u := url.URL{Scheme: scheme, Host: client.DummyHost, Path: p, RawQuery: q.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	req.URL.Host = host.Host // a socket path for unix and npipe, as the client has it
	if host.Scheme == "unix" || host.Scheme == "npipe" {
		req.Host = client.DummyHost
	}
	resp, err := cli.HTTPClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker events: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, fmt.Errorf("docker events: %w", responseError(resp))
	}
	return &eventStream{body: resp.Body, dec: newMessageDecoder(resp.Body)}, nil
}

// responseError is the engine's answer to a failed request: its message
// ({"message": …}) or its body, and the status.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(body))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	if msg == "" {
		return errors.New("engine answered " + resp.Status)
	}
	return fmt.Errorf("engine answered %s: %s", resp.Status, msg)
}

// Next reads the next event into m; io.EOF once the engine ended the
// stream after a whole event.
func (s *eventStream) Next(m *events.Message) error { return s.dec.Decode(m) }

// Close ends the request.
func (s *eventStream) Close() error { return s.body.Close() }

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Timeout bounds the whole check; Docker's own --timeout should be larger.
const Timeout = 3 * time.Second

type usageError string

func (e usageError) Error() string { return string(e) }

// run checks the URL in args[1] and writes a one-line result to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) != 2 {
		return usageError("usage: healthcheck http://HOST:PORT/PATH")
	}
	u, err := url.Parse(args[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageError(fmt.Sprintf("%q is not an http(s) URL", args[1]))
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("request %s: %w", u.Redacted(), err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u.Redacted(), err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	line := strings.TrimSpace(strings.SplitN(string(body), "\n", 2)[0])
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s %s", u.Redacted(), res.Status, line)
	}
	fmt.Fprintf(stdout, "%s %s\n", res.Status, line)
	return nil
}

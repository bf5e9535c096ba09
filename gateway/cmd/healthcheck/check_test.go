package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			_, _ = w.Write([]byte("ok\n"))
			return
		}
		http.Error(w, "not ready: nats disconnected", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	for _, tc := range []struct {
		name    string
		args    []string
		usage   bool
		wantErr string
	}{
		{name: "healthy", args: []string{"hc", srv.URL + "/healthz"}},
		{name: "unhealthy", args: []string{"hc", srv.URL + "/readyz"}, wantErr: "503 Service Unavailable not ready: nats disconnected"},
		{name: "refused", args: []string{"hc", closed.URL + "/healthz"}, wantErr: "connect"},
		{name: "no args", args: []string{"hc"}, usage: true, wantErr: "usage"},
		{name: "two args", args: []string{"hc", "a", "b"}, usage: true, wantErr: "usage"},
		{name: "not a URL", args: []string{"hc", "127.0.0.1:8080/healthz"}, usage: true, wantErr: "not an http(s) URL"},
		{name: "bad scheme", args: []string{"hc", "ftp://127.0.0.1/"}, usage: true, wantErr: "not an http(s) URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tc.args, &out)
			if tc.wantErr == "" {
				if err != nil || !strings.HasPrefix(out.String(), "200 OK ok") {
					t.Fatalf("err %v, out %q", err, out.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to contain %q", err, tc.wantErr)
			}
			var u usageError
			if errors.As(err, &u) != tc.usage {
				t.Fatalf("usage error %v, want %v", errors.As(err, &u), tc.usage)
			}
		})
	}
}

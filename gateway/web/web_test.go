package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, srv *httptest.Server, path string) (*http.Response, string) {
	t.Helper()
	res, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return res, string(b)
}

func TestHandlerServesThePage(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(Handler())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/", "text/html", `<script src="app.js"`},
		{"/app.js", "javascript", "'/ws?'"},
		{"/app.css", "text/css", ":focus-visible"},
		{"/favicon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res, body := get(t, srv, tc.path)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %q", ct, tc.ctype)
			}
			if !strings.Contains(body, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if got, want := res.Header.Get("Content-Security-Policy"), ContentSecurityPolicy(strings.TrimPrefix(srv.URL, "http://")); got != want {
				t.Errorf("CSP %q, want %q", got, want)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", got)
			}
		})
	}
	if res, _ := get(t, srv, "/nope.js"); res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: status %d, want 404", res.StatusCode)
	}
}

// TestCSPConnectsToOwnHostOnly: the page may open WebSockets to its own
// host and nowhere else (a bare ws: or wss: source allows every host).
func TestCSPConnectsToOwnHostOnly(t *testing.T) {
	t.Parallel()
	for host, want := range map[string][]string{
		"127.0.0.1:8080":         {"'self'", "ws://127.0.0.1:8080", "wss://127.0.0.1:8080"},
		"events.example.com":     {"'self'", "ws://events.example.com", "wss://events.example.com"},
		"[::1]:8080":             {"'self'", "ws://[::1]:8080", "wss://[::1]:8080"},
		"evil.com; script-src *": {"'self'"},
		"":                       {"'self'"},
	} {
		var connect []string
		for _, d := range strings.Split(ContentSecurityPolicy(host), ";") {
			if f := strings.Fields(d); len(f) > 0 && f[0] == "connect-src" {
				connect = f[1:]
			}
		}
		if strings.Join(connect, " ") != strings.Join(want, " ") {
			t.Errorf("host %q: connect-src %q, want %q", host, connect, want)
		}
		for _, d := range strings.Split(ContentSecurityPolicy(host), ";") {
			if f := strings.Fields(d); len(f) > 0 && f[0] == "script-src" && strings.Join(f, " ") != "script-src 'self'" {
				t.Errorf("host %q changed script-src: %q", host, d)
			}
		}
	}
}

// The page must work on an air-gapped host: no file may load anything from
// another origin (the SVG namespace is an identifier, not a fetch).
func TestNothingFetchedFromOutside(t *testing.T) {
	t.Parallel()
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	err := fs.WalkDir(static, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m == "http://www.w3.org" {
				continue
			}
			t.Errorf("%s refers to %s", path, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Every control the page wires up by id exists in index.html, and every
// input has a label.
func TestPageIDsAndLabels(t *testing.T) {
	t.Parallel()
	html, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(`id="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		ids[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`\$\('([a-z-]+)'\)`).FindAllStringSubmatch(string(js), -1) {
		if !ids[m[1]] {
			t.Errorf("app.js uses #%s, which index.html lacks", m[1])
		}
	}
	for _, k := range []string{"type", "event", "node", "container", "image", "label"} {
		if !ids["f-"+k] || !strings.Contains(string(html), `<label for="f-`+k+`">`) {
			t.Errorf("filter %s: no labelled input #f-%s", k, k)
		}
	}
	for _, m := range regexp.MustCompile(`<input id="([^"]+)"`).FindAllStringSubmatch(string(html), -1) {
		if !strings.Contains(string(html), `for="`+m[1]+`"`) {
			t.Errorf("input #%s has no label", m[1])
		}
	}
}

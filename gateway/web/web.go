// Package web holds the gateway's live page: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and nothing fetched from
// outside, so it works on an air-gapped host. Entry point: Handler.
//
// The page (static/app.js) opens /ws on the same host, replays the last 15
// minutes, then follows live; it resumes with from_seq after a drop and asks
// for a token (kept in sessionStorage) when the gateway answers 401.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// ContentSecurityPolicy is sent with every response of Handler: the page
// loads only its own files and talks only to its own host.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the live page and its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files change with the binary: revalidate instead of caching
		// an old page across gateway upgrades.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

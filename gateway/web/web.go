// Package web holds the gateway's live page: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and nothing fetched from
// outside, so it works on an air-gapped host. Entry point: Handler.
//
// The page (static/app.js) opens /ws on the same host, replays the last 15
// minutes, then follows live; it resumes with from_seq and epoch after a
// drop, starts over after a stream reset, and asks for a token (kept in
// sessionStorage, sent as the dockcast.token.<base64url> subprotocol) when
// the gateway answers 401.
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

const cspBase = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'; connect-src 'self'"

// ContentSecurityPolicy is sent with every response of Handler for a
// request to host (its Host header): the page loads only its own files and
// talks only to its own host, over HTTP and WebSocket (ws: and wss: to that
// host only; browsers differ on whether 'self' covers WebSocket).
func ContentSecurityPolicy(host string) string {
	if host == "" || strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-:[]", r))
	}) >= 0 {
		return cspBase // not a plain host[:port]: same origin only
	}
	return cspBase + " ws://" + host + " wss://" + host
}

// Handler serves the live page and its assets.
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServer(http.FS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy(r.Host))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// The files change with the binary: revalidate instead of caching
		// an old page across gateway upgrades.
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}

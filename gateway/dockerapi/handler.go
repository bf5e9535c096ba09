package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/versions"
)

// The API versions the handler speaks: the events API of Docker Engine
// 20.10, whose JSON (legacy fields included) Message reproduces.
const (
	DefaultAPIVersion    = "1.41"
	DefaultMinAPIVersion = "1.12"
	// DefaultWriteTimeout bounds each write of the /events stream.
	DefaultWriteTimeout = 10 * time.Second
)

// Config configures NewHandler. The zero value works.
type Config struct {
	// APIVersion is the highest API version answered (the Api-Version
	// header, /version), MinAPIVersion the lowest one a /v1.NN/ prefix may
	// ask for. Defaults: DefaultAPIVersion, DefaultMinAPIVersion.
	APIVersion, MinAPIVersion string
	// Version is dockcast's version, in /version and the Server header
	// (default "dev").
	Version string
	// Admit, when set, authorizes an /events request once its query is
	// valid, and may narrow q.Filter to what the caller may read. An *Error
	// sets the answer's status (401, 403); any other error is a 500.
	// /_ping and /version are not subject to it.
	Admit func(r *http.Request, q *Query) error
	// WriteTimeout bounds each write of the /events stream (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
	// Now is the clock that decides whether until is past (default time.Now).
	Now func() time.Time
}

// Error is an API error: its Message is sent in Docker's error shape
// {"message":"…"} with HTTP status Status.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// ErrPageNotFound is Docker's answer to every path it does not serve.
var ErrPageNotFound = &Error{Status: http.StatusNotFound, Message: "page not found"}

// apiResources are the first path segments of Docker's Engine API.
var apiResources = []string{
	"_ping", "version", "events", "info", "auth", "build", "commit", "configs",
	"containers", "distribution", "exec", "grpc", "images", "networks", "nodes",
	"plugins", "secrets", "services", "session", "swarm", "system", "tasks", "volumes",
}

// IsAPIPath reports whether path belongs to the Docker Engine API: it has a
// /v1.NN/ prefix or starts with one of the API's resources (/containers,
// /info, …). The gateway routes those paths to NewHandler's handler.
func IsAPIPath(path string) bool {
	_, rest, versioned := splitVersion(path)
	if versioned {
		return true
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	return slices.Contains(apiResources, first)
}

// splitVersion splits "/v1.41/events" into "1.41" and "/events", as
// Docker's router matches /v{version:[0-9.]+}.
func splitVersion(path string) (version, rest string, ok bool) {
	seg, tail, found := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	v, isV := strings.CutPrefix(seg, "v")
	if !isV || v == "" || strings.Trim(v, "0123456789.") != "" {
		return "", path, false
	}
	if !found {
		return v, "", true
	}
	return v, "/" + tail, true
}

type handler struct {
	log *slog.Logger
	cfg Config
	src Source
}

// NewHandler answers /_ping (GET, HEAD), /version (GET) and /events (GET),
// also under a /v1.NN/ prefix, from src; every other path with 404
// {"message":"page not found"}, as Docker does.
func NewHandler(logger *slog.Logger, cfg Config, src Source) http.Handler {
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.MinAPIVersion == "" {
		cfg.MinAPIVersion = DefaultMinAPIVersion
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &handler{log: logger.With("component", "dockerapi"), cfg: cfg, src: src}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	version, rest, versioned := splitVersion(r.URL.Path)
	var serve func(http.ResponseWriter, *http.Request)
	switch {
	case rest == "/_ping" && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		serve = h.ping
	case rest == "/version" && r.Method == http.MethodGet:
		serve = h.version
	case rest == "/events" && r.Method == http.MethodGet:
		serve = h.events
	default:
		writeError(w, ErrPageNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Api-Version", h.cfg.APIVersion)
	hd.Set("Ostype", runtime.GOOS)
	hd.Set("Docker-Experimental", "false")
	hd.Set("Server", fmt.Sprintf("dockcast/%s (%s)", h.cfg.Version, runtime.GOOS))
	if versioned {
		if versions.LessThan(version, h.cfg.MinAPIVersion) {
			writeError(w, badRequest(fmt.Sprintf("client version %s is too old. Minimum supported API version is %s, please upgrade your client to a newer version", version, h.cfg.MinAPIVersion)))
			return
		}
		if versions.GreaterThan(version, h.cfg.APIVersion) {
			writeError(w, badRequest(fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", version, h.cfg.APIVersion)))
			return
		}
	}
	serve(w, r)
}

func (h *handler) ping(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	hd.Set("Pragma", "no-cache")
	hd.Set("Content-Type", "text/plain; charset=utf-8")
	if r.Method == http.MethodHead {
		hd.Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return
	}
	_, _ = io.WriteString(w, "OK")
}

func (h *handler) version(w http.ResponseWriter, _ *http.Request) {
	v := types.Version{
		Components: []types.ComponentVersion{{
			Name:    "dockcast gateway",
			Version: h.cfg.Version,
			Details: map[string]string{
				"ApiVersion": h.cfg.APIVersion, "MinAPIVersion": h.cfg.MinAPIVersion,
				"GoVersion": runtime.Version(), "Os": runtime.GOOS, "Arch": runtime.GOARCH,
			},
		}},
		Version:       h.cfg.Version,
		APIVersion:    h.cfg.APIVersion,
		MinAPIVersion: h.cfg.MinAPIVersion,
		GoVersion:     runtime.Version(),
		Os:            runtime.GOOS,
		Arch:          runtime.GOARCH,
	}
	v.Platform.Name = "dockcast"
	writeJSON(w, http.StatusOK, v)
}

// events streams the query's events, one JSON object per line, each batch
// flushed, as the engine's /events does.
func (h *handler) events(w http.ResponseWriter, r *http.Request) {
	form, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, badRequest(err.Error()))
		return
	}
	q, err := ParseQuery(form, h.cfg.Now())
	if err != nil {
		writeError(w, err)
		return
	}
	if h.cfg.Admit != nil {
		if err := h.cfg.Admit(r, &q); err != nil {
			writeError(w, err)
			return
		}
	}
	ctx := r.Context()
	if q.Follow && !q.Until.IsZero() {
		// As the engine does: follow until the wall clock reaches until.
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, q.Until)
		defer cancel()
	}
	cur, err := h.src.Open(ctx, q)
	if err != nil {
		var apiErr *Error
		if !errors.As(err, &apiErr) {
			h.log.Warn("events unavailable", "err", err)
			apiErr = &Error{Status: http.StatusServiceUnavailable, Message: "events are unavailable right now, try again"}
		}
		writeError(w, apiErr)
		return
	}
	defer cur.Close()
	rc := http.NewResponseController(w)
	// The server's read timeout would end the request's context (its
	// background read fails) in the middle of a long follow.
	_ = rc.SetReadDeadline(time.Time{})
	// A fresh deadline for the server's own end of the response.
	defer func() { _ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout)) }()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if err := h.flush(rc); err != nil {
		return
	}
	var (
		buf  []byte
		last uint64
	)
	for {
		items, err := cur.Next(ctx)
		buf = buf[:0]
		for i := range items {
			it := &items[i]
			if it.Seq <= last {
				h.log.Warn("events out of order from the source: dropped", "seq", it.Seq, "after", last)
				continue
			}
			last = it.Seq
			if !q.Match(&it.Event) {
				continue
			}
			var lerr error
			if buf, lerr = AppendLine(buf, &it.Event); lerr != nil {
				h.log.Warn("event not sent", "seq", it.Seq, "err", lerr)
			}
		}
		if len(buf) > 0 {
			if werr := h.write(rc, w, buf); werr != nil {
				h.log.Debug("events client gone", "err", werr)
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), ctx.Err() != nil:
			return
		default:
			h.log.Warn("events feed ended", "err", err)
			return
		}
	}
}

func (h *handler) write(rc *http.ResponseController, w http.ResponseWriter, b []byte) error {
	if err := rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return err
	}
	return h.flush(rc)
}

func (h *handler) flush(rc *http.ResponseController) error {
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// writeError answers err in Docker's error shape; an error that is not an
// *Error is a 500 with a generic message (its text may hold internals).
func writeError(w http.ResponseWriter, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		apiErr = &Error{Status: http.StatusInternalServerError, Message: "internal error"}
	}
	writeJSON(w, apiErr.Status, types.ErrorResponse{Message: apiErr.Message})
}

// writeJSON writes v as Docker's httputils.WriteJSON does: HTML characters
// not escaped, one newline after.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

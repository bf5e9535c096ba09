package server

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/dockcast/dockcast/gateway/client"
	"github.com/dockcast/dockcast/gateway/sse"
)

// ParseSSEQuery validates a GET /sse request: /ws's parameters (batch does
// not apply) and its resume point, the Last-Event-ID header or the
// last_event_id parameter (<epoch>:<seq>). The header wins over since,
// from_seq, epoch and last_event_id in the URL, which an EventSource
// re-sends on every reconnect; last_event_id in the URL excludes since and
// from_seq. A resume point continues after its seq, in its epoch.
func ParseSSEQuery(h http.Header, values url.Values, now time.Time) (Query, error) {
	if _, ok := values["batch"]; ok {
		return Query{}, errors.New("batch: does not apply to /sse (one message per frame)")
	}
	resume, err := sse.ResumeFrom(h, values)
	if err != nil {
		return Query{}, err
	}
	rest := url.Values{}
	for k, vs := range values {
		if k == sse.LastEventIDParam {
			continue
		}
		if resume != nil && resume.Header && (k == "since" || k == "from_seq" || k == "epoch") {
			continue // the header wins
		}
		rest[k] = vs
	}
	q, err := ParseQuery(rest, now)
	if err != nil {
		return Query{}, err
	}
	if resume != nil {
		if q.Replay() || q.Epoch != "" {
			return Query{}, errors.New("last_event_id excludes since, from_seq and epoch: give one")
		}
		q.FromSeq, q.Epoch = resume.FromSeq(), resume.Epoch
	}
	return q, nil
}

func (s *Server) serveSSE(w http.ResponseWriter, r *http.Request) {
	q, err := ParseSSEQuery(r.Header, r.URL.Query(), time.Now())
	if err != nil {
		s.refuse(w, r, &Refusal{Status: http.StatusBadRequest, Reason: err.Error()})
		return
	}
	s.awaitServing(r)
	a, ref := s.AdmitQuery(r, q)
	if ref != nil {
		s.refuse(w, r, ref)
		return
	}
	defer a.Release()
	s.wg.Add(1)
	defer s.wg.Done()
	spec := a.Spec
	spec.Filter, spec.Subjects = s.shareSpecFilter(spec.Filter, spec.Subjects)
	spec.OnSlow = s.onSlow(a.Peer)
	opts := s.clientOpts
	opts.Credits = s.sse.Credits()
	c := client.New(spec, opts)
	s.clients.Store(c, a)
	defer s.clients.Delete(c)
	if cur := s.tokens.Load(); cur != a.tokens && !s.stillGranted(cur, c) {
		s.refuse(w, r, &Refusal{Status: http.StatusUnauthorized, Auth: "invalid_token", Reason: "invalid token"})
		return
	}
	if err := s.sse.Serve(w, r, c); err != nil {
		s.log.Debug("sse", "remote", r.RemoteAddr, "err", err)
	}
}

// onSlow counts and logs a slow consumer (it keeps the peer, not the
// admission: a client's Spec lives as long as the client).
func (s *Server) onSlow(peer Peer) func(uint64) {
	return func(resume uint64) {
		if s.deps.Metrics != nil {
			s.deps.Metrics.SlowConsumers.Inc()
		}
		s.log.Info("slow consumer disconnected", "remote", peer.String(), "resume_from_seq", resume)
	}
}

// SSEReadyWait is how long an /sse request waits for a gateway that has
// just started to attach to the stream before it is refused with 503: an
// EventSource gives up for good on an error status, and reconnects within
// seconds of a restart.
const SSEReadyWait = 10 * time.Second

// awaitServing waits, at most SSEReadyWait, until clients may join.
func (s *Server) awaitServing(r *http.Request) {
	if ok, _ := s.deps.Hub.Serving(); ok {
		return
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	deadline := time.After(SSEReadyWait)
	for {
		select {
		case <-t.C:
			if ok, _ := s.deps.Hub.Serving(); ok || s.closing.Load() {
				return
			}
		case <-deadline:
			return
		case <-r.Context().Done():
			return
		}
	}
}

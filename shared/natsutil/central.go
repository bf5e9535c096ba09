package natsutil

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dockcast/dockcast/shared/backoff"
)

// Edge mode, the centre's side (contract: "Edge mode"). Each edge node runs
// a leaf node with its own JetStream domain (the node name) holding its
// local stream; the central stream, in the hub's domain, copies every
// node's local stream by JetStream sourcing across the leaf link. The
// functions here take a JetStream context for the hub's domain
// (jetstream.NewWithDomain(nc, hubDomain) on a connection to a leaf, or
// jetstream.New on a connection to a central server).

// DomainAPI is the JetStream API prefix of a domain as seen from any server
// linked to it: $JS.<domain>.API.
func DomainAPI(domain string) string { return "$JS." + domain + ".API" }

// LocalStreamName is the name of an edge node's local stream: the central
// stream's name, "_" and the node (DOCKER_EVENTS_web-1).
func LocalStreamName(central, node string) string { return central + "_" + node }

// ValidEdgeNode reports whether node can be an edge node's JetStream
// domain and part of its local stream's name (the node token of
// subject.Token may still hold '/' and '\\', which a stream name may not),
// and is not the hub's own domain. The error completes "node …".
func ValidEdgeNode(node, hubDomain string) error {
	switch {
	case node == "":
		return errors.New("is empty")
	case strings.ContainsAny(node, " \t\r\n\f.*>/\\"):
		return fmt.Errorf("%q cannot be a JetStream domain or stream name (no spaces, '.', '*', '>', '/', '\\')", node)
	case node == hubDomain:
		return fmt.Errorf("%q is the hub's JetStream domain; an edge node needs its own", node)
	case len(node) > 200:
		return fmt.Errorf("is %d bytes long; at most 200", len(node))
	}
	return nil
}

// EdgeSource is the central stream's source for an edge node's local
// stream, read through the node's JetStream domain. OptStartSeq is 1 on
// purpose: without a start, nats-server starts a source added to a stream
// whose first sequence is above 1 (any stream that has aged out a message)
// at the central stream's last stored time, skipping whatever the local
// stream stored before that, such as a node's events written while the
// centre was out of reach. Once the central stream holds messages of a
// source, it resumes after the last of them whatever the start says.
// No deliver prefix is needed: the leaf link joins the same account, and
// the server's default delivery subject ($JS.S.…) crosses it.
func EdgeSource(node, localStream string) jetstream.StreamSource {
	return jetstream.StreamSource{
		Name:        localStream,
		OptStartSeq: 1,
		External:    &jetstream.ExternalStream{APIPrefix: DomainAPI(node)},
	}
}

// SourceNode is the edge node (JetStream domain) a source reads from, or ""
// when it reads from the hub's own domain or another account.
func SourceNode(ext *jetstream.ExternalStream) string {
	if ext == nil {
		return ""
	}
	rest, ok := strings.CutPrefix(ext.APIPrefix, "$JS.")
	if !ok {
		return ""
	}
	node, ok := strings.CutSuffix(rest, ".API")
	if !ok || node == "" || strings.Contains(node, ".") {
		return ""
	}
	return node
}

// CentralStreamConfig is the central stream an edge publisher creates when
// it is missing: the event stream's subjects and storage (so that
// direct-mode publishers can share it), replicas, the local stream's max
// age and duplicate window, and no byte limit (the operator sets one).
func CentralStreamConfig(name string, maxAge, duplicates time.Duration, replicas int) jetstream.StreamConfig {
	cfg := StreamConfig(name, maxAge, -1, replicas)
	cfg.Duplicates = duplicates
	return cfg
}

// DefaultAPITimeout bounds each JetStream API request made here. A request
// can go unanswered (seen here right after a cluster elected its meta
// leader: no reply, no error), and waiting for the caller's whole deadline
// would stall it; a request that timed out is simply made again.
const DefaultAPITimeout = 10 * time.Second

// DefaultUpdateTimeout bounds a stream update that adds a source. The
// server scans the whole stream for messages of a source it has not seen
// before, holding the stream meanwhile (nats-server issue #6992; measured
// here: about 13 s for 240,000 messages on 1,000 subjects, see
// docs/scaling.md). Giving up sooner would only send the update again.
const DefaultUpdateTimeout = 5 * time.Minute

// request runs one JetStream API call bounded by timeout (default
// DefaultAPITimeout) within ctx.
func request[T any](ctx context.Context, timeout time.Duration, call func(context.Context) (T, error)) (T, error) {
	if timeout <= 0 {
		timeout = DefaultAPITimeout
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return call(rctx)
}

// EnsureCentralStream creates the central stream with cfg when it is
// missing and otherwise leaves it exactly as it is: its limits belong to
// the operator (or to EnsureStream, for a publisher told to change them).
// When several publishers create it at once, the losers open the winner's.
// Requests that fail for a passing reason (no answer, no responders during
// an election) are retried until ctx ends.
func EnsureCentralStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig, log *slog.Logger) (jetstream.Stream, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bo := backoff.New(50*time.Millisecond, 2*time.Second)
	for {
		s, err := request(ctx, 0, func(c context.Context) (jetstream.Stream, error) { return js.Stream(c, cfg.Name) })
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s, err = request(ctx, 0, func(c context.Context) (jetstream.Stream, error) { return js.CreateStream(c, cfg) })
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another publisher made it first: open that one
			}
			if err == nil {
				log.Info("central stream created", "stream", cfg.Name, "replicas", cfg.Replicas, "max_age", cfg.MaxAge, "duplicate_window", cfg.Duplicates)
			}
		}
		if err == nil {
			return s, nil
		}
		if permanent(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("ensure central stream %s: %w", cfg.Name, Explain(err))
		}
		log.Debug("ensure central stream", "stream", cfg.Name, "err", Explain(err))
		if werr := bo.Wait(ctx); werr != nil {
			return nil, fmt.Errorf("ensure central stream %s: %w", cfg.Name, Explain(err))
		}
	}
}

// DefaultSettle is Sources.Settle's default.
const DefaultSettle = time.Second

// Sources changes and reads the sources of the central stream.
//
// A stream's configuration has no compare-and-set: an update replaces the
// whole list of sources, so two publishers that read the list at the same
// time and each add their own would lose one of the two. Add and Move
// therefore converge instead of writing once: they update from the
// stream's latest configuration, read it back, and repeat until their own
// change is in place and every source they have seen in the meantime is
// still there (re-adding what a concurrent writer dropped); after a write
// of their own they wait Settle and check once more, so that a writer that
// read the list just before their update and wrote it just after is caught
// too. Callers should still call Add now and then (every 30 s is cheap: one
// stream info) so that a source lost to a writer slower than Settle, or
// removed by hand, comes back; a source removed and added again resumes
// after the last message the central stream holds from it.
type Sources struct {
	JS     jetstream.JetStream // the hub's JetStream
	Stream string              // the central stream's name
	// Settle is how long a change must stay in place before it counts
	// (default DefaultSettle).
	Settle time.Duration
	// Timeout bounds each read (default DefaultAPITimeout).
	Timeout time.Duration
	// UpdateTimeout bounds each update (default DefaultUpdateTimeout).
	UpdateTimeout time.Duration
	Log           *slog.Logger
}

// sourceKey identifies a source as nats-server does (its name, the API it
// is read through, its filter), ignoring start options.
func sourceKey(s jetstream.StreamSource) string {
	api := ""
	if s.External != nil {
		api = s.External.APIPrefix
	}
	var tr []string
	for _, t := range s.SubjectTransforms {
		tr = append(tr, t.Source+">"+t.Destination)
	}
	return s.Name + " " + api + " " + s.FilterSubject + " " + strings.Join(tr, ",")
}

// Add makes the central stream source src without losing any other source.
// It returns when src has been in place for Settle after its last write, or
// with ctx's error; a permanent refusal (a missing stream, an invalid
// source) ends it at once.
func (s Sources) Add(ctx context.Context, src jetstream.StreamSource) error {
	return s.converge(ctx, src, nil)
}

// Move replaces the source from with to (an edge node whose local stream
// was made again under a new name), keeping every other source.
func (s Sources) Move(ctx context.Context, from, to jetstream.StreamSource) error {
	return s.converge(ctx, to, &from)
}

func (s Sources) converge(ctx context.Context, add jetstream.StreamSource, drop *jetstream.StreamSource) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	settle := s.Settle
	if settle <= 0 {
		settle = DefaultSettle
	}
	dropKey := "\x00" // matches no source
	if drop != nil {
		dropKey = sourceKey(*drop)
	}
	addKey := sourceKey(add)
	keep := map[string]jetstream.StreamSource{addKey: add} // every source this call keeps
	order := []string{addKey}
	bo := backoff.New(20*time.Millisecond, time.Second)
	fail := func(err error) error { return fmt.Errorf("source %s into %s: %w", add.Name, s.Stream, Explain(err)) }
	// again waits after a failed request, or says why the call ends.
	again := func(what string, err error) error {
		if permanent(err) || ctx.Err() != nil {
			return fail(err)
		}
		log.Debug(what, "stream", s.Stream, "err", Explain(err))
		if err := bo.Wait(ctx); err != nil {
			return fail(err)
		}
		return nil
	}
	wrote, settled := false, false
	for attempt := 1; ; attempt++ {
		st, err := s.info(ctx)
		if err != nil {
			if err := again("read central stream", err); err != nil {
				return err
			}
			continue
		}
		cfg := st.CachedInfo().Config
		have := make(map[string]bool, len(cfg.Sources))
		dropped := false
		for _, src := range cfg.Sources {
			k := sourceKey(*src)
			have[k] = true
			if k == dropKey {
				dropped = true
				continue
			}
			if _, ok := keep[k]; !ok {
				keep[k] = *src
				order = append(order, k)
			}
		}
		var missing []string
		for _, k := range order {
			if !have[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 && !dropped {
			if !wrote || settled {
				return nil
			}
			settled = true // one more look after Settle
			if err := backoff.Sleep(ctx, settle); err != nil {
				return fail(err)
			}
			continue
		}
		settled = false
		if attempt > 1 {
			log.Info("central stream sources changed by another writer: repairing", "stream", s.Stream, "missing", len(missing), "attempt", attempt)
		}
		next := cfg
		next.Sources = nil
		for _, src := range cfg.Sources {
			if sourceKey(*src) != dropKey {
				next.Sources = append(next.Sources, src)
			}
		}
		for _, k := range missing {
			src := keep[k]
			next.Sources = append(next.Sources, &src)
		}
		if _, err := request(ctx, cmp.Or(s.UpdateTimeout, DefaultUpdateTimeout), func(c context.Context) (jetstream.Stream, error) { return s.JS.UpdateStream(c, next) }); err != nil {
			if err := again("update central stream sources", err); err != nil {
				return err
			}
			continue
		}
		wrote = true
		if drop != nil && dropped {
			log.Info("central stream source moved", "stream", s.Stream, "from", drop.Name, "to", add.Name)
		} else if !have[addKey] {
			log.Info("central stream source added", "stream", s.Stream, "source", add.Name, "api", apiOf(add))
		}
		// A short random pause lets concurrent writers' updates land
		// before the re-read, so that rounds do not keep colliding.
		if err := backoff.Sleep(ctx, backoff.Jitter(20*time.Millisecond)); err != nil {
			return fail(err)
		}
	}
}

// permanent reports a JetStream API refusal that retrying cannot change
// (an invalid configuration, a missing stream); timeouts, "no responders"
// during an election and server errors are worth retrying.
func permanent(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code == 400 || apiErr.Code == 404
	}
	return errors.Is(err, jetstream.ErrStreamNotFound)
}

func apiOf(s jetstream.StreamSource) string {
	if s.External == nil {
		return ""
	}
	return s.External.APIPrefix
}

// info reads the central stream's configuration and state.
func (s Sources) info(ctx context.Context) (jetstream.Stream, error) {
	return request(ctx, s.Timeout, func(c context.Context) (jetstream.Stream, error) { return s.JS.Stream(c, s.Stream) })
}

// OfNode returns the central stream's sources that read from node's
// JetStream domain (normally one: the node's current local stream).
func (s Sources) OfNode(ctx context.Context, node string) ([]jetstream.StreamSource, error) {
	st, err := s.info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read central stream %s: %w", s.Stream, Explain(err))
	}
	var out []jetstream.StreamSource
	for _, src := range st.CachedInfo().Config.Sources {
		if SourceNode(src.External) == node {
			out = append(out, *src)
		}
	}
	return out, nil
}

// SourceLag is the sourcing state of one source of the central stream, as
// nats-server reports it (`nats stream report` shows the same).
type SourceLag struct {
	Node   string // the edge node the source reads from ("" for the hub's own domain)
	Stream string // the source stream
	// Lag is how many messages of the source the central stream has not
	// copied yet, as of the last contact (stale while the link is down).
	Lag uint64
	// Seq is the source's last sequence the central stream has copied.
	Seq uint64
	// Active is the time since the last contact with the source, -1 when
	// there has been none.
	Active time.Duration
	// Error is the server's last sourcing error for it, "" when healthy.
	Error string
}

// Lags reads every source's lag from the central stream's info, sorted by
// node and stream.
func (s Sources) Lags(ctx context.Context) ([]SourceLag, error) {
	st, err := s.info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read central stream %s: %w", s.Stream, Explain(err))
	}
	info := st.CachedInfo()
	out := make([]SourceLag, 0, len(info.Sources))
	for _, si := range info.Sources {
		l := SourceLag{Node: SourceNode(si.External), Stream: si.Name, Lag: si.Lag, Seq: si.Seq, Active: si.Active}
		if si.Error != nil {
			l.Error = si.Error.Description
		}
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b SourceLag) int {
		if c := strings.Compare(a.Node, b.Node); c != 0 {
			return c
		}
		return strings.Compare(a.Stream, b.Stream)
	})
	return out, nil
}

package config

// BadCase is a configuration value that Load must reject with one line
// naming Var. The tests of this package and the binary's exit-status test
// share the table, so that every variable is covered by both.
type BadCase = struct{ Var, Value string }

// BadCases returns one or more bad values for every variable; file must be
// an existing regular file (for PUBLISHER_DATA_DIR).
func BadCases(file string) []BadCase {
	return []BadCase{
		{"NATS_URL", "http://localhost:4222"},
		{"NATS_URL", "nats://"},
		{"NATS_URL", "localhost:4222"},
		{"NATS_URL", "nats://a:4222,"},
		{"NATS_URL", "nats://user:secret@host:99999"},
		{"NATS_CREDS", "/nonexistent/user.creds"},
		{"PUBLISHER_EMBEDDED_NATS", "4222"},
		{"PUBLISHER_EMBEDDED_NATS", "127.0.0.1:70000"},
		{"PUBLISHER_DATA_DIR", file},
		{"PUBLISHER_NODE", "web.1"},
		{"PUBLISHER_NODE", "a b"},
		{"PUBLISHER_NODE", "*"},
		{"PUBLISHER_FILTERS", "colour=red"},
		{"PUBLISHER_FILTERS", "type"},
		{"PUBLISHER_STREAM", "DOCKER.EVENTS"},
		{"PUBLISHER_STREAM", "a b"},
		{"PUBLISHER_STREAM", "a/b"},
		{"PUBLISHER_STREAM", `a\b`},
		{"PUBLISHER_STREAM", "ev>"},
		{"PUBLISHER_STREAM_MAX_AGE", "forever"},
		{"PUBLISHER_STREAM_MAX_AGE", "-1h"},
		{"PUBLISHER_STREAM_MAX_BYTES", "lots"},
		{"PUBLISHER_STREAM_MAX_BYTES", "0"},
		{"PUBLISHER_STREAM_REPLICAS", "0"},
		{"PUBLISHER_STREAM_REPLICAS", "6"},
		{"PUBLISHER_STREAM_REPLICAS", "two"},
		{"PUBLISHER_HTTP_ADDR", "8081"},
		{"PUBLISHER_HTTP_ADDR", ":http-alt"},
		{"LOG_LEVEL", "loud"},
		{"LOG_FORMAT", "xml"},
	}
}

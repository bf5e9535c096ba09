package config

import (
	"io"
	"log/slog"
	"strings"
)

// Logging is the LOG_LEVEL / LOG_FORMAT pair both services read.
type Logging struct {
	// Level is debug, info, warn or error.
	Level string `env:"LOG_LEVEL" envDefault:"info"`
	// Format is text or json.
	Format string `env:"LOG_FORMAT" envDefault:"text"`
}

// Validate checks the level and format.
func (l *Logging) Validate(p *Problems) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		p.Add("LOG_LEVEL", "%q is not a level (debug, info, warn, error)", l.Level)
	}
	switch strings.ToLower(l.Format) {
	case "text", "json":
	default:
		p.Add("LOG_FORMAT", "%q is not a format (text, json)", l.Format)
	}
}

// NewLogger builds the slog logger the configuration asks for, writing to w.
// Call it after Validate.
func (l *Logging) NewLogger(w io.Writer) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.Level))
	opts := &slog.HandlerOptions{Level: lv}
	if strings.EqualFold(l.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

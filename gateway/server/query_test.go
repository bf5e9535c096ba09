package server

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dockcast/dockcast/gateway/client"
)

func TestParseQuery(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r, err := ParseQuery(url.Values{"filter": {"type=container", "event=start"}, "since": {"15m"}, "token": {"t"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Since.Equal(now.Add(-15*time.Minute)) || r.Token != "t" || len(r.Subjects) != 1 || r.Subjects[0] != "docker.events.*.container.start" || !r.Replay() {
		t.Fatalf("%+v", r)
	}
	for in, want := range map[string]time.Time{
		"1700000000":                    time.Unix(1700000000, 0),
		"1700000000.5":                  time.Unix(1700000000, 5e8),
		"2026-11-25T10:00:00Z":          time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
		"2026-11-25T10:00:00.123+01:00": time.Date(2026, 11, 25, 9, 0, 0, 123e6, time.UTC),
		"2h":                            now.Add(-2 * time.Hour),
	} {
		got, err := ParseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("since %q: %v %v, want %v", in, got, err, want)
		}
	}
	r, err = ParseQuery(url.Values{"from_seq": {"42"}}, now)
	if err != nil || r.FromSeq != 42 || r.Epoch != "" {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = ParseQuery(url.Values{"from_seq": {"42"}, "epoch": {"1764097465217300886"}}, now)
	if err != nil || r.FromSeq != 42 || r.Epoch != "1764097465217300886" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range []url.Values{
		{"filter": {"x"}}, {"since": {"soon"}}, {"since": {"-1h"}}, {"since": {"0"}}, {"from_seq": {"0"}},
		{"from_seq": {"1.5"}}, {"since": {"1m"}, "from_seq": {"2"}}, {"other": {"1"}}, {"token": {""}},
		{"from_seq": {"1", "2"}}, {"since": {"1.2.3"}}, {"since": {"99999-01-01T00:00:00Z"}},
		{"epoch": {"123"}}, {"since": {"1m"}, "epoch": {"123"}}, {"from_seq": {"1"}, "epoch": {""}},
		{"from_seq": {"1"}, "epoch": {"-5"}}, {"from_seq": {"1"}, "epoch": {"0123"}}, {"from_seq": {"1"}, "epoch": {"12a"}},
		{"from_seq": {"1"}, "epoch": {"99999999999999999999"}}, {"from_seq": {"1"}, "epoch": {"1", "2"}},
	} {
		if _, err := ParseQuery(bad, now); err == nil && bad.Get("since") != "0" {
			t.Errorf("%v accepted", bad)
		} else if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: multi-line error %q", bad, err)
		}
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"filter=type%3Dcontainer&since=15m", "from_seq=3&filter=label%3Da%3Db", "since=1700000000.25",
		"since=2026-01-01T00:00:00Z&token=x", "filter=event%3Dhealth_status&filter=node%3Dweb-1", "a=b", "from_seq=-1",
		"from_seq=7&epoch=1764097465217300886", "epoch=5", "from_seq=1&epoch=00", "from_seq=1&epoch=9223372036854775808",
	} {
		f.Add(s)
	}
	now := time.Now()
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		r, err := ParseQuery(v, now)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("multi-line error %q", err)
			}
			return
		}
		if r.FromSeq > 0 && !r.Since.IsZero() {
			t.Fatal("since and from_seq both accepted")
		}
		if r.Epoch != "" && (r.FromSeq == 0 || client.CheckEpoch(r.Epoch) != nil) {
			t.Fatalf("epoch %q accepted with from_seq %d", r.Epoch, r.FromSeq)
		}
		if len(r.Subjects) == 0 {
			t.Fatal("no subjects")
		}
	})
}

func TestParseQuerySnapshot(t *testing.T) {
	t.Parallel()
	now := time.Now()
	r, err := ParseQuery(url.Values{"snapshot": {"1"}, "filter": {"label=env=prod", "event=die"}}, now)
	if err != nil || !r.Snapshot || r.Replay() {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := ParseQuery(url.Values{"snapshot": {"0"}, "since": {"1m"}}, now); err != nil || r.Snapshot {
		t.Fatalf("snapshot=0: %+v %v", r, err)
	}
	for _, bad := range []url.Values{
		{"snapshot": {"1"}, "since": {"1m"}}, {"snapshot": {"1"}, "from_seq": {"5"}},
		{"snapshot": {"1"}, "from_seq": {"5"}, "epoch": {"1764097465217300886"}},
		{"snapshot": {"yes"}}, {"snapshot": {""}}, {"snapshot": {"1", "1"}},
	} {
		if _, err := ParseQuery(bad, now); err == nil || !strings.Contains(err.Error(), "snapshot") {
			t.Errorf("%v: %v, want a refusal naming snapshot", bad, err)
		}
	}
}

package bench

import (
	"math"
	"strings"
	"testing"
)

func TestStreamsCount(t *testing.T) {
	for _, c := range []struct {
		nofile uint64
		want   int
		n      int
		capped bool
	}{
		{1 << 20, 10000, 10000, false},
		{20400, 10000, 10000, false}, // exactly fits: 2×10,000 + 400
		{20399, 10000, 9999, true},
		{20000, 10000, 9800, true},
		{1024, 10000, 312, true},
		{400, 10000, 0, true},
		{0, 10000, 0, true},
		{math.MaxUint64, 10000, 10000, false}, // RLIM_INFINITY
		{20000, 500, 500, false},
	} {
		n, capped := StreamsCount(c.nofile, c.want)
		if n != c.n || (capped != "") != c.capped {
			t.Errorf("StreamsCount(%d, %d) = %d, %q; want %d, capped %t", c.nofile, c.want, n, capped, c.n, c.capped)
		}
	}
	_, capped := StreamsCount(20000, 10000)
	if want := "capped at 9,800: RLIMIT_NOFILE is 20,000"; !strings.HasPrefix(capped, want) {
		t.Errorf("capped = %q, want it to start with %q", capped, want)
	}
}

func TestProjectRSS(t *testing.T) {
	// 10 MiB before, 9,000 streams took it to 10 MiB + 9,000 × 26 KiB.
	per, proj := ProjectRSS(10240, 10240+9000*26, 9000, 10000)
	if per != 26 || proj != 10240+260000 {
		t.Errorf("ProjectRSS = %v, %v; want 26, %d", per, proj, 10240+260000)
	}
	if per, proj := ProjectRSS(10240, 20000, 0, 10000); per != 0 || proj != 0 {
		t.Errorf("ProjectRSS with no streams = %v, %v; want 0, 0", per, proj)
	}
}

func TestStreamsCheck(t *testing.T) {
	const goal = "10,000 idle SSE streams: RSS < 300 MiB"
	projected := func(base, settled int64, n int) *StreamsReport {
		s := &StreamsReport{Opened: n, BaseRSSKiB: base, SettledRSSKiB: settled}
		s.PerStreamKiB, s.ProjectedKiB = ProjectRSS(base, settled, n, StreamsTarget)
		return s
	}
	for _, c := range []struct {
		name     string
		s        *StreamsReport
		measured string
		verdict  string
	}{
		{"projected pass", projected(10<<10, 10<<10+9950*26, 9950), "264 MiB (projected from 9,950)", "PASS"},
		{"projected fail", projected(10<<10, 10<<10+9000*33, 9000), "332 MiB (projected from 9,000)", "FAIL"},
		{"measured pass", projected(10<<10, 250<<10, 10000), "250 MiB", "PASS"},
		{"measured at the limit fails", projected(10<<10, 300<<10, 10000), "300 MiB", "FAIL"},
		{"broken keeps its figure", func() *StreamsReport {
			s := projected(10<<10, 250<<10, 10000)
			s.Error = "the server closed 3 of 10000 held streams"
			return s
		}(), "250 MiB", "ERROR"},
		{"nothing measured", &StreamsReport{Error: "mcpgw did not start"}, "", "ERROR"},
	} {
		got := StreamsCheck(c.s)
		if got.Scenario != StreamsScenario || got.Goal != goal || got.Measured != c.measured || got.Verdict != c.verdict {
			t.Errorf("%s: StreamsCheck = %+v; want goal %q, measured %q, verdict %s", c.name, got, goal, c.measured, c.verdict)
		}
	}
}

func TestWriteMarkdownStreams(t *testing.T) {
	s := &StreamsReport{
		Title: "9,950 idle SSE streams", Wanted: 10000, Streams: 9950, Opened: 9950, OpenSeconds: 2.5, HeldSeconds: 150,
		BaseRSSKiB: 10 << 10, OpenRSSKiB: 270 << 10, SettledRSSKiB: 250 << 10,
	}
	s.Capped = "capped at 9,950: RLIMIT_NOFILE is 20,000"
	s.PerStreamKiB, s.ProjectedKiB = ProjectRSS(s.BaseRSSKiB, s.SettledRSSKiB, s.Opened, StreamsTarget)
	rep := &CompareReport{Streams: s, Targets: []TargetCheck{StreamsCheck(s)}}
	var b strings.Builder
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"### Streams: 9,950 idle SSE streams",
		"| 9,950 | 9,950 | 0 | 0 | 2.5 s | 10 MiB | 270 MiB | 250 MiB | 24.7 KiB | 251 MiB |",
		"Asked for 10,000 streams, capped at 9,950",
		"| streams | 10,000 idle SSE streams: RSS < 300 MiB | 3 | 251 MiB (projected from 9,950) | **PASS** |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadConfig checks that ParseConfig never panics and always answers
// either a Config or a non-empty ConfigErrors whose lines carry no
// impossible positions. Seeds: every fixture in testdata/config.
func FuzzLoadConfig(f *testing.F) {
	seeds, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("server: &a {listen: *a}\n"))
	f.Add([]byte("applications: [{rules: [{arguments: {\"\": \"${env:HOME}\"}}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("fuzz.yaml", data)
		if err == nil {
			if cfg == nil {
				t.Fatal("nil Config and nil error")
			}
			return
		}
		if cfg != nil {
			t.Fatal("a Config returned with an error")
		}
		var ce ConfigErrors
		if !errors.As(err, &ce) || len(ce) == 0 {
			t.Fatalf("error %T %v, want a non-empty ConfigErrors", err, err)
		}
		lines := countLines(data)
		for _, e := range ce {
			if e.Msg == "" || e.Line < 0 || e.Column < 0 || e.File == "fuzz.yaml" && e.Line > lines+1 {
				t.Fatalf("bad error %+v in a %d-line input", e, lines)
			}
		}
		_ = ce.Error()
	})
}

func countLines(data []byte) int {
	n := 1
	for _, c := range data {
		if c == '\n' {
			n++
		}
	}
	return n
}

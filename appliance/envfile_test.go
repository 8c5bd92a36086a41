package appliance

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		want     map[string]string
		wantErrs []string
	}{
		{
			name: "pingone layout",
			src: "# PingOne Privilege\n\nOIDC_CLIENT_ID=abc\nOIDC_CLIENT_SECRET='s#e$c\"r'\n" +
				"OIDC_AUTH_URL=\"https://idp.example/as/authorize\"\nexport OIDC_SCOPES=openid profile email\n" +
				"SERVER_URL=https://gw.example.com # public name\n",
			want: map[string]string{
				"OIDC_CLIENT_ID": "abc", "OIDC_CLIENT_SECRET": `s#e$c"r`,
				"OIDC_AUTH_URL": "https://idp.example/as/authorize", "OIDC_SCOPES": "openid profile email",
				"SERVER_URL": "https://gw.example.com",
			},
		},
		{
			name: "double-quote escapes",
			src:  `A="x\"y\\z\n\t\$HOME \q"` + "\n",
			want: map[string]string{"A": "x\"y\\z\n\t$HOME \\q"},
		},
		{
			name: "whitespace, CRLF, BOM and comments",
			src:  "\uFEFF  # indented comment\r\n\tA = 1 \r\nB=a#b\r\nC=\"q\" # after\r\nD=\r\nexport\tE=e\r\n",
			want: map[string]string{"A": "1", "B": "a#b", "C": "q", "D": "", "E": "e"},
		},
		{
			name: "no interpolation",
			src:  "A=${B}\nB='$A'\n",
			want: map[string]string{"A": "${B}", "B": "$A"},
		},
		{
			name: "key named export",
			src:  "export=1\n",
			want: map[string]string{"export": "1"},
		},
		{
			name: "bad lines",
			src: "A=1\n" + sentinel + "\n1BAD=" + sentinel + "\nB='" + sentinel + "\nC=\"" + sentinel + "\\\"\n" +
				"D='" + sentinel + "' trailing\nA=2\nE=\"\x00\"\n=" + sentinel + "\n",
			want: map[string]string{},
			wantErrs: []string{
				"f.env:2: expected KEY=VALUE",
				`f.env:3: invalid variable name before "=" (want [A-Za-z_][A-Za-z0-9_]*)`,
				"f.env:4: B: unterminated single quote (values are single-line)",
				"f.env:5: C: unterminated double quote (values are single-line)",
				"f.env:6: D: unexpected text after the closing quote",
				"f.env:7: A: set twice (first at line 1)",
				"f.env:8: E: the value must be UTF-8 text without NUL",
				`f.env:9: invalid variable name before "=" (want [A-Za-z_][A-Za-z0-9_]*)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, errs := parseEnv("f.env", []byte(tt.src))
			var gotErrs []string
			if len(errs) > 0 {
				gotErrs = strings.Split(errs.Error(), "\n")
			}
			if diff := cmp.Diff(tt.wantErrs, gotErrs); diff != "" {
				t.Errorf("errors mismatch (-want +got):\n%s", diff)
			}
			assertNoSentinel(t, fmt.Sprintf("%v %+v %#v", errs, errs, errs))
			if tt.wantErrs != nil {
				return
			}
			got := make(map[string]string, len(entries))
			for k, e := range entries {
				got[k] = e.value.Reveal()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("values mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadEnvFile(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "pingone.env", "OIDC_CLIENT_ID=client\nOIDC_CLIENT_SECRET="+sentinel+"\n")
	bad := writeFile(t, dir, "bad.env", "OIDC_CLIENT_ID=client\nnot a line "+sentinel+"\n")

	t.Run("good", func(t *testing.T) {
		env, err := LoadEnvFile(good)
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		if got := env["OIDC_CLIENT_SECRET"].Reveal(); got != sentinel {
			t.Errorf("OIDC_CLIENT_SECRET: got %q, want the sentinel", got)
		}
		assertNoSentinel(t, fmt.Sprintf("%v %+v %#v", env, env, env))
	})
	t.Run("bad line", func(t *testing.T) {
		env, err := LoadEnvFile(bad)
		var ce ConfigErrors
		if env != nil || !errors.As(err, &ce) {
			t.Fatalf("got %v, %v; want nil and ConfigErrors", env, err)
		}
		if got, want := err.Error(), bad+":2: expected KEY=VALUE"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := LoadEnvFile(filepath.Join(dir, "missing.env"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		_, err := LoadEnvFile(dir)
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("got %v, want a not a regular file error", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		_, err := LoadEnvFile(writeFile(t, dir, "big.env", "A="+strings.Repeat("x", maxRefSize)+"\n"))
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Errorf("got %v, want a size error", err)
		}
	})
	t.Run("fixture", func(t *testing.T) {
		env, err := LoadEnvFile("testdata/config/pingone.env")
		if err != nil {
			t.Fatalf("got error %v, want none", err)
		}
		if got, want := len(env), 7; got != want {
			t.Errorf("got %d keys, want %d", got, want)
		}
		if got, want := env["OIDC_SCOPES"].Reveal(), "openid profile email"; got != want {
			t.Errorf("OIDC_SCOPES: got %q, want %q", got, want)
		}
	})
}

package identity

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestLoadOrCreateSessionKeyCreates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "session.key")
	key, err := LoadOrCreateSessionKey(path)
	if err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if len(key) != SessionKeySize {
		t.Fatalf("got a %d-byte key, want %d", len(key), SessionKeySize)
	}
	if bytes.Equal(key, make([]byte, SessionKeySize)) {
		t.Errorf("got an all-zero key, want random bytes")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("got mode %#o, want 0600", got)
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, key) {
		t.Errorf("got file %x, want the returned key %x", onDisk, key)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("got %d files in the directory, want only the key (no temporary files left)", len(entries))
	}

	again, err := LoadOrCreateSessionKey(path)
	if err != nil {
		t.Fatalf("second call: got %v, want nil", err)
	}
	if !bytes.Equal(again, key) {
		t.Errorf("second call: got key %x, want the first key %x", again, key)
	}
	if _, err := NewSessionCodec(key); err != nil {
		t.Errorf("NewSessionCodec of a created key: got %v, want nil", err)
	}

	other, err := LoadOrCreateSessionKey(filepath.Join(dir, "other.key"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other, key) {
		t.Errorf("got the same key for two files, want independent random keys")
	}
}

func TestLoadOrCreateSessionKeyReadsExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "session.key")
	want := bytes.Repeat([]byte{7}, SessionKeySize)
	if err := os.WriteFile(path, want, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		got, err := LoadOrCreateSessionKey(path)
		if err != nil {
			t.Fatalf("mode %#o: got %v, want nil", mode, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("mode %#o: got %x, want %x", mode, got, want)
		}
	}
}

func TestLoadOrCreateSessionKeyRefuses(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"group readable", writeKeyFile(SessionKeySize, 0o640), "chmod 600"},
		{"world readable", writeKeyFile(SessionKeySize, 0o604), "has mode 0604"},
		{"group writable", writeKeyFile(SessionKeySize, 0o620), "open to group or others"},
		{"everyone", writeKeyFile(SessionKeySize, 0o666), "has mode 0666"},
		{"empty", writeKeyFile(0, 0o600), "is 0 bytes, want 32"},
		{"short", writeKeyFile(SessionKeySize-1, 0o600), "is 31 bytes, want 32"},
		{"long", writeKeyFile(SessionKeySize+1, 0o600), "is 33 bytes, want 32"},
		{"directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"missing directory", func(t *testing.T, path string) {
			if err := os.Remove(filepath.Dir(path)); err != nil {
				t.Fatal(err)
			}
		}, "cannot create session key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "session.key")
			if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, path)
			before, _ := os.ReadFile(path)
			key, err := LoadOrCreateSessionKey(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %x, %v; want an error containing %q", key, err, tt.want)
			}
			if !strings.Contains(err.Error(), "identity: ") {
				t.Errorf("got error %q, want the identity: prefix", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Errorf("got the file changed, want a refused file left alone")
			}
		})
	}
}

func writeKeyFile(size int, mode os.FileMode) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		if err := os.WriteFile(path, bytes.Repeat([]byte{1}, size), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadOrCreateSessionKeyConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "session.key")
	const n = 16
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateSessionKey(path) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: got %v, want nil", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Errorf("caller %d: got key %x, want %x (the one on disk for everyone)", i, keys[i], keys[0])
		}
	}
	onDisk, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, keys[0]) {
		t.Errorf("got %x on disk, want %x", onDisk, keys[0])
	}
}

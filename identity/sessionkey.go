package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateSessionKey returns the session key stored at path, creating
// it with SessionKeySize random bytes when there is no file yet.
//
// A new key is written to a temporary file in the same directory (created
// with O_EXCL and mode 0600), synced, and then hard-linked to path, which,
// unlike a rename, never replaces a file that is already there: when two
// processes create the key at once, one link wins and both use its key.
// The directory is synced afterwards, so the key survives a crash.
//
// An existing file is refused, with an error saying why and what to do, when
// it is not a regular file, when group or others have any permission on it
// (the key forges every session), or when it is not exactly SessionKeySize
// bytes. The directory must exist.
func LoadOrCreateSessionKey(path string) ([]byte, error) {
	key, err := readSessionKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = createSessionKey(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process created it between our read and our link.
		return readSessionKey(path)
	}
	return key, err
}

func readSessionKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity: cannot open session key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity: cannot stat session key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity: session key %s is not a regular file (mode %s)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("identity: session key %s has mode %#o, open to group or others; "+
			"anyone who reads it can forge sessions: chmod 600 %s", path, perm, path)
	}
	if fi.Size() != SessionKeySize {
		return nil, fmt.Errorf("identity: session key %s is %d bytes, want %d; "+
			"remove it to have a new key created (every open session ends)", path, fi.Size(), SessionKeySize)
	}
	// Read up to one byte more than the key, so that a file that changed
	// size since Stat is refused too.
	key, err := io.ReadAll(io.LimitReader(f, SessionKeySize+1))
	if err != nil {
		return nil, fmt.Errorf("identity: cannot read session key: %w", err)
	}
	if len(key) != SessionKeySize {
		return nil, fmt.Errorf("identity: session key %s changed size while being read", path)
	}
	return key, nil
}

func createSessionKey(path string) ([]byte, error) {
	key := make([]byte, SessionKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("identity: cannot generate session key: %w", err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*") // O_EXCL, mode 0600
	if err != nil {
		return nil, fmt.Errorf("identity: cannot create session key: %w", err)
	}
	// The temporary name is removed in every case: after the link the key
	// lives on under path.
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(key)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("identity: cannot write session key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		return nil, fmt.Errorf("identity: cannot create session key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("identity: cannot sync session key directory: %w", err)
	}
	return key, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

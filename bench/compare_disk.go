//go:build unix

package bench

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// MinFreeDisk is the free space a comparison run keeps on the disk that
// holds its folder: the audit spools of the gateways grow by GBs over a
// run (full 2 KiB arguments on every tools/call), so the runner checks
// before each measurement and stops, as a problem, rather than fill the
// disk.
const MinFreeDisk = 4 << 30

// freeDisk returns the bytes an unprivileged process may still write on
// the file system holding dir.
func freeDisk(dir string) (int64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(dir, &s); err != nil {
		return 0, fmt.Errorf("cannot read the free space under %s: %w", dir, err)
	}
	return int64(s.Bavail) * int64(s.Bsize), nil
}

// dirSize returns the bytes of the regular files under dir (0 when it is
// missing).
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			n += info.Size()
		}
		return nil
	})
	return n
}

// formatSize writes a byte count in MiB below 1 GiB, else in GiB.
func formatSize(n int64) string {
	if n < 1<<30 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

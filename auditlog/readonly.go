package auditlog

import (
	"fmt"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// OpenReadOnly opens the spool in dir for queries and Verify, writing
// nothing: Append on the Log it returns fails. The spool must exist.
//
// Pebble takes the directory's lock even for a read-only open (pebble.Open
// calls LockDirectory whatever Options.ReadOnly says, an exclusive fcntl
// lock), so this fails while a gateway holds the spool: ask its admin API
// then, as mcpgw audit does. An index that a crash left behind the
// records is not brought level (that writes): queries may miss the
// records it lacks until a gateway opens the spool.
func OpenReadOnly(dir string) (*Log, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("auditlog: cannot open spool in %s: %w", dir, err)
	}
	return open(dir, Options{readOnly: true, pebble: func(o *pebble.Options) {
		o.ReadOnly = true
		o.ErrorIfNotExists = true
	}}, vfs.Default)
}

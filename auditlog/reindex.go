package auditlog

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// reindexBatchBytes bounds one batch of catchUpIndex.
const reindexBatchBytes = 4 << 20

// catchUpIndex brings the index level with the records when Open finds
// them apart. The committer writes a batch's index entries, and
// "m/indexed", after the batch's records and without a sync of its own,
// so a crash can leave the index behind the records: the records it
// misses are indexed again from their JSON. In the rarer case of an index
// ahead of the records (the records' write-ahead log lost more than the
// index's), the seqs it names will be used again by other records, so the
// index is rebuilt from the start.
func (l *Log) catchUpIndex() error {
	indexed, err := getSeq(l.idb, keyIndexed)
	if err != nil {
		return err
	}
	head := l.headSeq
	if indexed == head {
		return nil
	}
	if indexed > head {
		l.log.Warn("the audit index is ahead of the records after a crash; rebuilding it", "indexed", indexed, "head", head)
		b := l.idb.NewBatch()
		err := b.DeleteRange([]byte{indexPrefix}, []byte{indexPrefix + 1}, nil)
		if err == nil {
			err = setSeq(b, keyIndexed, 0)
		}
		if err == nil {
			err = b.Commit(pebble.Sync)
		}
		b.Close()
		if err != nil {
			return fmt.Errorf("auditlog: cannot bring the index level with the records: %w", err)
		}
		indexed = 0
	}
	b := l.idb.NewBatch()
	var ix indexFields
	var werr error
	n, skipped := 0, 0
	err = scanJSON(l.db, indexed+1, func(seq uint64, line []byte) bool {
		var r Record
		if json.Unmarshal(line, &r) != nil {
			skipped++ // Verify reports it
			return true
		}
		ix.capture(&r)
		if werr = l.idx.add(b, seq, &ix); werr != nil {
			return false
		}
		n++
		if b.Len() >= reindexBatchBytes {
			if werr = setSeq(b, keyIndexed, seq); werr == nil {
				werr = b.Commit(pebble.NoSync)
			}
			b.Close()
			b = l.idb.NewBatch()
		}
		return werr == nil
	})
	if err == nil {
		err = werr
	}
	if err == nil {
		err = setSeq(b, keyIndexed, head)
	}
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	if err != nil {
		return fmt.Errorf("auditlog: cannot bring the index level with the records: %w", err)
	}
	l.log.Info("audit index caught up with the records", "records", n, "unreadable", skipped, "head", head)
	return nil
}

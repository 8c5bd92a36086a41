package auditlog

import (
	"encoding/binary"
	"encoding/json"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/mcpgw/mcpgw/internal/pebblelog"
)

// The encoder against its baseline, encoding/json.Marshal of the same
// record (which also allocates the result).

func BenchmarkAppendJSON(b *testing.B) {
	r := fullRecord()
	buf := AppendJSON(nil, r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], r)
	}
}

func BenchmarkAppendJSONBaselineEncodingJSON(b *testing.B) {
	r := fullRecord()
	buf, _ := json.Marshal(r)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

// Append on the real disk (b.TempDir), against the baseline of a bare
// Pebble Set of a record-sized value with the same durability.

func BenchmarkAppendSync1(b *testing.B)          { benchAppend(b, Sync, 1) }
func BenchmarkAppendSync64(b *testing.B)         { benchAppend(b, Sync, 64) }
func BenchmarkAppendAsync1(b *testing.B)         { benchAppend(b, Async, 1) }
func BenchmarkAppendAsync64(b *testing.B)        { benchAppend(b, Async, 64) }
func BenchmarkBaselinePebbleSync1(b *testing.B)  { benchPebble(b, pebble.Sync, 1) }
func BenchmarkBaselinePebbleSync64(b *testing.B) { benchPebble(b, pebble.Sync, 64) }
func BenchmarkBaselinePebbleNoSync1(b *testing.B) {
	benchPebble(b, pebble.NoSync, 1)
}

// runWriters runs op b.N times from writers goroutines and reports
// records/s.
func runWriters(b *testing.B, writers int, op func() error) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if writers == 1 {
		for range b.N {
			if err := op(); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((writers + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func benchAppend(b *testing.B, d Durability, writers int) {
	l, err := Open(b.TempDir(), Options{Durability: d, NodeID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	rec := fullRecord()
	b.SetBytes(int64(len(AppendJSON(nil, rec))))
	runWriters(b, writers, func() error {
		r := *rec // Append sets r.Seq and the hashes: one record per writer call
		_, err := l.Append(&r)
		return err
	})
	b.StopTimer()
	if st := l.Stats(); st.Batches > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Batches), "records/batch")
	}
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
}

func benchPebble(b *testing.B, opts *pebble.WriteOptions, writers int) {
	db, err := pebble.Open(b.TempDir(), &pebble.Options{Logger: pebblelog.New(discard(), "auditlog")})
	if err != nil {
		b.Fatal(err)
	}
	value := AppendJSON(nil, fullRecord())
	b.SetBytes(int64(len(value)))
	var seq atomic.Uint64
	runWriters(b, writers, func() error {
		var k [9]byte
		k[0] = recordPrefix
		binary.BigEndian.PutUint64(k[1:], seq.Add(1))
		return db.Set(k[:], value, opts)
	})
	b.StopTimer()
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

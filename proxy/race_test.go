//go:build race

package proxy

// raceEnabled: the race detector makes sync.Pool drop items at random,
// so allocation gates on pooled paths do not hold.
const raceEnabled = true

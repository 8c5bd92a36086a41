//go:build race

package bench

// raceEnabled: the race detector makes sync.Pool drop items at random
// (runtime: "race: randomly drop objects in Pool.Put"), so fasthttp's pooled
// values are allocated again now and then.
const raceEnabled = true

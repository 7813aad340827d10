//go:build race

package crl

// raceEnabled: the race detector slows the 1M-entry tests ~10x; they skip
// under it (the benchmarks and `go test` without -race cover them).
const raceEnabled = true

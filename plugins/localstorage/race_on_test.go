//go:build race

package localstorage

// raceEnabled: the race detector's instrumentation allocates, so allocation
// counts are compared only without it.
const raceEnabled = true

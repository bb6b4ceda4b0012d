//go:build !race

package localstorage

const raceEnabled = false

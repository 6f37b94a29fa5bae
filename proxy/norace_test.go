//go:build !race

package proxy

// raceNote qualifies memory figures taken under the race detector.
func raceNote() string { return "" }

//go:build !race

package reliability

// raceEnabled: the tests run under the race detector, and so does the
// orderhub they build.
const raceEnabled = false

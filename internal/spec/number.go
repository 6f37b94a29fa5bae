package spec

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
)

// MinMemory is the smallest memory limit a container can start with: the
// OCI runtimes refuse less than 6 MiB.
const MinMemory = 6 << 20

// Size is a number of bytes, as podman run --memory takes it.
type Size int64

// ParseSize parses a memory size with Podman's own parser (go-units'
// RAMInBytes): a number of bytes with an optional k, m, g, t or p suffix
// in powers of 1024, and an optional "i" and "b" after it ("512m",
// "1.5g", "512MiB", "1t"). It refuses sizes below MinMemory, which no
// container starts with.
func ParseSize(s string) (Size, error) {
	n, err := units.RAMInBytes(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		return 0, errors.New("not a size: use a size like 512m, 2g or 512MiB")
	}
	if n < MinMemory {
		return 0, errors.New("below the minimum of 6m a container starts with: use 6m or more")
	}
	return Size(n), nil
}

// String formats the size as ParseSize reads it, in the largest unit that
// divides it: "512m", "2g", or a number of bytes.
func (s Size) String() string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if int64(s) >= u.size && int64(s)%u.size == 0 {
			return strconv.FormatInt(int64(s)/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// ParseCPUs parses a CPU limit, as podman run --cpus: a positive number of
// CPUs ("0.5", "2").
func ParseCPUs(s string) (float64, error) {
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || math.IsInf(n, 0) || math.IsNaN(n) || strings.ContainsAny(s, "xXpP_") {
		return 0, errors.New("not a number of CPUs: use a positive number like 0.5 or 2")
	}
	return n, nil
}

// ParseDuration parses one of lazypod's durations: a Go duration ("90s",
// "5m", "1h30m") or a whole number of seconds ("300"). Negative durations
// are refused.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseUint(s, 10, 32)
		if nerr != nil {
			return 0, errors.New("not a duration: use a duration like 90s, 5m or 1h30m, or a number of seconds (systemd's 5min is not understood)")
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, errors.New("negative duration: use 0 or more, e.g. 30s")
	}
	return d, nil
}

// ParsePositiveDuration is ParseDuration for durations that must be more
// than zero.
func ParsePositiveDuration(s string) (time.Duration, error) {
	d, err := ParseDuration(s)
	if err == nil && d == 0 {
		err = errors.New("must be more than 0, e.g. 30s")
	}
	return d, err
}

// FormatDuration formats d as ParseDuration reads it, shortly: "5m"
// rather than "5m0s".
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// ParseBool parses a boolean as systemd's parse_boolean does: 1, yes, y,
// true, t, on, and 0, no, n, false, f, off, in any case.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "y", "true", "t", "on":
		return true, nil
	case "0", "no", "n", "false", "f", "off":
		return false, nil
	}
	return false, errors.New("not a boolean: use yes or no (also true/false, on/off, 1/0)")
}

// ParseMaxConnections parses lazypod serve's --max-connections: a number
// from 1 up, "auto" (0: sized to the open-file limit), or -1 for no cap.
func ParseMaxConnections(s string) (int, error) {
	if strings.ToLower(s) == "auto" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n == 0 || n < -1 {
		return 0, errors.New("want a number of connections from 1 up, auto, or -1 for no cap")
	}
	return n, nil
}

// LogLevels are the valid log levels, as errors list them.
const logLevels = `valid levels are "debug", "info", "warn", "error"`

// ParseLogLevel parses a log level: debug, info, warn or error, in any
// case. It returns the level in lower case.
func ParseLogLevel(s string) (string, error) {
	switch l := strings.ToLower(s); l {
	case "debug", "info", "warn", "error":
		return l, nil
	}
	return "", errors.New(logLevels)
}

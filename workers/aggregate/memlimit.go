package aggregate

import (
	"fmt"
	"strconv"
	"strings"
)

// memoryUnits are the size units DuckDB's memory_limit takes: decimal
// (KB = 1000) and binary (KiB = 1024), as DuckDB reads them.
var memoryUnits = map[string]float64{
	"": 1, "b": 1, "byte": 1, "bytes": 1,
	"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}

// ParseMemoryLimit reads a memory limit such as "512MB", "2 GiB" or
// "1.5GB" as bytes.
func ParseMemoryLimit(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	n, err := strconv.ParseFloat(t[:i], 64)
	unit, ok := memoryUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if err != nil || !ok || n <= 0 {
		return 0, fmt.Errorf("%w: memory limit %q: want a size such as 512MB or 2GiB", ErrInvalidConfig, s)
	}
	return int64(n * unit), nil
}

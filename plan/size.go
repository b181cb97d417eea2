package plan

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var sizeUnits = map[string]float64{
	"b":   1,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// ParseSize parses a size such as "512MiB", "8GiB", "1.5GB" or "1024"
// (bytes) into a positive number of bytes. Units are case-insensitive;
// "k", "m" and "g" alone are refused as ambiguous.
func ParseSize(s string) (int64, error) {
	const accepted = `; sizes are a number of bytes or a number with a unit such as "512MiB", "8GiB" or "2GB"`
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("size %q does not start with a number%s", s, accepted)
	}
	mult := 1.0
	if unit != "" {
		m, ok := sizeUnits[unit]
		if !ok {
			return 0, fmt.Errorf("size %q has unknown unit %q%s", s, t[i:], accepted)
		}
		mult = m
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number%s", s, num, accepted)
	}
	v := f * mult
	if v < 1 || math.IsInf(v, 0) || math.IsNaN(v) || v > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is out of range%s", s, accepted)
	}
	return int64(v), nil
}

// FormatSize renders bytes with the largest binary unit that divides them.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		mult int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

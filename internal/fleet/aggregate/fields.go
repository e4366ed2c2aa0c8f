package aggregate

import (
	"math"
	"time"
)

// integer reads m[key] as an int64; JSON decoding gives int64, float64 or,
// for maps built in Go, int and int32.
func integer(m map[string]any, key string) (int64, bool) {
	switch v := m[key].(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case int32:
		return int64(v), true
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return 0, false
		}
		return int64(v), true
	case float32:
		return int64(v), true
	}
	return 0, false
}

// normalize returns v with every whole float turned into int64, so that
// values decoded differently compare equal.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<63 {
			return int64(x)
		}
		return x
	case float32, int, int32:
		n, _ := integer(map[string]any{"v": x}, "v")
		return n
	}
	return v
}

// objects returns the maps in a list (status.conditions,
// loadBalancer.ingress), skipping anything else.
func objects(v any) []map[string]any {
	switch l := v.(type) {
	case []map[string]any:
		return l
	case []any:
		var out []map[string]any
		for _, e := range l {
			if m, ok := e.(map[string]any); ok {
				out = append(out, m)
			}
		}
		return out
	}
	return nil
}

// nested returns m[k1][k2]… as a map, nil when any step is missing.
func nested(m map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		m, _ = m[k].(map[string]any)
	}
	return m
}

// later reports whether timestamp a is after b; RFC 3339 strings are
// compared as times, anything else as text.
func later(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339, a)
	tb, errB := time.Parse(time.RFC3339, b)
	if errA == nil && errB == nil {
		return ta.After(tb)
	}
	return a > b
}

// condition returns the condition of type t in status, nil when absent.
func condition(status map[string]any, t string) map[string]any {
	for _, c := range objects(status["conditions"]) {
		if c["type"] == t {
			return c
		}
	}
	return nil
}

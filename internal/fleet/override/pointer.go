package override

import (
	"errors"
	"strconv"
	"strings"
)

// parsePointer splits an RFC 6901 JSON pointer into its unescaped tokens.
func parsePointer(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("a JSON pointer starts with /")
	}
	tokens := strings.Split(p[1:], "/")
	for i, t := range tokens {
		tokens[i] = strings.ReplaceAll(strings.ReplaceAll(t, "~1", "/"), "~0", "~")
	}
	return tokens, nil
}

// resolve walks tokens through doc and returns the object or array that
// holds the last one, and that token; the value must exist.
func resolve(doc map[string]any, tokens []string) (parent any, key string, err error) {
	var cur any = doc
	for i, t := range tokens {
		if i == len(tokens)-1 {
			if get(cur, t) == nil {
				return nil, "", errors.New("not found")
			}
			return cur, t, nil
		}
		if cur = get(cur, t); cur == nil {
			return nil, "", errors.New("not found")
		}
	}
	return nil, "", errors.New("not found")
}

// get is container[key] for an object or an array, nil when absent.
func get(container any, key string) any {
	switch c := container.(type) {
	case map[string]any:
		return c[key]
	case []any:
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(c) {
			return nil
		}
		return c[i]
	}
	return nil
}

// set stores v at container[key], which resolve found.
func set(container any, key string, v any) {
	switch c := container.(type) {
	case map[string]any:
		c[key] = v
	case []any:
		i, _ := strconv.Atoi(key)
		c[i] = v
	}
}

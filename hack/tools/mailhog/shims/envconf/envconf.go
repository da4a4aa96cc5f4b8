// Package envconf is a minimal stand-in for github.com/ian-kent/envconf.
package envconf

import (
	"os"
	"strconv"
)

// FromEnvP returns the environment variable converted to the type of def,
// or def when the variable is unset or cannot be converted.
func FromEnvP(name string, def interface{}) interface{} {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	switch def.(type) {
	case bool:
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		return def
	case int:
		if i, err := strconv.Atoi(v); err == nil {
			return i
		}
		return def
	case float64:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
		return def
	default:
		return v
	}
}

// Package metricsreg registers Prometheus collectors so that a component
// made again in the same process (an in-process restart, a test's second
// server) counts on with the collectors registered the first time, instead
// of failing on AlreadyRegisteredError. It imports no skiff package.
package metricsreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg, or returns the collector of the same type
// registered before it.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if old, ok := are.ExistingCollector.(C); ok {
			return old, nil
		}
	}
	return c, err
}

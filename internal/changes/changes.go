// Package changes turns informer events into one coalescing signal, for the
// control loops that rebuild their whole state from listers after any change
// (STYLE habit 10: build new, swap atomically): the cluster DNS zone, the
// ingress routing table, NetworkPolicy rules, the pod network's routes. It
// owns nothing else: the loop, its listers and its resync are the caller's.
package changes

import "k8s.io/client-go/tools/cache"

// Signal is a pending-change flag: any number of events between two reads
// of C fold into one. The zero value is not usable; make one with New.
type Signal struct {
	c chan struct{} // capacity 1; never closed
}

// New returns a Signal with no change pending.
func New() *Signal { return &Signal{c: make(chan struct{}, 1)} }

// Notify marks a change as pending; it never blocks.
func (s *Signal) Notify() {
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// C receives once per batch of changes.
func (s *Signal) C() <-chan struct{} { return s.c }

// Watch makes every add, update and delete of the informers notify s.
func (s *Signal) Watch(informers ...cache.SharedIndexInformer) error {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.Notify() },
		UpdateFunc: func(any, any) { s.Notify() },
		DeleteFunc: func(any) { s.Notify() },
	}
	for _, inf := range informers {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	return nil
}

package backends

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// DefaultReadyTimeout bounds the wait for a bottle's sidecars to listen.
const DefaultReadyTimeout = 30 * time.Second

// ReadyTimeout is BOTTLE_READY_TIMEOUT (a Go duration such as "2m", for
// slow hosts) or DefaultReadyTimeout.
func ReadyTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("BOTTLE_READY_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return DefaultReadyTimeout
}

// TeardownTimeout bounds a whole teardown.
var TeardownTimeout = 60 * time.Second

// Teardown undoes a launch. Each step belongs to a layer: layers are undone
// from the highest to the lowest, and the steps of one layer all at once.
// A backend adds each step as soon as the thing it undoes exists, so that
// a failure at any point undoes exactly what was made; steps ignore what is
// already gone.
type Teardown struct {
	mu     sync.Mutex
	layers map[int][]func(context.Context) error
}

// Add registers a step in a layer.
func (t *Teardown) Add(layer int, f func(context.Context) error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.layers == nil {
		t.layers = map[int][]func(context.Context) error{}
	}
	t.layers[layer] = append(t.layers[layer], f)
}

// Run undoes everything, with its own context bounded by TeardownTimeout
// (the launch's context is usually cancelled by then), and returns every
// step's error.
func (t *Teardown) Run() error {
	ctx, cancel := context.WithTimeout(context.Background(), TeardownTimeout)
	defer cancel()
	t.mu.Lock()
	top := -1
	for l := range t.layers {
		top = max(top, l)
	}
	t.mu.Unlock()
	var errs []error
	for l := top; l >= 0; l-- {
		t.mu.Lock()
		steps := t.layers[l]
		t.mu.Unlock()
		res := make([]error, len(steps))
		var wg sync.WaitGroup
		for i, f := range steps {
			wg.Add(1)
			go func() { defer wg.Done(); res[i] = f(ctx) }()
		}
		wg.Wait()
		errs = append(errs, res...)
	}
	return errors.Join(errs...)
}

package crashtest

import (
	"fmt"
	"testing"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/embedded"
)

// Backend is a broker that outlives the processes of a crash test: the
// parent starts it, and the parent and every child open their own client
// on its address.
type Backend interface {
	// Name names the backend in the child's environment; the child finds
	// the backend by it (see backendNamed).
	Name() string
	// Start makes a new, empty broker for t and returns its address. The
	// broker lives until t ends.
	Start(t *testing.T) (addr string)
	// Open opens a client of the broker at addr; the caller closes it. The
	// parent opens one only while no child runs: an embedded broker is
	// open in one process at a time.
	Open(addr string) (broker.Broker, error)
}

// Embedded is the embedded broker (broker/embedded) in a directory, its
// address. Its clients run no background cleanup (retention and
// compaction), so that what a check reads is what the app wrote.
var Embedded Backend = embeddedBackend{}

type embeddedBackend struct{}

func (embeddedBackend) Name() string { return "embedded" }

func (embeddedBackend) Start(t *testing.T) string { return t.TempDir() }

func (embeddedBackend) Open(dir string) (broker.Broker, error) {
	return embedded.Open(dir, embedded.WithCleanupInterval(-1))
}

// backendNamed returns the backend named name, for a child.
func backendNamed(name string) (Backend, error) {
	switch name {
	case Embedded.Name():
		return Embedded, nil
	case Kafka.Name():
		return Kafka, nil
	}
	return nil, fmt.Errorf("crashtest: unknown backend %q", name)
}

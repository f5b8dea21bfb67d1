package embedded

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/brokertest"
)

func TestConformance(t *testing.T) {
	modes := []struct {
		name string
		opts []Option
	}{
		{"sync", nil},
		{"interval", []Option{WithSyncInterval(10 * time.Millisecond)}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			brokertest.Run(t, func(t *testing.T) broker.Broker {
				b, err := Open(t.TempDir(), m.opts...)
				require.NoError(t, err)
				t.Cleanup(func() { require.NoError(t, b.Close()) })
				return b
			})
		})
	}
}

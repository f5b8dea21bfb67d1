package kafka_test

import (
	"testing"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/broker/brokertest"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker {
		return newBroker(t, newCluster(t))
	})
}

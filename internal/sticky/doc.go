// Package sticky deals the partition numbers of a consumer group to its
// members, balanced and sticky: the rule both brokers use when no member's
// broker.JoinOptions.Balance places the partitions (broker/embedded's
// coordinator and broker/kafka's group balancer), kept in one place so
// that the two behave alike.
//
// # The rule
//
// Each of m members gets n/m numbers or one more. A member first keeps
// the numbers it owned in the previous generation, up to its share (one
// more while some member may still get one more, in member order); the
// numbers left go, in increasing order, to the member below its share
// with the fewest (the earliest on ties), so that with nothing owned the
// numbers go round-robin. A member joining or leaving moves only the
// numbers balance needs. See [Deal].
package sticky

// Package timerscript is a test script of one-shot stream-time timers
// (topology.TaskEnv.StreamTimer) shared by the runtime's and streamtest's tests,
// so that both environments are held to the same expected output.
package timerscript

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/internal/topology"
)

// proc drives a one-shot stream-time timer (topology.TaskEnv.StreamTimer)
// from the values of its records: "set:<due>" arms it, "then:<due>" makes
// its next firing arm it again at due, "cancel" cancels it. It also has a
// stream-time punctuation every 10 ms, registered first. Each firing
// sends "timer@<ts>" or "tick@<ts>" to "out".
type proc struct {
	env    topology.TaskEnv
	set    func(int64)
	cancel func()
	then   int64
}

// NewProc is the topology.SubTopology.NewTask of the script: a
// processor reading "in" and sending to "out".
func NewProc(env topology.TaskEnv) (topology.Processor, error) {
	p := &proc{env: env}
	if _, err := env.Schedule(10*time.Millisecond, topology.StreamTimePunctuation, func(ctx context.Context, ts int64) error {
		return p.send(ctx, fmt.Sprint("tick@", ts))
	}); err != nil {
		return nil, err
	}
	var err error
	p.set, p.cancel, err = env.StreamTimer(func(ctx context.Context, ts int64) error {
		if p.then != 0 {
			p.set(p.then)
			p.then = 0
		}
		return p.send(ctx, fmt.Sprint("timer@", ts))
	})
	return p, err
}

func (p *proc) send(ctx context.Context, v string) error {
	return p.env.Send(ctx, broker.Record{Topic: "out", Partition: 0, Value: []byte(v)})
}

func (p *proc) Process(_ context.Context, rec *broker.Record) error {
	for cmd := range strings.FieldsSeq(string(rec.Value)) {
		name, arg, _ := strings.Cut(cmd, ":")
		n, _ := strconv.ParseInt(arg, 10, 64)
		switch name {
		case "set":
			p.set(n)
		case "then":
			p.then = n
		case "cancel":
			p.cancel()
		}
	}
	return nil
}

// Timestamp, Begin and Skip: the broker timestamp is the event time, and
// the script keeps no state a failed record could leave behind.
func (p *proc) Timestamp(*broker.Record) (int64, bool) { return 0, false }
func (p *proc) Begin()                                 {}
func (p *proc) Skip()                                  {}
func (p *proc) Flush(context.Context) error            { return nil }
func (p *proc) Close() error                           { return nil }

// Steps is a script of records (timestamp, commands) and the values
// the punctuations send after each.
var Steps = []struct {
	TS   int64    // the record's timestamp, ms
	Cmds string   // its value: the commands
	Want []string // what the punctuations send after it
}{
	{5, "set:20", []string{"tick@5"}},         // armed at 20; the tick is due at 0
	{15, "", []string{"tick@15"}},             // the timer is not due yet
	{20, "", []string{"tick@20", "timer@20"}}, // same due time: registration order
	{25, "", nil},                               // fired once: disarmed
	{25, "set:25", []string{"timer@25"}},        // due at stream time: fires after the record
	{26, "set:32 then:38", nil},                 // armed at 32, re-armed at 38 by its firing
	{35, "", []string{"tick@35", "timer@35"}},   // due at 30 and 32: due-time order
	{45, "", []string{"timer@45", "tick@45"}},   // due at 38 and 40: the timer first
	{46, "set:60 set:70", nil},                  // set replaces the due time
	{65, "", []string{"tick@65"}},               // not at 60
	{70, "", []string{"tick@70", "timer@70"}},   // at 70
	{71, "set:80 set:9223372036854775807", nil}, // math.MaxInt64 disarms
	{85, "", []string{"tick@85"}},               // disarmed
	{86, "set:90 cancel set:95", nil},           // canceled for good
	{100, "", []string{"tick@100"}},             // neither at 90 nor at 95
	{101, "set:101", nil},                       // set after cancel: no-op
	{110, "", []string{"tick@110"}},             // (a last output to wait for)
}

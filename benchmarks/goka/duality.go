package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/duality-streams/duality"
	"github.com/duality-streams/duality/broker"
	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/table"
	"github.com/duality-streams/duality/window"
)

// dualityApp is the app id of workload w; its group and its changelogs
// ("<app>-<store>-changelog") are named after it.
func dualityApp(w string) string { return "duality-" + strings.ToLower(w) }

func dualityChangelog(w string) string { return dualityApp(w) + "-" + storeName + "-changelog" }

// windowRetention keeps every window of W5 in the store, so the final
// table can be read back whole (the default retention, size + grace,
// drops windows a minute after they close).
const windowRetention = 24 * time.Hour

// dualityTopology is workload w as a Duality topology, with its default
// codecs: string keys, int64 values (codec.Int64, as goka's side). For W5
// it also returns the table of windowed counts, to query.
func dualityTopology(w string) (*stream.Topology, table.Table[window.Windowed[string], int64], error) {
	var windowed table.Table[window.Windowed[string], int64]
	sb := stream.NewBuilder()
	switch w {
	case W1:
		in := stream.From(sb, inputTopic, codec.String(), codec.Int64())
		kept := in.Filter(func(_ string, v int64) bool { return v%3 != 0 })
		stream.MapValues(kept, func(v int64) int64 { return 2*v + 1 }).To(outputTopic)
	case W2, W3:
		in := stream.From(sb, inputTopic, codec.String(), codec.Int64())
		table.Count(stream.GroupByKey(in), storeName)
	case W4:
		in := stream.From(sb, inputTopic, codec.String(), codec.Int64())
		t := table.From(sb, tableTopic, codec.String(), codec.Int64(), storeName)
		table.Join(in, t, func(_ string, v, tv int64) int64 { return 1000*v + tv }).To(outputTopic)
	case W5:
		in := stream.From(sb, inputTopic, codec.String(), codec.Int64())
		windowed = window.Count(stream.GroupByKey(in), window.Tumbling(windowSize, window.NoGrace).WithRetention(windowRetention), storeName)
	default:
		return nil, windowed, fmt.Errorf("unknown workload %q", w)
	}
	topo, err := sb.Build()
	return topo, windowed, err
}

// runDuality runs workload w on Duality over c (input written), with the
// processing guarantee guarantee ("": exactly-once, the default; "alo":
// at-least-once), from New
// until the work is done: every input offset committed (with the output
// and changelog records of the input, which the runtime commits with
// them), or for W3 every changelog partition restored. It returns the
// measured run and the checksum of the result: the output topic (W1,
// W4), the newest value per key of the changelog (W2), the store read
// through duality.Query (W3: the restored table) or, once the app
// stopped, duality.QueryWindows (W5: every window's count, see
// windowChecksum).
func runDuality(ctx context.Context, c *cluster, w string, s sizes, dir, guarantee string) (measured, checksum, error) {
	topo, _, err := dualityTopology(w)
	if err != nil {
		return measured{}, checksum{}, err
	}
	app := dualityApp(w)
	restored := make(chan struct{})
	var partsDone, records atomic.Int64
	var opts []duality.Option
	if stateKind == "disk" { // else the runtime's in-memory stores
		opts = append(opts, duality.StateDir(filepath.Join(dir, "state")))
	}
	switch guarantee {
	case "": // exactly-once, the default
	case "alo":
		opts = append(opts, duality.ProcessingGuarantee(duality.AtLeastOnce))
	default:
		return measured{}, checksum{}, fmt.Errorf("unknown guarantee %q: want alo or none (exactly-once)", guarantee)
	}
	if w == W3 {
		opts = append(opts, duality.OnRestore(func(p duality.RestoreProgress) {
			if p.Done {
				records.Add(p.Restored)
				if partsDone.Add(1) == int64(s.Partitions) {
					close(restored)
				}
			}
		}))
	}
	// What the group's committed offsets reach once the input is done.
	want := map[string]int64{inputTopic: int64(s.Records)}
	if w == W4 {
		want[tableTopic] = int64(s.Keys)
	}
	if w == W3 {
		want = nil
	}
	var tps []broker.TopicPartition
	for t := range want {
		for p := range int32(s.Partitions) {
			tps = append(tps, broker.TopicPartition{Topic: t, Partition: p})
		}
	}

	m := startMeasure()
	a, err := duality.New(app, topo, c.b, opts...)
	if err != nil {
		return measured{}, checksum{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(runCtx) }()
	if w == W3 {
		select {
		case <-restored:
		case err := <-stopped:
			return measured{}, checksum{}, fmt.Errorf("stopped during the restoration: %v", err)
		}
	} else {
		err = waitUntil(ctx, stopped, func() (bool, error) {
			got, err := c.b.FetchOffsets(ctx, app, tps)
			if err != nil {
				return false, err
			}
			sums := map[string]int64{}
			for tp, off := range got {
				sums[tp.Topic] += off
			}
			for t, n := range want {
				if sums[t] != n {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			stop()
			return measured{}, checksum{}, errors.Join(err, <-stopped)
		}
	}
	run := m.stop()

	var sum checksum
	switch w {
	case W3:
		if got := records.Load(); got != int64(s.RestoreKeys) {
			err = fmt.Errorf("restored %d records, want %d", got, s.RestoreKeys)
			break
		}
		sum, err = queryChecksum(ctx, a)
	}
	stop()
	if rerr := <-stopped; rerr != nil {
		return measured{}, checksum{}, errors.Join(err, fmt.Errorf("run: %w", rerr))
	}
	if err != nil {
		return measured{}, checksum{}, err
	}
	switch w {
	case W1, W4:
		sum, err = readChecksum(ctx, c.b, outputTopic, streamChecksum)
	case W2:
		sum, err = readChecksum(ctx, c.b, dualityChangelog(w), tableChecksum)
	case W5:
		sum, err = windowChecksum(ctx, c, app, s, opts...)
	}
	return run, sum, err
}

// queryChecksum is the checksum of the store "counts" of a running app,
// read through its query API.
func queryChecksum(ctx context.Context, a *duality.App) (checksum, error) {
	st, err := duality.Query(a, storeName, codec.String(), codec.Int64())
	if err != nil {
		return checksum{}, err
	}
	return retryQuery(ctx, func() (checksum, error) {
		all, errf := st.All(ctx)
		var sum checksum
		for k, v := range all {
			sum.add([]byte(k), int64Bytes(v))
		}
		return sum, errf()
	})
}

// retryQuery calls f until it returns anything but a retryable query
// error (the store not open yet), for at most 10 s.
func retryQuery(ctx context.Context, f func() (checksum, error)) (checksum, error) {
	for range 200 {
		sum, err := f()
		if err == nil || !duality.IsRetryableQueryError(err) {
			return sum, err
		}
		select { // polling: the app signals no store's opening
		case <-ctx.Done():
			return checksum{}, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return checksum{}, errors.New("query: the store did not open within 10 s")
}

// windowChecksum is the checksum of the windowed counts of W5, every
// window of the input's time span, the windowed keys encoded as
// window.WindowedCodec does. It reads them through the query API of a
// second app on the stopped app's state directory: a query of the
// running app right after its offsets are committed may miss that
// commit's store writes (seen: a third of the last windows' counts
// short), while the stopped app flushed everything it committed.
func windowChecksum(ctx context.Context, c *cluster, app string, s sizes, opts ...duality.Option) (checksum, error) {
	topo, t, err := dualityTopology(W5)
	if err != nil {
		return checksum{}, err
	}
	a, err := duality.New(app, topo, c.b, opts...)
	if err != nil {
		return checksum{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- a.Run(runCtx) }()
	st, err := duality.QueryWindows(a, t)
	if err != nil {
		stop()
		return checksum{}, errors.Join(err, <-stopped)
	}
	wc := window.WindowedCodec(codec.String())
	sum, err := retryQuery(ctx, func() (checksum, error) {
		all, errf := st.FetchAll(ctx, base.Add(-windowSize), base.Add(time.Duration(s.Records)*time.Millisecond+windowSize))
		var sum checksum
		for wk, n := range all {
			k, err := wc.Append(nil, wk)
			if err != nil {
				return checksum{}, err
			}
			sum.add(k, int64Bytes(n))
		}
		return sum, errf()
	})
	stop()
	return sum, errors.Join(err, <-stopped)
}

// readChecksum reads topic whole and returns its checksum under f.
func readChecksum(ctx context.Context, b broker.Broker, topic string, f func([]broker.Record) checksum) (checksum, error) {
	recs, err := broker.ReadAll(ctx, b, topic)
	if err != nil {
		return checksum{}, fmt.Errorf("read %s: %w", topic, err)
	}
	return f(recs), nil
}

package stream_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// heartbeat counts clicks per user in the store "clicks" and, every
// minute of wall-clock time, forwards the users seen since the last
// report with their counts, then clears the store.
type heartbeat struct {
	pc     stream.ProcessorContext[string, int64]
	clicks stream.BytesStore
}

func (h *heartbeat) Init(pc stream.ProcessorContext[string, int64]) (err error) {
	h.pc = pc
	if h.clicks, err = pc.Store("clicks"); err != nil {
		return err
	}
	_, err = pc.Schedule(time.Minute, stream.PunctuateWallClock, h.report)
	return err
}

func (h *heartbeat) Process(_ context.Context, rec stream.Record[string, string]) error {
	n := int64(0)
	if v, ok, err := h.clicks.Get([]byte(rec.Key)); err != nil {
		return err
	} else if ok {
		n, _ = strconv.ParseInt(string(v), 10, 64)
	}
	return h.clicks.Put([]byte(rec.Key), strconv.AppendInt(nil, n+1, 10))
}

// report runs between records; its output and store writes are committed
// like a record's.
func (h *heartbeat) report(ctx context.Context, now time.Time) error {
	type row struct {
		user string
		n    int64
	}
	var rows []row
	all, errf := h.clicks.Range(nil, nil)
	for k, v := range all {
		n, _ := strconv.ParseInt(string(v), 10, 64)
		rows = append(rows, row{string(k), n})
	}
	if err := errf(); err != nil {
		return err
	}
	for _, r := range rows {
		if err := h.pc.Forward(ctx, stream.Record[string, int64]{Key: r.user, Value: r.n}); err != nil {
			return err
		}
		if err := h.clicks.Delete([]byte(r.user)); err != nil {
			return err
		}
	}
	return nil
}

func (h *heartbeat) Close() error { return nil }

// A processor reports per-user click counts every minute of wall-clock
// time with a punctuation; the test driver moves its clock explicitly.
func ExampleProcessorContext_schedule() {
	b := stream.NewBuilder()
	clicks := stream.From(b, "clicks", codec.String(), codec.String())
	stream.Process(clicks, func() stream.Processor[string, string, string, int64] { return &heartbeat{} },
		stream.WithStores(stream.BytesStoreSpec("clicks"))).
		To("clicks-per-minute")
	topo, err := b.Build()
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := streamtest.New(topo)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	ctx := context.Background()
	in := streamtest.Input(d, "clicks", codec.String(), codec.String())
	out := streamtest.Output(d, "clicks-per-minute", codec.String(), codec.Int64())
	for _, user := range []string{"ada", "bob", "ada"} {
		if err := in.Pipe(ctx, user, "/home"); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range 2 {
		if err := d.AdvanceWallClock(ctx, time.Minute); err != nil {
			fmt.Println(err)
			return
		}
		kvs, err := out.ReadKeyValues()
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(d.Now().Format(time.TimeOnly), kvs)
		if err := in.Pipe(ctx, "cy", "/docs"); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// 00:01:00 [{ada 2} {bob 1}]
	// 00:02:00 [{cy 1}]
}

package stream_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/stream"
	"github.com/duality-streams/duality/streamtest"
)

// TestTypedStore drives a typed store with commands piped to "ops":
// "put k v", "del k", "get k", "range [from|-] [to|-]", "junk k" (writes a
// value that does not decode, through the bytes view of the same store).
func TestTypedStore(t *testing.T) {
	scores := stream.NewKeyValueStoreSpec("scores", codec.String(), codec.Int64())
	b := stream.NewBuilder()
	stream.Process(stream.From(b, "ops", str, str), func() stream.Processor[string, string, string, string] {
		var st *stream.KeyValueStore[string, int64]
		var raw stream.BytesStore
		return &funcProcessor[string, string, string, string]{
			init: func(pc stream.ProcessorContext[string, string]) error {
				var err error
				if st, err = scores.Open(pc); err != nil {
					return err
				}
				raw, err = pc.Store("scores")
				return err
			},
			process: func(ctx context.Context, pc stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
				f := strings.Fields(r.Value)
				out := ""
				switch f[0] {
				case "put":
					var n int64
					fmt.Sscan(f[2], &n)
					if err := st.Put(f[1], n); err != nil {
						return err
					}
				case "del":
					if err := st.Delete(f[1]); err != nil {
						return err
					}
				case "get":
					n, ok, err := st.Get(f[1])
					if err != nil {
						return err
					}
					out = fmt.Sprint(n, ok)
				case "range":
					var from, to *string
					if f[1] != "-" {
						from = &f[1]
					}
					if f[2] != "-" {
						to = &f[2]
					}
					seq, errf := st.Range(from, to)
					var parts []string
					for k, n := range seq {
						parts = append(parts, fmt.Sprintf("%s=%d", k, n))
					}
					if err := errf(); err != nil {
						return err
					}
					out = strings.Join(parts, " ")
				case "junk":
					if err := raw.Put([]byte(f[1]), []byte("x")); err != nil {
						return err
					}
				}
				return pc.Forward(ctx, stream.Record[string, string]{Key: r.Key, Value: out})
			},
		}
	}, stream.WithStores(scores)).To("results")
	d := newDriver(t, b, streamtest.AppID("app"))
	ctx := t.Context()
	in := streamtest.Input(d, "ops", str, str)
	out := streamtest.Output(d, "results", str, str)
	run := func(op string) (string, error) {
		if err := in.Pipe(ctx, "k", op); err != nil {
			return "", err
		}
		vals, err := out.ReadValues()
		require.NoError(t, err)
		require.Len(t, vals, 1)
		return vals[0], nil
	}
	for _, tc := range []struct{ op, want string }{
		{"put carol 3", ""},
		{"put alice 1", ""},
		{"put bob 2", ""},
		{"put bob 20", ""},
		{"get bob", "20 true"},
		{"get dave", "0 false"},
		{"range - -", "alice=1 bob=20 carol=3"},
		{"range b -", "bob=20 carol=3"},
		{"range - c", "alice=1 bob=20"},
		{"range alice bob", "alice=1"},
		{"range bob alice", ""},
		{"del bob", ""},
		{"get bob", "0 false"},
		{"range - -", "alice=1 carol=3"},
	} {
		got, err := run(tc.op)
		require.NoError(t, err, tc.op)
		require.Equal(t, tc.want, got, tc.op)
	}

	// The store and its changelog hold the codecs' encodings.
	n, ok, err := streamtest.Store(d, "scores", str, codec.Int64()).Get("carol")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, int64(3), n)
	changelog, err := streamtest.Output(d, "app-scores-changelog", str, codec.Int64()).ReadKeyValues()
	require.NoError(t, err)
	require.Contains(t, changelog, streamtest.KeyValue[string, int64]{Key: "bob", Value: 20})

	// A value that does not decode ends Get and Range with an error.
	_, err = run("junk zed")
	require.NoError(t, err)
	_, err = run("get zed")
	require.ErrorIs(t, err, codec.ErrInvalid)
	require.ErrorContains(t, err, `store "scores": decode the value`)
	_, err = run("range - -")
	require.ErrorIs(t, err, codec.ErrInvalid)
	require.ErrorContains(t, err, `store "scores": decode a value`)
}

func TestTypedStoreErrors(t *testing.T) {
	t.Run("build", func(t *testing.T) {
		b := stream.NewBuilder()
		s := stream.From(b, "in", str, str)
		stream.Process(s, nopSupplier, stream.WithStores(stream.NewKeyValueStoreSpec[string, int64]("a", nil, codec.Int64())))
		stream.Process(s, nopSupplier, stream.WithStores(stream.NewKeyValueStoreSpec[string, int64]("b", str, nil)))
		stream.Process(s, nopSupplier, stream.WithStores(stream.NewKeyValueStoreSpec("no spaces", str, str)))
		var nilStore *stream.KeyValueStoreSpec[string, string]
		stream.Process(s, nopSupplier, stream.WithStores(nilStore))
		_, err := b.Build()
		require.ErrorIs(t, err, stream.ErrNilCodec)
		require.ErrorIs(t, err, stream.ErrInvalidOption)
		require.ErrorContains(t, err, `store "a": key codec: stream: nil codec`)
		require.ErrorContains(t, err, `store "b": value codec: stream: nil codec`)
		require.ErrorContains(t, err, `store name "no spaces"`)
		require.ErrorContains(t, err, `WithStores with a nil *KeyValueStoreSpec`)
	})
	t.Run("undeclared", func(t *testing.T) {
		other := stream.NewKeyValueStoreSpec("other", str, str)
		b := stream.NewBuilder()
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			return &funcProcessor[string, string, string, string]{init: func(pc stream.ProcessorContext[string, string]) error {
				_, err := other.Open(pc)
				return err
			}}
		}, stream.WithStores(stream.BytesStoreSpec("mine")))
		topo, err := b.Build()
		require.NoError(t, err)
		_, err = streamtest.New(topo)
		require.ErrorIs(t, err, stream.ErrUnknownStore)
	})
	t.Run("encode", func(t *testing.T) {
		bad := stream.NewKeyValueStoreSpec("bad", codec.Codec[string](failingCodec{}), str)
		b := stream.NewBuilder()
		stream.Process(stream.From(b, "in", str, str), func() stream.Processor[string, string, string, string] {
			var st *stream.KeyValueStore[string, string]
			return &funcProcessor[string, string, string, string]{
				init: func(pc stream.ProcessorContext[string, string]) (err error) {
					st, err = bad.Open(pc)
					return err
				},
				process: func(_ context.Context, _ stream.ProcessorContext[string, string], r stream.Record[string, string]) error {
					return st.Put(r.Key, r.Value)
				},
			}
		}, stream.WithStores(bad))
		d := newDriver(t, b)
		err := streamtest.Input(d, "in", str, str).Pipe(t.Context(), "k", "v")
		var ee *codec.EncodeError
		require.ErrorAs(t, err, &ee)
		require.Equal(t, &codec.EncodeError{Store: "bad", Part: "key", Err: ee.Err}, ee)
		require.ErrorContains(t, err, `step "process-1": encode key for store "bad": `)
		require.NotContains(t, err.Error(), "topic \"bad\"")
	})
}

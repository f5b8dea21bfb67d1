package stream

import (
	"context"
	"fmt"
	"sync"

	"github.com/duality-streams/duality/codec"
	"github.com/duality-streams/duality/internal/dsl"
)

// Branches routes the records of a stream to branches by predicates; see
// [Stream.Split]. It is not safe for concurrent use.
type Branches[K, V any] struct {
	split *dsl.Node
	names map[string]bool
	// mu guards preds and def, which tasks of an already built topology
	// read while the builder may still add branches for a later Build.
	mu    sync.Mutex
	preds map[*dsl.Node]func(K, V) bool
	def   *dsl.Node
	// kc and vc are the codecs of the split stream, which the branches
	// carry.
	kc codec.Codec[K]
	vc codec.Codec[V]
}

// Split starts routing s to branches: add them with [Branches.Branch] and
// [Branches.Default]. Each record goes to the first branch, in the order
// the branches were added, whose predicate returns true; records no
// predicate accepts go to the default branch, or are dropped when there
// is none. Options: [Named] (default "split-<n>"), which also prefixes the
// branch steps' names.
//
//	byType := views.Split(stream.Named("by-type"))
//	clicks := byType.Branch("clicks", isClick)
//	buys := byType.Branch("buys", isBuy)
//	other := byType.Default()
func (s Stream[K, V]) Split(opts ...Option) *Branches[K, V] {
	p := nodeOf(s)
	if p == nil {
		return &Branches[K, V]{}
	}
	g := p.Graph()
	cfg := dsl.ApplyOptions(opts)
	b := &Branches[K, V]{preds: make(map[*dsl.Node]func(K, V) bool), names: make(map[string]bool)}
	b.kc, b.vc = codecsOf(s)
	n := &dsl.Node{Op: "split", Kind: dsl.KindProcessor, Name: cfg.Name, Routes: true}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		kids := t.Children(n)
		fs, err := dsl.Children(t, n, dsl.CountRecords[*RecordContext, K, V])
		if err != nil {
			return nil, err
		}
		var (
			preds []func(K, V) bool
			outs  []emit[K, V]
			def   emit[K, V]
		)
		b.mu.Lock()
		for i, c := range kids {
			if c == b.def {
				def = fs[i]
				continue
			}
			preds = append(preds, b.preds[c])
			outs = append(outs, fs[i])
		}
		b.mu.Unlock()
		return emit[K, V](func(ctx context.Context, rc *RecordContext, k K, v V) error {
			t.Current = n
			for i, pred := range preds {
				if pred(k, v) {
					return outs[i](ctx, rc, k, v)
				}
			}
			if def != nil {
				return def(ctx, rc, k, v)
			}
			return nil
		}), nil
	}
	b.split = g.AddNode(n, p)
	cfg.Report(g, n.Op, n.Name, namedOnly...)
	return b
}

// Branch adds a branch named name that receives the records for which
// pred is the first predicate to return true, and returns its stream. The
// branch step is named "<split-name>-<name>".
//
// Build reports an empty name (ErrInvalidOption), a name used twice in
// one split (ErrDuplicateName) and a nil pred (ErrNilFunc).
func (b *Branches[K, V]) Branch(name string, pred func(K, V) bool) Stream[K, V] {
	if b == nil || b.split == nil {
		return Stream[K, V]{}
	}
	g := b.split.Graph()
	n := b.addBranch(name)
	b.mu.Lock()
	b.preds[n] = pred
	b.mu.Unlock()
	if name == "" {
		g.AddError(fmt.Errorf("split %q: %w: branch with an empty name", b.split.Name, ErrInvalidOption))
	} else if b.names[name] {
		g.AddError(fmt.Errorf("split %q: %w: branch %q added twice", b.split.Name, ErrDuplicateName, name))
	}
	b.names[name] = true
	if pred == nil {
		g.AddError(fmt.Errorf("split %q: branch %q: %w", b.split.Name, name, ErrNilFunc))
	}
	return handle(n, b.kc, b.vc)
}

// Default returns the default branch, named "<split-name>-default": the
// records that no predicate accepted, whichever branches are added before
// or after it. Calling it again returns the same stream.
func (b *Branches[K, V]) Default() Stream[K, V] {
	if b == nil || b.split == nil {
		return Stream[K, V]{}
	}
	b.mu.Lock()
	def := b.def
	b.mu.Unlock()
	if def == nil {
		def = b.addBranch("default")
		b.mu.Lock()
		b.def = def
		b.mu.Unlock()
	}
	return handle(def, b.kc, b.vc)
}

func (b *Branches[K, V]) addBranch(name string) *dsl.Node {
	n := &dsl.Node{Op: "branch", Kind: dsl.KindProcessor, Name: b.split.Name + "-" + name}
	n.Instantiate = func(t *dsl.Task) (any, error) {
		next, err := fanout[K, V](t, n)
		if err != nil {
			return nil, err
		}
		return next, nil
	}
	return b.split.Graph().AddNode(n, b.split)
}

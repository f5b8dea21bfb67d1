package dsl

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecoverStep(t *testing.T) {
	errOwn := errors.New("own")
	src, below := &Node{Name: "source-0"}, &Node{Name: "map-1"}
	run := func(task *Task, f func() error) (err error) {
		defer task.RecoverStep(&err, src, "in", 2, 7)
		return f()
	}
	for _, tc := range []struct {
		name    string
		current *Node
		f       func() error
		node    string // "": no NodeError
		err     error
	}{
		{name: "no panic", f: func() error { return nil }},
		{name: "no panic, an error", f: func() error { return errOwn }, err: errOwn},
		{name: "panic, no current step", f: func() error { panic("boom") }, node: "source-0"},
		{name: "panic in the current step", current: below, f: func() error { panic(errOwn) }, node: "map-1", err: errOwn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(&Task{Current: tc.current}, tc.f)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
			}
			if tc.node == "" {
				require.Equal(t, tc.err, err)
				return
			}
			ne, ok := errors.AsType[*NodeError](err)
			require.True(t, ok)
			require.Equal(t, NodeError{Node: tc.node, Topic: "in", Partition: 2, Offset: 7, Err: ne.Err}, *ne)
			pe, ok := errors.AsType[*PanicError](err)
			require.True(t, ok)
			require.NotEmpty(t, pe.Stack)
		})
	}
}

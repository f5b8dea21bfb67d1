// Package excheck holds what the examples share to check their output
// against a model computed without the framework.
package excheck

import "fmt"

// Compare matches the records of topic (got) with the expected ones by
// id and reports the missing, unexpected (absent from want, or written
// twice) and different ones, with an example, or nil if they match.
func Compare[T any, ID comparable](topic string, got, want []T, id func(T) ID, same func(got, want T) bool) error {
	byID := make(map[ID]T, len(want))
	for _, w := range want {
		byID[id(w)] = w
	}
	var unexpected, differ int
	var example string
	note := func(format string, args ...any) {
		if example == "" {
			example = fmt.Sprintf(format, args...)
		}
	}
	for _, g := range got {
		w, ok := byID[id(g)]
		switch {
		case !ok:
			unexpected++
			note("unexpected %+v", g)
		case !same(g, w):
			differ++
			note("got %+v, want %+v", g, w)
		}
		delete(byID, id(g))
	}
	for _, w := range byID {
		note("missing %+v", w)
		break
	}
	if unexpected+differ+len(byID) == 0 {
		return nil
	}
	return fmt.Errorf("%q: %d records, want %d: %d missing, %d unexpected, %d differ from the model computed without the framework (e.g. %s)",
		topic, len(got), len(want), len(byID), unexpected, differ, example)
}

package main

import (
	"fmt"
	"io"
)

// progress follows long work: records produced or consumed. Today's
// implementation writes one plain line when the work ends; a progress bar
// on a terminal (issue 13) is another implementation of the same
// interface, chosen where the command starts.
type progress interface {
	// Add counts n more records done.
	Add(n int)
	// Done ends the work; summary says what was done ("produced 10
	// records to orders").
	Done(summary string)
}

// lineProgress writes the summary as one line (to standard error, so
// that standard output stays the data).
type lineProgress struct {
	w     io.Writer
	quiet bool
	n     int
}

func (p *lineProgress) Add(n int) { p.n += n }

func (p *lineProgress) Done(summary string) {
	if !p.quiet {
		fmt.Fprintln(p.w, summary)
	}
}

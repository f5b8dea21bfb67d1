package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress follows long work: records produced or consumed. lineProgress
// writes one plain line when the work ends; barProgress draws a progress
// bar on a terminal. newProgress chooses.
type progress interface {
	// Add counts n more records done.
	Add(n int)
	// Note writes line, something the user should know about the work
	// as it happens (records skipped), even when quiet.
	Note(line string)
	// Done ends the work; summary says what was done ("produced 10
	// records to orders").
	Done(summary string)
	// Fail ends the work that failed, before its error is written:
	// a bar stays as it was, with the error on the line below it.
	Fail()
}

// lineProgress writes the summary as one line (to standard error, so
// that standard output stays the data).
type lineProgress struct {
	w     io.Writer
	quiet bool
	n     int
}

func (p *lineProgress) Add(n int) { p.n += n }

func (p *lineProgress) Note(line string) { fmt.Fprintln(p.w, line) }

func (p *lineProgress) Fail() {}

func (p *lineProgress) Done(summary string) {
	if !p.quiet {
		fmt.Fprintln(p.w, summary)
	}
}

// progressWork describes the work newProgress follows.
type progressWork struct {
	// what names the work on the bar ("produce orders").
	what string
	// total is the records expected, 0 when unknown (then the bar is a
	// counter with a rate).
	total int64
	// bytes, when set, reports the bytes read of an input of totalBytes:
	// the bar then shows the input's share read (bulk produce of a file).
	bytes      func() int64
	totalBytes int64
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newProgress returns a progress bar on standard error when it is a
// terminal and quiet is not set, and plain lines otherwise. A bar is not
// drawn when standard output is a terminal too (records printed there
// would be interleaved with it) unless dataOnStdout is false.
func (c *cli) newProgress(quiet, dataOnStdout bool, work progressWork) progress {
	if quiet || !isTerminal(c.stderr) || dataOnStdout && isTerminal(c.stdout) {
		return &lineProgress{w: c.stderr, quiet: quiet}
	}
	return newBarProgress(c.stderr, work)
}

// barProgress draws work's progress with schollz/progressbar on a
// terminal, then leaves the summary line.
type barProgress struct {
	w    io.Writer
	bar  *progressbar.ProgressBar
	work progressWork
}

func newBarProgress(w io.Writer, work progressWork) *barProgress {
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(work.what),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	}
	max := work.total
	switch {
	case work.bytes != nil && work.totalBytes > 0:
		max = work.totalBytes
		opts = append(opts, progressbar.OptionShowBytes(true))
	case max > 0:
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"))
	default:
		max = -1 // a spinner with the count and the rate
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString("records"),
			progressbar.OptionSpinnerType(14),
			// The spinner turns as records come; a ticker goroutine of its
			// own could draw over the summary line after Finish.
			progressbar.OptionSetSpinnerChangeInterval(0))
	}
	return &barProgress{w: w, bar: progressbar.NewOptions64(max, opts...), work: work}
}

func (p *barProgress) Add(n int) {
	if p.work.bytes != nil && p.work.totalBytes > 0 {
		_ = p.bar.Set64(p.work.bytes())
		return
	}
	_ = p.bar.Add(n)
}

// Note clears the bar, writes line in its place and draws the bar again
// below it.
func (p *barProgress) Note(line string) {
	_ = p.bar.Clear()
	fmt.Fprintln(p.w, line)
	_ = p.bar.RenderBlank()
}

func (p *barProgress) Fail() { fmt.Fprintln(p.w) }

func (p *barProgress) Done(summary string) {
	_ = p.bar.Finish() // the full bar stays, the summary goes below it
	fmt.Fprintf(p.w, "\n%s\n", summary)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}

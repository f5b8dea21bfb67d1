package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Results is what one run of the suite measured: results.json.
type Results struct {
	Quick        bool          `json:"quick"`
	Started      time.Time     `json:"started"`
	Finished     time.Time     `json:"finished"`
	Seconds      float64       `json:"seconds"`       // the whole run, building included
	BuildSeconds float64       `json:"build_seconds"` // building the programs
	Machine      Machine       `json:"machine"`
	Suites       []SuiteResult `json:"suites"`
}

// SuiteResult is one program's run.
type SuiteResult struct {
	Name      string   `json:"name"`
	Args      []string `json:"args"`
	Seconds   float64  `json:"seconds"`
	LoadStart string   `json:"load_start"`
	LoadEnd   string   `json:"load_end"`
	Error     string   `json:"error,omitempty"`
	Lines     []Line   `json:"lines"`
}

// Line is one "result" or "ratio" line of a program's output.
type Line struct {
	Kind   string            `json:"kind"` // result or ratio
	Fields map[string]string `json:"fields"`
	// Keys are the fields' keys in the line's order.
	Keys []string `json:"keys"`
	Text string   `json:"text"`
}

// ParseLine parses a line "result k=v k=v ..." or "ratio k=v ...": the
// kind, then fields separated by spaces, each key=value, a value either
// bare or a Go-quoted string. It reports false for any other line (the
// programs' comments, run lines of single rounds) and for a malformed
// one.
func ParseLine(s string) (Line, bool) {
	kind, rest, _ := strings.Cut(s, " ")
	if kind != "result" && kind != "ratio" {
		return Line{}, false
	}
	l := Line{Kind: kind, Fields: map[string]string{}, Text: s}
	for rest = strings.TrimLeft(rest, " "); rest != ""; rest = strings.TrimLeft(rest, " ") {
		k, v, ok := strings.Cut(rest, "=")
		if !ok || k == "" || strings.Contains(k, " ") {
			return Line{}, false
		}
		if strings.HasPrefix(v, `"`) {
			q, err := strconv.QuotedPrefix(v)
			if err != nil {
				return Line{}, false
			}
			rest = v[len(q):]
			if v, err = strconv.Unquote(q); err != nil {
				return Line{}, false
			}
		} else {
			v, rest, _ = strings.Cut(v, " ")
		}
		if _, dup := l.Fields[k]; dup {
			return Line{}, false
		}
		l.Fields[k] = v
		l.Keys = append(l.Keys, k)
	}
	return l, len(l.Keys) > 0
}

// Float returns field k as a number.
func (l Line) Float(k string) (float64, bool) {
	v, err := strconv.ParseFloat(l.Fields[k], 64)
	return v, err == nil
}

// System is the name of the system of a goka side-by-side result line:
// goka, duality-embedded, duality-kafka, duality-kafka-alo,
// plain-embedded or plain-kafka; of a Nexmark line, its system= field
// (duality when absent).
func (l Line) System() string {
	sys := l.Fields["system"]
	switch {
	case sys == "":
		return "duality"
	case sys == "goka" || l.Fields["backend"] == "":
		return sys
	case l.Fields["guarantee"] != "":
		return fmt.Sprintf("%s-%s-%s", sys, l.Fields["backend"], l.Fields["guarantee"])
	}
	return sys + "-" + l.Fields["backend"]
}

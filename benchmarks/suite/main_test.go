package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Lines as the programs print them (benchmarks/goka, benchmarks/nexmark).
var (
	gokaOutput = `# Duality vs goka v1.1.13: records=20000 keys=10000
run workload=W1 system=goka backend=kafka round=1 records=20000 rec_per_s=14000 cpu_s=0.90 rss_mb=80 checksum=0774a23486018479/13333 checksum_ok=true
result workload=W1 system=goka backend=kafka records=20000 rec_per_s=14000 cpu_s=0.90 rss_mb=80 runs=1 checksum=0774a23486018479/13333 load=3.1
result workload=W1 system=duality backend=embedded records=20000 rec_per_s=61000 cpu_s=0.20 rss_mb=60 runs=1 checksum=0774a23486018479/13333 load=3.1
result workload=W1 system=duality backend=kafka guarantee=alo records=20000 rec_per_s=30000 cpu_s=0.40 rss_mb=90 runs=1 checksum=0774a23486018479/13333 load=3.2
result workload=W1 system=plain backend=embedded records=20000 rec_per_s=80000 cpu_s=0.10 rss_mb=50 runs=1 checksum=0774a23486018479/13333 load=3.2
result workload=W2 system=goka backend=kafka records=20000 rec_per_s=5000 cpu_s=3.10 rss_mb=120 runs=1 checksum=f99626092d8f3d28/10000 load=3.3
result workload=W2 system=duality backend=embedded records=20000 rec_per_s=90000 cpu_s=0.20 rss_mb=64 runs=1 checksum=f99626092d8f3d28/10000 load=3.3
ratio workload=W1 duality-embedded/goka=4.36 cpu_per_record_goka/duality-embedded=4.50 target=10 met=no
ratio workload=W1 duality-embedded/plain-embedded=0.76 cpu_per_record_plain-embedded/duality-embedded=0.50 target=0.7 met=yes
`
	nexmarkOutput = `Nexmark on Duality: 30000 events
result query=q0 system=duality events=30000 ev_per_s=91000 ev_per_s_per_core=347000 rss_mb=79 outputs=27600 check=ok target_per_core=400000 of_target=0.87
result query=q0 system=plain events=30000 ev_per_s=120000 ev_per_s_per_core=450000 rss_mb=60 outputs=27600 check=ok
ratio query=q0 duality/plain=0.76 per_core_duality/plain=0.77 target=0.7 met=yes
result query=q5 system=duality error="exit status 1: late records"
result query=q11 events=30000 ev_per_s=1300 ev_per_s_per_core=15000 rss_mb=80 outputs=700 check=ok
load average at the end: 3.1 2.0 1.5
`
)

func parseAll(out string) []Line {
	var ls []Line
	for line := range strings.Lines(out) {
		if l, ok := ParseLine(strings.TrimSuffix(line, "\n")); ok {
			ls = append(ls, l)
		}
	}
	return ls
}

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line   string
		ok     bool
		kind   string
		fields map[string]string
		system string
	}{
		{line: "result workload=W2 system=duality backend=kafka guarantee=alo records=5 rec_per_s=10", ok: true, kind: "result",
			fields: map[string]string{"workload": "W2", "system": "duality", "backend": "kafka", "guarantee": "alo", "records": "5", "rec_per_s": "10"},
			system: "duality-kafka-alo"},
		{line: "result workload=W2 system=goka backend=kafka rec_per_s=10", ok: true, kind: "result",
			fields: map[string]string{"workload": "W2", "system": "goka", "backend": "kafka", "rec_per_s": "10"}, system: "goka"},
		{line: "result workload=W1 system=plain backend=embedded", ok: true, kind: "result",
			fields: map[string]string{"workload": "W1", "system": "plain", "backend": "embedded"}, system: "plain-embedded"},
		{line: `result query=q5 system=duality error="exit status 1: a \"late\" record"`, ok: true, kind: "result",
			fields: map[string]string{"query": "q5", "system": "duality", "error": `exit status 1: a "late" record`}, system: "duality"},
		{line: "result query=q11 events=3", ok: true, kind: "result", fields: map[string]string{"query": "q11", "events": "3"}, system: "duality"},
		{line: "ratio  query=q0 duality/plain=0.76  met=yes", ok: true, kind: "ratio",
			fields: map[string]string{"query": "q0", "duality/plain": "0.76", "met": "yes"}, system: "duality"},
		{line: "run workload=W1 system=goka round=1"},
		{line: "# Duality vs goka"},
		{line: "result"},
		{line: "result workload"},
		{line: "result a=1 a=2"},
		{line: `result error="unterminated`},
		{line: "results workload=W1"},
	} {
		l, ok := ParseLine(tc.line)
		if ok != tc.ok {
			t.Errorf("ParseLine(%q): ok %v, want %v", tc.line, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if l.Kind != tc.kind || len(l.Fields) != len(tc.fields) || l.Text != tc.line || l.System() != tc.system {
			t.Errorf("ParseLine(%q) = %+v (system %s), want kind %s, fields %v, system %s", tc.line, l, l.System(), tc.kind, tc.fields, tc.system)
		}
		for k, v := range tc.fields {
			if l.Fields[k] != v {
				t.Errorf("ParseLine(%q): %s=%q, want %q", tc.line, k, l.Fields[k], v)
			}
		}
	}
}

// TestWriteResults writes the results of a run and reads them back: the
// JSON holds every line, the text file every line under its program, and
// the plot a bar per result with its label, the groups on the axis and
// the systems in the legend.
func TestWriteResults(t *testing.T) {
	res := Results{Quick: true, Machine: Machine{CPU: "Test CPU", Cores: 2, Go: "go1.26", LoadStart: "1 2 3"},
		Suites: []SuiteResult{
			{Name: "nexmark", Args: []string{"-events", "30000"}, LoadStart: "1", LoadEnd: "2", Lines: parseAll(nexmarkOutput)},
			{Name: "goka", LoadStart: "2", LoadEnd: "3", Lines: parseAll(gokaOutput)},
		}}
	if n := len(res.Suites[0].Lines); n != 5 {
		t.Fatalf("nexmark: %d lines parsed, want 5", n)
	}
	if n := len(res.Suites[1].Lines); n != 8 {
		t.Fatalf("goka: %d lines parsed, want 8", n)
	}
	dir := t.TempDir()
	if err := writeResults(dir, res); err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Suites) != 2 || len(back.Suites[1].Lines) != 8 || back.Suites[1].Lines[2].Fields["guarantee"] != "alo" || back.Machine.CPU != "Test CPU" {
		t.Errorf("results.json does not hold the run: %s", b)
	}

	txt, err := os.ReadFile(filepath.Join(dir, "results.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"# machine: Test CPU, 2 cores", "# goka", "ratio query=q0 duality/plain=0.76", "result workload=W2 system=duality backend=embedded"} {
		if !strings.Contains(string(txt), want) {
			t.Errorf("results.txt lacks %q:\n%s", want, txt)
		}
	}
	if strings.Contains(string(txt), "run workload=") {
		t.Errorf("results.txt holds the single rounds' run lines:\n%s", txt)
	}

	md, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Test CPU | 2 |",
		"| q0 | 91k | 347k | 400k | 0.87 | 379k | 155k | 450k | 0.76 (0.77), target 0.7 met: yes | 79 MiB | 27600 |",
		"| q5 | failed: exit status 1: late records |",
		"| q11 | 1.3k | 15k |  |  |  |  |  |  | 80 MiB | 700 |",
		"| W1 | duality-kafka-alo | 20000 | 30k | 0.40 | 20.00 | 90 MiB | `0774a23486018479/13333` | 3.2 |",
		"| W1 | duality-embedded/plain-embedded | 0.76 | plain-embedded/duality-embedded | 0.50 | 0.7 | yes |",
	} {
		if !strings.Contains(string(md), want) {
			t.Errorf("results.md lacks %q:\n%s", want, md)
		}
	}

	// -render writes the same files again from results.json alone.
	for _, f := range []string{"results.txt", "results.md", "throughput.svg"} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeResults(dir, back); err != nil {
		t.Fatal(err)
	}
	md2, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(md2) != string(md) {
		t.Errorf("results.md from results.json differs:\n%s\nwant\n%s", md2, md)
	}

	svg, err := os.ReadFile(filepath.Join(dir, "throughput.svg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", ">W1<", ">W2<", ">q0<", ">q11<", ">goka<", ">duality-kafka-alo<", ">plain-embedded<",
		">Flink 2.0 (published, other hardware)<", ">61k<", ">347k<", ">379k<", "quick run", "Test CPU"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("throughput.svg lacks %q", want)
		}
	}
}

func TestPanels(t *testing.T) {
	ps := panels(Results{Suites: []SuiteResult{{Name: "goka", Lines: parseAll(gokaOutput)}, {Name: "nexmark", Lines: parseAll(nexmarkOutput)}}})
	if len(ps) != 2 {
		t.Fatalf("%d panels, want 2", len(ps))
	}
	g := ps[0]
	if strings.Join(g.groups, ",") != "W1,W2" || len(g.series) != 4 {
		t.Errorf("goka panel: groups %v, %d series, want W1,W2 and 4 (goka, duality-embedded, duality-kafka-alo, plain-embedded)", g.groups, len(g.series))
	}
	if v := g.series[1].values["W2"]; g.series[1].name != "duality-embedded" || v != 90000 {
		t.Errorf("goka panel: series 1 is %s with W2 %v, want duality-embedded with 90000", g.series[1].name, v)
	}
	n := ps[1]
	if strings.Join(n.groups, ",") != "q0,q11" {
		t.Errorf("nexmark panel: groups %v, want q0,q11 (q5 failed)", n.groups)
	}
	if len(n.series) != 3 || n.series[2].values["q0"] != 379e3 {
		t.Errorf("nexmark panel: series %+v, want duality, plain and Flink 2.0", n.series)
	}
	if err := writePlot(filepath.Join(t.TempDir(), "x.svg"), Results{}); err == nil {
		t.Error("writePlot of no results: no error")
	}
}

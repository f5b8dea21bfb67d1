package main

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// flink113PerCore are Flink 1.13's published Nexmark figures (RocksDB,
// 8 slots) in events/s per core, other hardware, as flink2PerCore.
var flink113PerCore = map[string]float64{"q0": 155e3, "q1": 158e3, "q2": 175e3, "q5": 22.1e3, "q7": 12.3e3, "q8": 146e3}

// writeMarkdown writes res as the tables of benchmarks/README.md's
// results section: the machine, Nexmark per query beside its ceiling and
// Flink's published figures, the goka side-by-side per workload and
// system and its ratios, and the other programs' lines as printed.
func writeMarkdown(path string, res Results) error {
	var b strings.Builder
	m := res.Machine
	fmt.Fprintf(&b, "| CPU | cores | memory | OS | Go | commit | run | load average (1, 5, 15 min) before | after |\n")
	fmt.Fprintf(&b, "|---|--:|--:|---|---|---|---|---|---|\n")
	kind := ""
	if res.Quick {
		kind = ", quick"
	}
	fmt.Fprintf(&b, "| %s | %d | %d MiB | %s | %s | %s | %s%s, %.0f s | %s | %s |\n\n",
		m.CPU, m.Cores, m.MemoryMB, m.OS, m.Go, m.Commit, res.Started.Format(time.DateTime+" MST"), kind, res.Seconds, m.LoadStart, m.LoadEnd)
	for _, s := range res.Suites {
		cmd := "`" + strings.Join(append([]string{s.Name}, s.Args...), " ") + "`"
		if len(s.Args) == 0 {
			cmd += " (its defaults)"
		}
		fmt.Fprintf(&b, "%s: %.0f s, load average %s before, %s after.\n\n", cmd, s.Seconds, s.LoadStart, s.LoadEnd)
		switch s.Name {
		case "nexmark":
			nexmarkTable(&b, s)
		case "goka":
			gokaTables(&b, s)
		default:
			b.WriteString("```\n")
			for _, l := range s.Lines {
				b.WriteString(l.Text + "\n")
			}
			b.WriteString("```\n\n")
		}
		if s.Error != "" {
			fmt.Fprintf(&b, "%s failed: %s\n\n", s.Name, s.Error)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func nexmarkTable(b *strings.Builder, s SuiteResult) {
	plain := map[string]Line{}
	ratio := map[string]Line{}
	for _, l := range s.Lines {
		switch {
		case l.Kind == "result" && l.System() == "plain":
			plain[l.Fields["query"]] = l
		case l.Kind == "ratio":
			ratio[l.Fields["query"]] = l
		}
	}
	b.WriteString("| query | events/s | events/s per core | target per core | of target | Flink 2.0 per core (other hardware) | Flink 1.13 per core (other hardware) | ceiling: events/s per core | DSL/ceiling events/s (per core) | peak RSS | outputs |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, l := range s.Lines {
		if l.Kind != "result" || l.System() != "duality" {
			continue
		}
		q := l.Fields["query"]
		if e, ok := l.Fields["error"]; ok {
			fmt.Fprintf(b, "| %s | failed: %s | | | | | | | | | |\n", q, e)
			continue
		}
		ceiling, vs := "", ""
		if p, ok := plain[q]; ok {
			ceiling = num(p, "ev_per_s_per_core")
		}
		if r, ok := ratio[q]; ok {
			vs = fmt.Sprintf("%s (%s)", r.Fields["duality/plain"], r.Fields["per_core_duality/plain"])
			if r.Fields["met"] != "" {
				vs += ", target " + r.Fields["target"] + " met: " + r.Fields["met"]
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s MiB | %s |\n", q,
			num(l, "ev_per_s"), num(l, "ev_per_s_per_core"), num(l, "target_per_core"), l.Fields["of_target"],
			published(flink2PerCore, q), published(flink113PerCore, q), ceiling, vs, l.Fields["rss_mb"], l.Fields["outputs"])
	}
	b.WriteString("\n")
}

func gokaTables(b *strings.Builder, s SuiteResult) {
	b.WriteString("| workload | system | records | records/s | CPU s | CPU µs/record | peak RSS | checksum | load |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|---|--:|\n")
	for _, l := range s.Lines {
		if l.Kind != "result" {
			continue
		}
		perRecord := ""
		cpu, ok1 := l.Float("cpu_s")
		n, ok2 := l.Float("records")
		if ok1 && ok2 && n > 0 {
			perRecord = fmt.Sprintf("%.2f", cpu/n*1e6)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s MiB | `%s` | %s |\n", l.Fields["workload"], l.System(),
			l.Fields["records"], num(l, "rec_per_s"), l.Fields["cpu_s"], perRecord, l.Fields["rss_mb"], l.Fields["checksum"], l.Fields["load"])
	}
	b.WriteString("\n| workload | ratio of records/s | value | ratio of CPU per record | value | target | met |\n")
	b.WriteString("|---|---|--:|---|--:|--:|---|\n")
	for _, l := range s.Lines {
		if l.Kind != "ratio" || len(l.Keys) < 3 {
			continue
		}
		// ratio workload=W a/b=x cpu_per_record_b/a=y [target=t met=m]
		rk, ck := l.Keys[1], l.Keys[2]
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", l.Fields["workload"], rk, l.Fields[rk],
			strings.TrimPrefix(ck, "cpu_per_record_"), l.Fields[ck], l.Fields["target"], l.Fields["met"])
	}
	b.WriteString("\n")
}

// num formats field k of l as short does, or returns it as it is.
func num(l Line, k string) string {
	v, ok := l.Float(k)
	if !ok {
		return l.Fields[k]
	}
	return short(v)
}

func published(m map[string]float64, q string) string {
	if v, ok := m[q]; ok {
		return short(v)
	}
	return ""
}

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// flink2PerCore are Flink 2.0's published Nexmark figures in events/s
// per core (the nexmark/nexmark guides, see shared/NEXMARK.md): measured
// on other hardware, so they place Duality's figures, they do not rank
// them.
var flink2PerCore = map[string]float64{"q0": 379e3, "q1": 395e3, "q2": 414e3, "q5": 74.5e3, "q7": 23e3, "q8": 162e3}

// series is one system's bars: a value per group.
type series struct {
	name   string
	values map[string]float64
}

// panel is one bar chart: groups along x, a bar per series in each.
type panel struct {
	title, yLabel string
	groups        []string
	series        []series
}

// add sets series name's value for group, adding both as needed, in the
// order they come.
func (p *panel) add(name, group string, v float64) {
	if !slices.Contains(p.groups, group) {
		p.groups = append(p.groups, group)
	}
	i := slices.IndexFunc(p.series, func(s series) bool { return s.name == name })
	if i < 0 {
		p.series = append(p.series, series{name: name, values: map[string]float64{}})
		i = len(p.series) - 1
	}
	p.series[i].values[group] = v
}

// panels are the plot's bar charts: the goka side-by-side (records/s per
// workload and system) and Nexmark (events/s per core per query, Duality,
// its plain-Go ceiling, Flink 2.0 published), those that res has
// results of.
func panels(res Results) []*panel {
	load := func(s SuiteResult) string { return "load " + s.LoadStart + " to " + s.LoadEnd }
	var out []*panel
	for _, s := range res.Suites {
		switch s.Name {
		case "goka":
			p := &panel{title: "Duality vs goka: records/s, median (" + load(s) + ")", yLabel: "records/s"}
			for _, l := range s.Lines {
				if v, ok := l.Float("rec_per_s"); ok && l.Kind == "result" && l.Fields["workload"] != "" {
					p.add(l.System(), l.Fields["workload"], v)
				}
			}
			if len(p.groups) > 0 {
				out = append(out, p)
			}
		case "nexmark":
			p := &panel{title: "Nexmark: events/s per core used (" + load(s) + "; Flink: published, other hardware)", yLabel: "events/s per core"}
			for _, l := range s.Lines {
				v, ok := l.Float("ev_per_s_per_core")
				q := l.Fields["query"]
				if !ok || l.Kind != "result" || q == "" {
					continue
				}
				p.add(l.System(), q, v)
			}
			for _, q := range slices.Clone(p.groups) {
				if f, ok := flink2PerCore[q]; ok {
					p.add("Flink 2.0 (published, other hardware)", q, f)
				}
			}
			if len(p.groups) > 0 {
				out = append(out, p)
			}
		}
	}
	return out
}

// plotWidth and panelHeight are the size of one panel.
var plotWidth, panelHeight = 11 * vg.Inch, 4.5 * vg.Inch

// writePlot writes the panels of res as one SVG file, one panel above
// the other. It fails if res has nothing to plot.
func writePlot(path string, res Results) error {
	ps := panels(res)
	if len(ps) == 0 {
		return errors.New("plot: no results to plot")
	}
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}
	plotter.DefaultFont = plot.DefaultFont
	plots := make([][]*plot.Plot, len(ps))
	for i, p := range ps {
		pl, err := p.plot()
		if err != nil {
			return err
		}
		plots[i] = []*plot.Plot{pl}
	}
	title := fmt.Sprintf("%s, %d cores, %s", res.Machine.CPU, res.Machine.Cores, res.Machine.Go)
	if res.Quick {
		title += ", quick run (small inputs: not figures to quote)"
	}
	c := vgsvg.New(plotWidth, panelHeight*vg.Length(len(ps))+vg.Points(20))
	dc := draw.New(c)
	dc.FillText(titleStyle(11), vg.Point{X: plotWidth / 2, Y: dc.Max.Y - vg.Points(14)}, title)
	body := dc
	body.Max.Y -= vg.Points(20)
	canvases := plot.Align(plots, draw.Tiles{Rows: len(ps), Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(4), PadRight: vg.Points(8), PadY: vg.Points(12)}, body)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// titleStyle is the style of the image's title.
func titleStyle(size vg.Length) draw.TextStyle {
	return draw.TextStyle{Color: plotutil.DarkColors[0], Font: font.From(plot.DefaultFont, size),
		XAlign: draw.XCenter, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
}

// plot draws p as grouped bars, each labelled with its value.
func (p *panel) plot() (*plot.Plot, error) {
	pl := plot.New()
	pl.Title.Text = p.title
	pl.Title.TextStyle.Font.Size = 10
	pl.Y.Label.Text = p.yLabel
	pl.Y.Min = 0
	pl.Y.Tick.Marker = plot.TickerFunc(func(lo, hi float64) []plot.Tick {
		ticks := plot.DefaultTicks{}.Ticks(lo, hi)
		for i := range ticks {
			if ticks[i].Label != "" {
				ticks[i].Label = short(ticks[i].Value)
			}
		}
		return ticks
	})
	pl.NominalX(p.groups...)
	pl.Add(plotter.NewGrid())
	// Bars share the width of a group (0.8 of it); the plot area is
	// about the panel less its axis.
	group := (plotWidth - vg.Inch) / vg.Length(len(p.groups))
	width := group * 0.8 / vg.Length(len(p.series))
	maxV := 0.0
	for i, s := range p.series {
		vals := make(plotter.Values, len(p.groups))
		var labels plotter.XYLabels
		for j, g := range p.groups {
			v, ok := s.values[g]
			vals[j] = v
			maxV = max(maxV, v)
			if ok {
				labels.XYs = append(labels.XYs, plotter.XY{X: float64(j), Y: v})
				labels.Labels = append(labels.Labels, short(v))
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		bars.Color = plotutil.SoftColors[i%len(plotutil.SoftColors)]
		bars.LineStyle.Width = vg.Points(0.5)
		bars.Offset = (vg.Length(i) - vg.Length(len(p.series)-1)/2) * width
		pl.Add(bars)
		pl.Legend.Add(s.name, bars)
		if len(labels.XYs) > 0 {
			l, err := plotter.NewLabels(labels)
			if err != nil {
				return nil, err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].Font.Size = 6
				l.TextStyle[k].XAlign = draw.XCenter
			}
			l.Offset = vg.Point{X: bars.Offset, Y: vg.Points(2)}
			pl.Add(l)
		}
	}
	// Room above the tallest bar for the legend.
	pl.Y.Max = maxV * (1.15 + 0.07*float64(len(p.series)))
	pl.Legend.Top = true
	pl.Legend.Left = true
	pl.Legend.TextStyle.Font.Size = 8
	return pl, nil
}

// short formats v as the results tables do: 146k, 1.2M, 950, 0.
func short(v float64) string {
	switch {
	case v >= 10e6:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 10e3:
		return fmt.Sprintf("%.3gk", v/1e3)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// drawPlot draws two panels: each scenario's closed-loop maximum on every
// system against the baselines' lines, and its latencies at 50 % load
// beside the baselines' at 50 %. Log scales: bare echo runs 20 times
// faster than anything that signs.
func drawPlot(rep *report, path string) error {
	var names []string
	for _, info := range scenarioList() {
		if info.load == closed && info.name != "baseline" && rep.find(info.name, "orderhub-go") != nil {
			names = append(names, info.name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	thr, err := throughputPlot(rep, names)
	if err != nil {
		return err
	}
	lat, err := latencyPlot(rep, names)
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(1300), vg.Points(560))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(24), PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{thr, lat}}, tiles, dc)
	thr.Draw(canvases[0][0])
	lat.Draw(canvases[0][1])
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// series is how one system or percentile is drawn.
type series struct {
	key   string
	label string
	shape draw.GlyphDrawer
	color color.Color
	dx    float64 // offset within the category, so points do not hide each other
}

func newPlot(title, ylabel string, categories []string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.TickerFunc(ticks125)
	p.NominalX(categories...)
	p.X.Tick.Label.Rotation = math.Pi / 8
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

func throughputPlot(rep *report, names []string) (*plot.Plot, error) {
	p := newPlot(fmt.Sprintf("Maximum throughput, %d callers (closed loop)", rep.Meta.Callers), "requests/s", names)
	var values []float64
	for i, bl := range []series{
		{key: "bare", label: "bare echo", color: color.Gray{Y: 100}},
		{key: "sign-go", label: "sign-only (go)", color: color.RGBA{R: 200, A: 255}},
		{key: "sign-boringcrypto", label: "sign-only (boringcrypto)", color: color.RGBA{R: 230, G: 140, A: 255}},
	} {
		s := rep.find("baseline", bl.key)
		if s == nil {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: s.ReqPerSec}, {X: float64(len(names)) - 0.5, Y: s.ReqPerSec}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = bl.color
		l.LineStyle.Width = vg.Points(1.5)
		l.LineStyle.Dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(2), vg.Points(2)}}[i]
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s %.0f/s", bl.label, s.ReqPerSec), l)
		values = append(values, s.ReqPerSec)
	}
	for _, sys := range []series{
		{key: "orderhub-go", label: "orderhub (go)", shape: draw.CircleGlyph{}, color: color.RGBA{B: 200, A: 255}, dx: -0.12},
		{key: "orderhub-boringcrypto", label: "orderhub (boringcrypto)", shape: draw.TriangleGlyph{}, color: color.RGBA{G: 150, A: 255}, dx: 0.12},
		{key: "prism", label: "Prism mock", shape: draw.CrossGlyph{}, color: color.Black},
	} {
		var xy plotter.XYs
		for i, n := range names {
			if s := rep.find(n, sys.key); s != nil && s.ReqPerSec > 0 {
				xy = append(xy, plotter.XY{X: float64(i) + sys.dx, Y: s.ReqPerSec})
				values = append(values, s.ReqPerSec)
			}
		}
		if err := addPoints(p, xy, sys); err != nil {
			return nil, err
		}
	}
	yRange(p, values)
	return p, nil
}

func latencyPlot(rep *report, names []string) (*plot.Plot, error) {
	cats := append([]string{"sign-only"}, names...)
	keys := append([]string{"baseline"}, names...)
	p := newPlot("Latency at 50 % of each maximum (open loop, orderhub go)", "ms", cats)
	values := []float64{5, 10}
	for _, lim := range []struct {
		ms    float64
		label string
	}{{5, "target p99 5 ms"}, {10, "target p99.9 10 ms"}} {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: lim.ms}, {X: float64(len(cats)) - 0.5, Y: lim.ms}})
		if err != nil {
			return nil, err
		}
		l.LineStyle.Color = color.RGBA{R: 200, A: 255}
		l.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		if lim.ms == 10 {
			l.LineStyle.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(lim.label, l)
	}
	for _, q := range []series{
		{key: "p50", label: "p50", shape: draw.CircleGlyph{}, color: color.RGBA{B: 200, A: 255}, dx: -0.15},
		{key: "p99", label: "p99", shape: draw.TriangleGlyph{}, color: color.RGBA{R: 180, G: 90, A: 255}},
		{key: "p99.9", label: "p99.9", shape: draw.SquareGlyph{}, color: color.RGBA{R: 200, A: 255}, dx: 0.15},
	} {
		var xy plotter.XYs
		for i, k := range keys {
			sys := "orderhub-go"
			if k == "baseline" {
				sys = "sign-go"
			}
			s := rep.find(k+"@50%", sys)
			if s == nil {
				continue
			}
			v := map[string]float64{"p50": s.P50Ms, "p99": s.P99Ms, "p99.9": s.P999Ms}[q.key]
			if v > 0 {
				xy = append(xy, plotter.XY{X: float64(i) + q.dx, Y: v})
				values = append(values, v)
			}
		}
		if err := addPoints(p, xy, q); err != nil {
			return nil, err
		}
	}
	yRange(p, values)
	return p, nil
}

// yRange fits the log axis to the values, with room above for the legend.
func yRange(p *plot.Plot, values []float64) {
	if len(values) == 0 {
		return
	}
	lo, hi := values[0], values[0]
	for _, v := range values {
		lo, hi = min(lo, v), max(hi, v)
	}
	p.Y.Min, p.Y.Max = lo/1.6, hi*4
}

// ticks125 marks a log axis at 1, 2 and 5 times each power of ten, labelled.
func ticks125(lo, hi float64) []plot.Tick {
	var ts []plot.Tick
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, e)
			if v < lo || v > hi {
				continue
			}
			ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	return ts
}

func addPoints(p *plot.Plot, xy plotter.XYs, s series) error {
	if len(xy) == 0 {
		return nil
	}
	sc, err := plotter.NewScatter(xy)
	if err != nil {
		return err
	}
	sc.GlyphStyle.Shape = s.shape
	sc.GlyphStyle.Color = s.color
	sc.GlyphStyle.Radius = vg.Points(4)
	p.Add(sc)
	p.Legend.Add(s.label, sc)
	return nil
}

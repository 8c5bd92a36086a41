package bench

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// LatencyPanel is one chart of a latency plot: a percentile curve per
// target of one scenario.
type LatencyPanel struct {
	Title    string
	Subtitle string
	Series   []LatencySeries
}

// LatencySeries is one target's latency distribution.
type LatencySeries struct {
	Label  string // legend text
	Color  string // any SVG color
	Dashed bool   // a dashed line, to tell a reference curve from the others
	// Curve is (percentile, latency in µs), percentiles ascending in
	// [PlotMinPercentile, PlotMaxPercentile].
	Curve [][2]float64
	// Marks are the reported percentiles, drawn as dots on the curve.
	Marks [][2]float64
}

// The percentile range of the x axis.
const (
	PlotMinPercentile = 50
	PlotMaxPercentile = 99.99
)

// SeriesOf turns a load result into a series: the curve from its histogram
// (or, without one, straight lines between the reported percentiles) and
// dots at p50, p90, p99 and p99.9.
func SeriesOf(label, color string, r *Result) LatencySeries {
	s := LatencySeries{Label: label, Color: color}
	l := r.Latency
	for _, m := range [][2]float64{{50, l.P50}, {90, l.P90}, {99, l.P99}, {99.9, l.P999}} {
		if m[1] > 0 {
			s.Marks = append(s.Marks, m)
		}
	}
	s.Curve = PercentileCurve(r.Histogram, 200)
	if len(s.Curve) == 0 {
		s.Curve = s.Marks
	}
	return s
}

// PercentileCurve evaluates a histogram of (upper bound µs, count) pairs at
// n percentiles spread evenly on the plot's x scale between
// PlotMinPercentile and PlotMaxPercentile. The latency at percentile p is
// the upper bound of the first bucket at which the cumulative count
// reaches p% of the total. It returns nil for an empty histogram.
func PercentileCurve(hist [][2]int64, n int) [][2]float64 {
	buckets := append([][2]int64(nil), hist...)
	sort.Slice(buckets, func(i, j int) bool { return buckets[i][0] < buckets[j][0] })
	var total int64
	for _, b := range buckets {
		total += max(b[1], 0)
	}
	if total == 0 || n < 2 {
		return nil
	}
	lo, hi := percentileX(PlotMinPercentile), percentileX(PlotMaxPercentile)
	curve := make([][2]float64, 0, n)
	i := 0
	var cum int64
	for k := range n {
		x := lo + (hi-lo)*float64(k)/float64(n-1)
		p := 100 * (1 - math.Pow(10, -x))
		need := int64(math.Ceil(p / 100 * float64(total)))
		for i < len(buckets) && cum+max(buckets[i][1], 0) < need {
			cum += max(buckets[i][1], 0)
			i++
		}
		j := min(i, len(buckets)-1)
		curve = append(curve, [2]float64{p, float64(buckets[j][0])})
	}
	return curve
}

// percentileX is the plot's x scale: the number of nines, -log10(1-p/100),
// so 90, 99, 99.9 and 99.99 are evenly spaced.
func percentileX(p float64) float64 { return -math.Log10(1 - p/100) }

// Plot geometry, in SVG user units.
const (
	plotWidth       = 960
	plotPanelHeight = 440
	plotLeft        = 90  // room for the y tick labels
	plotRight       = 250 // room for the legend
	plotTop         = 64  // room for the title and subtitle
	plotBottom      = 56  // room for the x tick labels and the axis title
)

// WriteLatencySVG draws the panels one above the other as a standalone SVG
// document: x is the percentile on a log scale of nines (50 … 99.99), y the
// latency on a log scale, one colored curve per target with a legend.
func WriteLatencySVG(w io.Writer, panels []LatencyPanel) error {
	height := plotPanelHeight * max(len(panels), 1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif" font-size="14">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="white"/>`+"\n", plotWidth, height)
	for i, p := range panels {
		writePanel(&b, p, float64(i*plotPanelHeight))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writePanel(b *strings.Builder, p LatencyPanel, top float64) {
	x0, x1 := float64(plotLeft), float64(plotWidth-plotRight)
	y0, y1 := top+plotTop, top+plotPanelHeight-plotBottom // y0 is the top edge
	fmt.Fprintf(b, `<text x="%d" y="%s" font-size="17" font-weight="bold">%s</text>`+"\n", plotLeft, num(top+26), esc(p.Title))
	if p.Subtitle != "" {
		fmt.Fprintf(b, `<text x="%d" y="%s" fill="#444">%s</text>`+"\n", plotLeft, num(top+46), esc(p.Subtitle))
	}

	lo, hi := latencyRange(p.Series)
	ylo, yhi := math.Log10(lo), math.Log10(hi)
	px := func(pct float64) float64 {
		xl, xh := percentileX(PlotMinPercentile), percentileX(PlotMaxPercentile)
		return x0 + (x1-x0)*(percentileX(pct)-xl)/(xh-xl)
	}
	py := func(us float64) float64 {
		return y1 - (y1-y0)*(math.Log10(us)-ylo)/(yhi-ylo)
	}

	// Grid and ticks.
	b.WriteString(`<g stroke="#ddd" stroke-width="1">` + "\n")
	for _, pct := range plotPercentileTicks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(px(pct)), num(y0), num(px(pct)), num(y1))
	}
	ticks := latencyTicks(lo, hi)
	for _, t := range ticks {
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s"/>`+"\n", num(x0), num(py(t)), num(x1), num(py(t)))
	}
	b.WriteString("</g>\n")
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#333"/>`+"\n", num(x0), num(y0), num(x1-x0), num(y1-y0))
	for _, pct := range plotPercentileTicks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">%s</text>`+"\n", num(px(pct)), num(y1+20), esc(strconv.FormatFloat(pct, 'f', -1, 64)+"%"))
	}
	for _, t := range ticks {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end">%s</text>`+"\n", num(x0-8), num(py(t)+5), esc(formatTick(t)))
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" fill="#444">percentile of requests (log scale of nines)</text>`+"\n", num((x0+x1)/2), num(y1+44))
	fmt.Fprintf(b, `<text x="0" y="0" transform="translate(%s %s) rotate(-90)" text-anchor="middle" fill="#444">latency (log scale)</text>`+"\n", num(18), num((y0+y1)/2))

	// Curves and marks, clipped to the plot area.
	clip := fmt.Sprintf("clip%d", int(top))
	fmt.Fprintf(b, `<clipPath id="%s"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath>`+"\n", clip, num(x0), num(y0-4), num(x1-x0+4), num(y1-y0+8))
	fmt.Fprintf(b, `<g clip-path="url(#%s)">`+"\n", clip)
	for _, s := range p.Series {
		var pts []string
		for _, c := range s.Curve {
			if c[1] > 0 {
				pts = append(pts, num(px(c[0]))+","+num(py(c[1])))
			}
		}
		if len(pts) > 0 {
			fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round"%s points="%s"/>`+"\n", esc(s.Color), dashAttr(s.Dashed), strings.Join(pts, " "))
		}
		for _, m := range s.Marks {
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="4" fill="%s" stroke="white" stroke-width="1"/>`+"\n", num(px(m[0])), num(py(m[1])), esc(s.Color))
		}
	}
	b.WriteString("</g>\n")

	// Legend: one line per target with its p50 and p99.
	lx, ly := x1+20, y0+10
	for i, s := range p.Series {
		y := ly + float64(i)*48
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="4"%s/>`+"\n", num(lx), num(y), num(lx+26), num(y), esc(s.Color), dashAttr(s.Dashed))
		fmt.Fprintf(b, `<text x="%s" y="%s" font-weight="bold">%s</text>`+"\n", num(lx+34), num(y+5), esc(s.Label))
		if note := marksNote(s.Marks); note != "" {
			fmt.Fprintf(b, `<text x="%s" y="%s" font-size="12" fill="#444">%s</text>`+"\n", num(lx+34), num(y+22), esc(note))
		}
	}
}

// formatTick writes a round latency (µs) without trailing zeros: "500 µs",
// "2 ms", "1.5 s".
func formatTick(us float64) string {
	switch {
	case us < 1000:
		return strconv.FormatFloat(us, 'f', -1, 64) + " µs"
	case us < 1_000_000:
		return strconv.FormatFloat(us/1000, 'f', -1, 64) + " ms"
	default:
		return strconv.FormatFloat(us/1e6, 'f', -1, 64) + " s"
	}
}

var plotPercentileTicks = []float64{50, 90, 99, 99.9, 99.99}

// marksNote summarizes a series' p50 and p99 for the legend.
func marksNote(marks [][2]float64) string {
	var parts []string
	for _, m := range marks {
		if m[0] == 50 || m[0] == 99 {
			parts = append(parts, "p"+strconv.FormatFloat(m[0], 'f', -1, 64)+" "+formatMicros(m[1]))
		}
	}
	return strings.Join(parts, ", ")
}

// latencyRange is the y range covering every series, widened a little and
// to at least a factor of 4 so that a flat curve still has ticks around it.
func latencyRange(series []LatencySeries) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range series {
		for _, pts := range [][][2]float64{s.Curve, s.Marks} {
			for _, c := range pts {
				if c[1] > 0 {
					lo, hi = math.Min(lo, c[1]), math.Max(hi, c[1])
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		return 100, 10_000
	}
	lo, hi = lo/1.15, hi*1.15
	if hi/lo < 4 {
		mid := math.Sqrt(lo * hi)
		lo, hi = mid/2, mid*2
	}
	return lo, hi
}

// latencyTicks returns round latencies (µs) within [lo, hi]: 1, 2, 5 times a
// power of ten, or every digit when that would give fewer than three ticks.
func latencyTicks(lo, hi float64) []float64 {
	pick := func(mantissas []float64) []float64 {
		var ts []float64
		for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
			for _, m := range mantissas {
				if t := m * math.Pow(10, e); t >= lo && t <= hi {
					ts = append(ts, t)
				}
			}
		}
		return ts
	}
	ts := pick([]float64{1, 2, 5})
	if len(ts) < 3 {
		ts = pick([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	}
	return ts
}

func dashAttr(dashed bool) string {
	if dashed {
		return ` stroke-dasharray="8 5"`
	}
	return ""
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

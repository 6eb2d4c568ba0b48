package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteReport writes a markdown report of r into dir, with an SVG
// picture of the latency histogram and, when there are samples, one of
// memory and lag over time. It returns the report's path.
func (r *Result) WriteReport(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	base := fmt.Sprintf("%s-%s", r.Time.Format("20060102T150405Z"), r.Mode)
	if r.Rate > 0 {
		base += fmt.Sprintf("-rate%.0f", r.Rate)
	}
	var md bytes.Buffer
	fmt.Fprintf(&md, "# jetfleet bench: %s mode, %d events\n\n", r.Mode, r.Events)
	fmt.Fprintf(&md, "Run %s with %s on %d CPUs, server %s. Verified: **%s**.\n\n", r.Time.Format("2006-01-02 15:04 MST"), r.GoVersion, r.CPUs, r.Server, yesNo(r.Verified))
	md.WriteString("```\n")
	if err := r.WriteTable(&md); err != nil {
		return "", err
	}
	md.WriteString("```\n\n")

	if r.Latency.Count > 0 {
		name := base + "-latency.svg"
		if err := writeFile(filepath.Join(dir, name), latencySVG(r.Latency)); err != nil {
			return "", err
		}
		fmt.Fprintf(&md, "## Latency, publish to aggregator commit\n\n![latency histogram](%s)\n\n", name)
		tw := tabwriter.NewWriter(&md, 0, 0, 1, ' ', tabwriter.Debug)
		fmt.Fprintf(tw, "| up to\t records\t share |\n|---\t---\t--- |\n")
		for _, b := range r.Latency.Buckets {
			fmt.Fprintf(tw, "| %s\t %d\t %.2f%% |\n", ms(b.UpToMs), b.Count, float64(b.Count)*100/float64(r.Latency.Count))
		}
		tw.Flush()
		md.WriteString("\n")
	}
	if len(r.Samples) > 1 {
		name := base + "-timeline.svg"
		if err := writeFile(filepath.Join(dir, name), timelineSVG(r.Samples)); err != nil {
			return "", err
		}
		fmt.Fprintf(&md, "## Memory and lag over time\n\n![memory and lag](%s)\n\n", name)
		first, last := flatness(r.Samples)
		fmt.Fprintf(&md, "| | first half | second half |\n|---|---|---|\n")
		fmt.Fprintf(&md, "| resident memory, median | %.1f MiB | %.1f MiB |\n", first.rssMiB, last.rssMiB)
		if last.fileMiB > 0 {
			fmt.Fprintf(&md, "| of it mapped files (the binary), median | %.1f MiB | %.1f MiB |\n", first.fileMiB, last.fileMiB)
		}
		fmt.Fprintf(&md, "| of it Go (workers, embedded server), median | %.1f MiB | %.1f MiB |\n", first.goMiB, last.goMiB)
		if last.duckResidentMiB > 0 {
			fmt.Fprintf(&md, "| of it DuckDB's allocator (resident pages), median | %.1f MiB | %.1f MiB |\n", first.duckResidentMiB, last.duckResidentMiB)
			fmt.Fprintf(&md, "| of that allocated by DuckDB, median | %.1f MiB | %.1f MiB |\n", first.duckAllocMiB, last.duckAllocMiB)
		}
		fmt.Fprintf(&md, "| of that accounted by DuckDB (aggregator states' buffers), median | %.1f MiB | %.1f MiB |\n", first.duckMiB, last.duckMiB)
		if last.mallocInUseMiB > 0 {
			fmt.Fprintf(&md, "| of it the C heap (malloc) in use, median | %.1f MiB | %.1f MiB |\n", first.mallocInUseMiB, last.mallocInUseMiB)
			fmt.Fprintf(&md, "| the C heap's free lists (not all resident), median | %.1f MiB | %.1f MiB |\n", first.mallocFreeMiB, last.mallocFreeMiB)
		}
		fmt.Fprintf(&md, "| resident memory, trend | %+.1f MiB/min | %+.1f MiB/min |\n", first.rssSlope, last.rssSlope)
		fmt.Fprintf(&md, "| lag (waiting or in flight, all steps), max | %d | %d |\n", first.maxLag, last.maxLag)
		fmt.Fprintf(&md, "| lag, trend | %+.0f messages/min | %+.0f messages/min |\n\n", first.lagSlope, last.lagSlope)
		md.WriteString("Trend: least-squares slope over the half's samples; flat memory and lag have a second-half trend near zero. " +
			"Resident memory is the binary's mapped pages, Go's (workers and the embedded server), DuckDB's allocator " +
			"(its states' buffers, bounded by `--memory-limit`, plus what its operators allocate and freed pages not yet returned) " +
			"and the libc's malloc heap (DuckDB's C++ objects, such as its indexes' bookkeeping). " +
			"The malloc free lists count chunks whose pages may have been returned already: they need not be resident.\n\n")
	}
	md.WriteString("Reproduce: `jetfleet bench " + r.command() + "`\n")
	path := filepath.Join(dir, base+".md")
	return path, writeFile(path, md.Bytes())
}

func (r *Result) command() string {
	args := []string{"--mode " + string(r.Mode), fmt.Sprintf("--events %d", r.Events), fmt.Sprintf("--seed %d", r.Seed)}
	if r.DurationSeconds > 0 {
		args[1] = "--duration " + time.Duration(r.DurationSeconds*float64(time.Second)).String()
	}
	if r.MemoryLimit != "" && r.MemoryLimit != "1GB" {
		args = append(args, "--memory-limit "+r.MemoryLimit)
	}
	if r.Mode == ModeBulk {
		args = append(args, fmt.Sprintf("--bulk-size %d", r.BulkSize))
	}
	if r.Rate > 0 {
		args = append(args, fmt.Sprintf("--rate %.0f", r.Rate))
	}
	for _, w := range r.Workers {
		if w.Replicas > 1 {
			args = append(args, fmt.Sprintf("--workers %s=%d", w.Step, w.Replicas))
		}
	}
	return strings.Join(args, " ")
}

type half struct {
	rssMiB, goMiB      float64
	duckMiB            float64
	duckAllocMiB       float64
	duckResidentMiB    float64
	mallocInUseMiB     float64
	mallocFreeMiB      float64
	fileMiB            float64
	rssSlope, lagSlope float64 // per minute
	maxLag             uint64
}

// flatness summarises the two halves of a run's samples: memory and lag
// that stay flat have similar figures in both.
func flatness(samples []Sample) (first, second half) {
	mid := len(samples) / 2
	sum := func(ss []Sample) half {
		var h half
		// mib is one memory figure of every sample, in MiB.
		mib := func(bytesFunc func(Sample) int64) []float64 {
			out := make([]float64, len(ss))
			for i, s := range ss {
				out[i] = float64(bytesFunc(s)) / (1 << 20)
			}
			return out
		}
		at := make([]float64, len(ss))
		lags := make([]float64, len(ss))
		for i, s := range ss {
			at[i] = s.At / 60
			var lag uint64
			for _, st := range s.Steps {
				lag += st.Lag
			}
			lags[i] = float64(lag)
			h.maxLag = max(h.maxLag, lag)
		}
		rss := mib(func(s Sample) int64 { return s.RSSBytes })
		h.rssMiB, h.rssSlope, h.lagSlope = median(rss), slope(at, rss), slope(at, lags)
		h.goMiB = median(mib(func(s Sample) int64 { return s.GoBytes }))
		h.duckMiB = median(mib(func(s Sample) int64 { return s.DuckDBBytes }))
		h.duckAllocMiB = median(mib(func(s Sample) int64 { return s.DuckDBAllocatedBytes }))
		h.duckResidentMiB = median(mib(func(s Sample) int64 { return s.DuckDBResidentBytes }))
		h.mallocInUseMiB = median(mib(func(s Sample) int64 { return s.MallocInUseBytes }))
		h.mallocFreeMiB = median(mib(func(s Sample) int64 { return s.MallocFreeBytes }))
		h.fileMiB = median(mib(func(s Sample) int64 { return s.FileBytes }))
		return h
	}
	return sum(samples[:mid]), sum(samples[mid:])
}

// slope is the least-squares slope of y over x; 0 for fewer than two
// distinct x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx, sy = sx+x[i], sy+y[i]
		sxx, sxy = sxx+x[i]*x[i], sxy+x[i]*y[i]
	}
	d := n*sxx - sx*sx
	if n < 2 || d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	for i := 1; i < len(s); i++ { // small slices: insertion sort
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s[len(s)/2]
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

const (
	svgW, svgH          = 720, 320
	padL, padR          = 70, 20
	padT, padB          = 30, 60
	plotW, plotH        = svgW - padL - padR, svgH - padT - padB
	svgFont             = `font-family="sans-serif" font-size="11"`
	barColor, lineColor = "#4878a8", "#c8553d"
)

// latencySVG draws the latency buckets as bars on a log-spaced axis,
// with the p50/p99 marks.
func latencySVG(l Latency) []byte {
	var b bytes.Buffer
	svgOpen(&b, "Publish-to-commit latency")
	var peak int64
	for _, k := range l.Buckets {
		peak = max(peak, k.Count)
	}
	n := len(l.Buckets)
	bw := float64(plotW) / float64(max(n, 1))
	for i, k := range l.Buckets {
		h := float64(k.Count) / float64(max(peak, 1)) * plotH
		x := padL + float64(i)*bw
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>&lt;= %s: %d</title></rect>`+"\n",
			x+1, padT+plotH-h, bw-2, h, barColor, html.EscapeString(ms(k.UpToMs)), k.Count)
		if n <= 16 || i%2 == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" %s text-anchor="end" transform="rotate(-45 %.1f %d)">%s</text>`+"\n",
				x+bw/2, padT+plotH+14, svgFont, x+bw/2, padT+plotH+14, html.EscapeString(ms(k.UpToMs)))
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s>records per latency bucket (upper bound); p50 %s, p90 %s, p99 %s, max %s</text>`+"\n",
		padL, padT-10, svgFont, ms(l.P50Ms), ms(l.P90Ms), ms(l.P99Ms), ms(l.MaxMs))
	axes(&b, fmt.Sprint(peak), "0")
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// timelineSVG draws resident memory (bars' colour) and total lag (line)
// over the run.
func timelineSVG(samples []Sample) []byte {
	var b bytes.Buffer
	svgOpen(&b, "Memory and lag over time")
	end := samples[len(samples)-1].At
	var peakRSS float64
	var peakLag uint64
	lags := make([]uint64, len(samples))
	for i, s := range samples {
		peakRSS = math.Max(peakRSS, float64(s.RSSBytes))
		for _, st := range s.Steps {
			lags[i] += st.Lag
		}
		peakLag = max(peakLag, lags[i])
	}
	x := func(at float64) float64 { return padL + at/math.Max(end, 1e-9)*plotW }
	y := func(v, peak float64) float64 { return padT + plotH - v/math.Max(peak, 1)*plotH }
	var rss, goMem, lag strings.Builder
	for i, s := range samples {
		fmt.Fprintf(&rss, "%.1f,%.1f ", x(s.At), y(float64(s.RSSBytes), peakRSS))
		fmt.Fprintf(&goMem, "%.1f,%.1f ", x(s.At), y(float64(s.GoBytes), peakRSS))
		fmt.Fprintf(&lag, "%.1f,%.1f ", x(s.At), y(float64(lags[i]), float64(peakLag)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", rss.String(), barColor)
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5" stroke-dasharray="5,3"/>`+"\n", goMem.String(), barColor)
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>`+"\n", lag.String(), lineColor)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s fill="%s">resident memory (peak %.0f MiB; dashed: of it Go)</text>`+"\n", padL, padT-10, svgFont, barColor, peakRSS/(1<<20))
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s fill="%s">lag, messages (peak %d)</text>`+"\n", padL+360, padT-10, svgFont, lineColor, peakLag)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s text-anchor="end">%.0fs</text>`+"\n", padL+plotW, padT+plotH+16, svgFont, end)
	fmt.Fprintf(&b, `<text x="%d" y="%d" %s>0s</text>`+"\n", padL, padT+plotH+16, svgFont)
	axes(&b, "peak", "0")
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func svgOpen(b *bytes.Buffer, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(b, `<title>%s</title><rect width="100%%" height="100%%" fill="white"/>`+"\n", html.EscapeString(title))
}

func axes(b *bytes.Buffer, top, bottom string) {
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", padL, padT, padL, padT+plotH)
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>`+"\n", padL, padT+plotH, padL+plotW, padT+plotH)
	fmt.Fprintf(b, `<text x="%d" y="%d" %s text-anchor="end">%s</text>`+"\n", padL-4, padT+4, svgFont, html.EscapeString(top))
	fmt.Fprintf(b, `<text x="%d" y="%d" %s text-anchor="end">%s</text>`+"\n", padL-4, padT+plotH, svgFont, html.EscapeString(bottom))
}

package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// progress writes one line about a finished run to w.
func progress(w io.Writer, prefix string, r result) {
	line := fmt.Sprintf("%sc=%d %s: %s/s p50 %s ms p99 %s ms, %d errors", prefix, r.concurrency, r.scenario,
		thousands(r.rate()), ms(r.p50), ms(r.p99), r.errors)
	if r.firstErr != nil {
		line += fmt.Sprintf(" (first: %v)", r.firstErr)
	}
	fmt.Fprintln(w, line)
}

// writeResults writes one Markdown table row per run.
func writeResults(w io.Writer, results []result) {
	fmt.Fprintln(w, "| scenario | c | req/s | p50 ms | p99 ms | errors |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|")
	for _, r := range results {
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %d |\n", r.scenario, r.concurrency, thousands(r.rate()), ms(r.p50), ms(r.p99), r.errors)
	}
}

// ms formats a duration in milliseconds, with more digits below 10 ms.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return strconv.FormatFloat(f, 'f', 2, 64)
	case f < 100:
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

// thousands formats a rate: below 100 with one decimal, else a whole
// number with thousands separators.
func thousands(f float64) string {
	if f < 100 {
		return strconv.FormatFloat(f, 'f', 1, 64)
	}
	s := strconv.FormatInt(int64(math.Round(f)), 10)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

// median returns the median of xs (the mean of the middle two for an even
// count), or NaN when empty.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// medianDuration is median for durations.
func medianDuration(ds []time.Duration) time.Duration {
	fs := make([]float64, len(ds))
	for i, d := range ds {
		fs[i] = float64(d)
	}
	return time.Duration(median(fs))
}

// backendRun is everything bench measured on one database.
type backendRun struct {
	name   string     // "SQLite", "MariaDB 10.11.19", …
	mysql  bool       // MySQL or MariaDB: issue 9's MySQL goals apply
	rounds [][]result // rounds[i] holds round i's results
	mem    memory
	conc   []int
}

// memory is what /proc/PID/status said about both servers, in KiB.
type memory struct {
	portcullisIdle, portcullisAfter, portcullisPeak int64
	userapiIdle, userapiAfter, userapiPeak          int64
}

// cell returns the results of sc at c, one per round.
func (b *backendRun) cell(sc string, c int) []result {
	var out []result
	for _, round := range b.rounds {
		for _, r := range round {
			if r.scenario == sc && r.concurrency == c {
				out = append(out, r)
			}
		}
	}
	return out
}

// rate returns the median rate of sc at c over the rounds and the spread:
// half the range, relative to the median. ok is false without results.
func (b *backendRun) rate(sc string, c int) (med, spread float64, ok bool) {
	rates := b.rates(sc, c)
	if len(rates) == 0 {
		return 0, 0, false
	}
	med = median(rates)
	if med > 0 {
		spread = (slices.Max(rates) - slices.Min(rates)) / 2 / med
	}
	return med, spread, true
}

// ratios returns, per round that measured both, rate(num)/rate(den) at
// c: both measured in the same round, one after the other.
func (b *backendRun) ratios(num, den string, c int) []float64 {
	var rs []float64
	for _, round := range b.rounds {
		var n, d float64
		var haveN, haveD bool
		for _, r := range round {
			if r.concurrency != c {
				continue
			}
			switch r.scenario {
			case num:
				n, haveN = r.rate(), true
			case den:
				d, haveD = r.rate(), true
			}
		}
		if haveN && haveD && d > 0 {
			rs = append(rs, n/d)
		}
	}
	return rs
}

// rates returns the rate of sc at c in each round.
func (b *backendRun) rates(sc string, c int) []float64 {
	var out []float64
	for _, r := range b.cell(sc, c) {
		out = append(out, r.rate())
	}
	return out
}

// errorCount returns the errors of sc over every round and concurrency.
func (b *backendRun) errorCount(sc string) int64 {
	var n int64
	for _, round := range b.rounds {
		for _, r := range round {
			if r.scenario == sc {
				n += r.errors
			}
		}
	}
	return n
}

// writeTable writes b's results as one Markdown table: a row per
// scenario, per concurrency the median rate ± spread and the median p50
// and p99.
func (b *backendRun) writeTable(w io.Writer) {
	head, rule := "| scenario |", "|---|"
	for _, c := range b.conc {
		head += fmt.Sprintf(" c=%d req/s | p50 / p99 ms |", c)
		rule += "--:|--:|"
	}
	fmt.Fprintln(w, head+" errors |")
	fmt.Fprintln(w, rule+"--:|")
	for _, sc := range scenarioNames() {
		if len(b.cell(sc, b.conc[0])) == 0 {
			continue
		}
		row := "| " + sc + " |"
		for _, c := range b.conc {
			med, spread, _ := b.rate(sc, c)
			var p50, p99 []time.Duration
			for _, r := range b.cell(sc, c) {
				p50, p99 = append(p50, r.p50), append(p99, r.p99)
			}
			row += fmt.Sprintf(" %s ±%.0f%% | %s / %s |", thousands(med), 100*spread, ms(medianDuration(p50)), ms(medianDuration(p99)))
		}
		fmt.Fprintf(w, "%s %d |\n", row, b.errorCount(sc))
	}
}

// mib formats KiB as MiB.
func mib(kib int64) string { return strconv.FormatFloat(float64(kib)/1024, 'f', 1, 64) }

// writeMemory writes the memory table of b.
func (b *backendRun) writeMemory(w io.Writer) {
	fmt.Fprintln(w, "| process | idle after first token (VmRSS) | idle after the load (VmRSS) | peak (VmHWM) |")
	fmt.Fprintln(w, "|---|--:|--:|--:|")
	fmt.Fprintf(w, "| portcullis | %s MiB | %s MiB | %s MiB |\n", mib(b.mem.portcullisIdle), mib(b.mem.portcullisAfter), mib(b.mem.portcullisPeak))
	fmt.Fprintf(w, "| userapi | %s MiB | %s MiB | %s MiB |\n", mib(b.mem.userapiIdle), mib(b.mem.userapiAfter), mib(b.mem.userapiPeak))
}

// goalRow is one target of issue 9 with the figure measured.
type goalRow struct {
	what, goal, measured string
	rounds               string  // the figure in each round, when it is measured per round
	ratio                float64 // measured ÷ goal
	met                  bool
}

// goals evaluates issue 9's targets on b: throughput at the highest
// concurrency run (the figures are at c=32), ratios measured
// within each round (password at every concurrency), idle memory. Each
// figure is the median over the rounds.
func (b *backendRun) goals() []goalRow {
	var rows []goalRow
	cmax := slices.Max(b.conc)
	throughput := func(sc string, sqlite, mysqlGoal float64) {
		goal := sqlite
		if b.mysql {
			goal = mysqlGoal
		}
		rates := b.rates(sc, cmax)
		if len(rates) == 0 {
			return
		}
		got := median(rates)
		rows = append(rows, goalRow{what: fmt.Sprintf("%s c=%d", sc, cmax), goal: "≥ " + thousands(goal) + "/s", measured: thousands(got) + "/s",
			rounds: joinFloats(rates, thousands), ratio: got / goal, met: got >= goal})
	}
	throughput("client_credentials", 8000, 5000)
	throughput("introspect", 8000, 8000)
	throughput("refresh", 2000, 1000)
	percent := func(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" }
	share := func(num, den string, c int, goal float64) {
		rs := b.ratios(num, den, c)
		if len(rs) == 0 {
			return
		}
		got := median(rs)
		rows = append(rows, goalRow{what: fmt.Sprintf("%s / %s c=%d", num, den, c), goal: fmt.Sprintf("≥ %.0f%%", 100*goal),
			measured: fmt.Sprintf("%.1f%%", 100*got), rounds: joinFloats(rs, percent), ratio: got / goal, met: got >= goal})
	}
	for _, c := range b.conc {
		share("password", "argon2", c, 0.90)
	}
	share("jwks", "trivial", cmax, 0.85)
	share("usersme", "userapi_trivial", cmax, 0.90)
	atMost := func(what string, kib int64, goalMiB float64) {
		got := float64(kib) / 1024
		rows = append(rows, goalRow{what: what, goal: fmt.Sprintf("≤ %.0f MiB", goalMiB), measured: mib(kib) + " MiB", ratio: got / goalMiB, met: got <= goalMiB})
	}
	atMost("portcullis idle RSS after first token", b.mem.portcullisIdle, 40)
	atMost("userapi idle RSS after first token", b.mem.userapiIdle, 20)
	return rows
}

// joinFloats formats each of fs with format, comma-separated.
func joinFloats(fs []float64, format func(float64) string) string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = format(f)
	}
	return strings.Join(out, ", ")
}

// writeGoals writes the targets table of b.
func (b *backendRun) writeGoals(w io.Writer) {
	fmt.Fprintln(w, "| target (issue 9) | goal | measured (median) | measured ÷ goal | met | each round |")
	fmt.Fprintln(w, "|---|--:|--:|--:|---|---|")
	for _, g := range b.goals() {
		met := "no"
		if g.met {
			met = "yes"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %.2f | %s | %s |\n", g.what, g.goal, g.measured, g.ratio, met, g.rounds)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op is one request of a worker; it returns an error when the request
// failed or its answer was not the expected one. It must not keep ctx.
type op func(ctx context.Context) error

// scenario is one kind of request.
type scenario struct {
	name string
	// maxWorkers caps the number of workers (argon2: GOMAXPROCS); 0 means
	// no cap.
	maxWorkers int
	// baseline names the scenario this one is compared to (issue 9's
	// ratios); they run interleaved (loadPair) when both run.
	baseline string
	// prepare readies worker i, untimed (logins, tokens), and returns the
	// request it repeats. It is called for one worker at a time.
	prepare func(ctx context.Context, h *harness, i int) (op, error)
}

// workers returns how many workers sc runs at concurrency c.
func (sc scenario) workers(c int) int {
	if sc.maxWorkers > 0 {
		return min(c, sc.maxWorkers)
	}
	return c
}

// bounds stop a load run: whichever comes first.
type bounds struct {
	duration time.Duration // > 0
	requests int64         // total over all workers; 0 means no limit
}

// result is one scenario run at one concurrency.
type result struct {
	scenario    string
	concurrency int // as asked; the workers actually run may be fewer (scenario.maxWorkers)
	workers     int
	ok          int64 // requests that succeeded
	errors      int64
	firstErr    error
	elapsed     time.Duration
	p50, p99    time.Duration // of the successful requests
	// cpu is the CPU time the measured processes used during the run
	// (runState.cpu); 0 when not measured.
	cpu time.Duration
}

// rate is the successful requests per second.
func (r result) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ok) / r.elapsed.Seconds()
}

// load runs sc with c workers within b. It returns an error only when a
// worker cannot be prepared or ctx ends; failed requests are counted in
// the result.
func load(ctx context.Context, h *harness, sc scenario, c int, b bounds) (result, error) {
	h.connect(sc.workers(c))
	defer h.disconnect()
	p, err := prepareRun(ctx, h, sc, c)
	if err != nil {
		return result{}, err
	}
	if err := p.run(ctx, b.duration, b.requests); err != nil {
		return result{}, err
	}
	return p.result(), nil
}

// loadPair runs a and b with c workers each, alternating between them in
// slices of b.duration/slices, so that whatever else runs on the machine
// meanwhile weighs on both alike: for ratios such as jwks to trivial. Each
// gets b.duration in all, and at most b.requests requests.
func loadPair(ctx context.Context, h *harness, a, b scenario, c int, bd bounds, slices int) (result, result, error) {
	h.connect(max(a.workers(c), b.workers(c)))
	defer h.disconnect()
	pa, err := prepareRun(ctx, h, a, c)
	if err != nil {
		return result{}, result{}, err
	}
	pb, err := prepareRun(ctx, h, b, c)
	if err != nil {
		return result{}, result{}, err
	}
	if err := alternate(ctx, bd, slices, pa, pb); err != nil {
		return result{}, result{}, err
	}
	return pa.result(), pb.result(), nil
}

// alternate runs each of ps in turn in slices of bd.duration/slices, so
// that whatever else runs on the machine meanwhile weighs on all alike.
// Each gets bd.duration in all, and at most bd.requests requests.
func alternate(ctx context.Context, bd bounds, slices int, ps ...*runState) error {
	slice := bd.duration / time.Duration(slices)
	for range slices {
		for _, p := range ps {
			if err := p.run(ctx, slice, bd.requests); err != nil {
				return err
			}
		}
	}
	return nil
}

// runAll runs scenarios at concurrency c, in order, and calls report
// with each result. A scenario directly preceded by its baseline runs
// interleaved with it (loadPair, in slices); the others run alone (load).
func runAll(ctx context.Context, h *harness, scs []scenario, c int, b bounds, slices int, report func(result)) ([]result, error) {
	var out []result
	for i := 0; i < len(scs); i++ {
		if i+1 < len(scs) && scs[i+1].baseline == scs[i].name {
			ra, rb, err := loadPair(ctx, h, scs[i], scs[i+1], c, b, slices)
			if err != nil {
				return nil, err
			}
			report(ra)
			report(rb)
			out = append(out, ra, rb)
			i++
			continue
		}
		r, err := load(ctx, h, scs[i], c, b)
		if err != nil {
			return nil, err
		}
		report(r)
		out = append(out, r)
	}
	return out, nil
}

// runState is a prepared scenario and what its runs have measured so far.
type runState struct {
	sc       scenario
	c        int
	ops      []op
	issued   atomic.Int64
	failed   atomic.Int64
	errOnce  sync.Once
	firstErr error
	lat      []time.Duration
	elapsed  time.Duration
	// cpu, when set, returns the CPU time used so far by the processes
	// serving the scenario; run adds what they use meanwhile to cpuUsed.
	cpu     func() time.Duration
	cpuUsed time.Duration
}

// prepareRun prepares sc's workers for concurrency c.
func prepareRun(ctx context.Context, h *harness, sc scenario, c int) (*runState, error) {
	p := &runState{sc: sc, c: c, ops: make([]op, sc.workers(c))}
	for i := range p.ops {
		o, err := sc.prepare(ctx, h, i)
		if err != nil {
			return nil, fmt.Errorf("%s: prepare worker %d: %w", sc.name, i, err)
		}
		p.ops[i] = o
	}
	return p, nil
}

// run runs every worker for d, or until limit requests (over every run of
// p; 0 means no limit) have been issued, and adds the time until the last
// request in flight has finished to p's elapsed time. It returns an error
// only when ctx ends.
func (p *runState) run(ctx context.Context, d time.Duration, limit int64) error {
	if limit > 0 && p.issued.Load() >= limit {
		return nil
	}
	lat := make([][]time.Duration, len(p.ops))
	var wg sync.WaitGroup
	if p.cpu != nil {
		before := p.cpu()
		defer func() { p.cpuUsed += p.cpu() - before }()
	}
	start := time.Now()
	deadline := start.Add(d)
	for i, o := range p.ops {
		wg.Go(func() {
			mine := make([]time.Duration, 0, 256)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if limit > 0 && p.issued.Add(1) > limit {
					break
				}
				t0 := time.Now()
				if err := o(ctx); err != nil {
					p.failed.Add(1)
					p.errOnce.Do(func() { p.firstErr = err })
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			lat[i] = mine
		})
	}
	wg.Wait()
	p.elapsed += time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	p.lat = slices.Concat(append(lat, p.lat)...)
	return nil
}

// result summarises every run of p.
func (p *runState) result() result {
	slices.Sort(p.lat)
	r := result{scenario: p.sc.name, concurrency: p.c, workers: len(p.ops), ok: int64(len(p.lat)), errors: p.failed.Load(),
		firstErr: p.firstErr, elapsed: p.elapsed, p50: percentile(p.lat, 0.50), p99: percentile(p.lat, 0.99), cpu: p.cpuUsed}
	if r.ok == 0 && r.errors == 0 {
		r.errors, r.firstErr = 1, errors.New("no request completed within the bounds")
	}
	return r
}

// percentile returns the p-quantile (nearest rank) of sorted, or 0 when it
// is empty.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

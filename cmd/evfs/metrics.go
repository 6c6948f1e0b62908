package main

// Prometheus metrics (`evfs mount --metrics-addr`). The collector takes one
// snapshot per scrape through the loop (fs.Mount.Snapshot) and turns it
// into const metrics; nothing is recorded twice and the hot path is not
// touched. Metric names are listed in docs/STATS.md.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"evfs/fs"
	"evfs/loop"
)

// metricsTimeout bounds one scrape's wait for the loop.
const metricsTimeout = 5 * time.Second

func metricDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	mInfo          = metricDesc("evfs_info", "Constant 1, labelled with the mount's description.", "mountpoint", "backing", "backend", "version")
	mRequests      = metricDesc("evfs_requests_total", "FUSE requests answered, by operation.", "op")
	mRequestErrors = metricDesc("evfs_request_errors_total", "FUSE requests answered with an error, by operation.", "op")
	mRequestDur    = metricDesc("evfs_request_duration_seconds", "Time from the bridge receiving a FUSE request to the loop answering it, by operation.", "op")
	mInflight      = metricDesc("evfs_inflight_ops", "Backend operations submitted and not yet completed.")
	mQueueDepth    = metricDesc("evfs_queue_depth", "Events posted to the loop and not yet run.")
	mEvents        = metricDesc("evfs_loop_events_total", "Events the loop has run (requests, timers, stats requests, ...).")
	mPosts         = metricDesc("evfs_loop_posts_total", "Events posted to the loop from other goroutines.")
	mWakes         = metricDesc("evfs_loop_wakes_total", "Wakeups delivered to the loop (posts coalesce into fewer wakes).")
	mBusy          = metricDesc("evfs_loop_busy_seconds_total", "Time the loop spent running events and continuations.")
	mWait          = metricDesc("evfs_loop_wait_seconds_total", "Time the loop spent asleep, waiting for events.")
	mLongest       = metricDesc("evfs_loop_longest_handler_seconds", "Longest single event or continuation run since the mount.")
	mStalls        = metricDesc("evfs_loop_stalls_total", "Event or continuation runs longer than the stall threshold.")
	mSpins         = metricDesc("evfs_loop_spins_total", "Times the loop polled for new work before sleeping (--spin).")
	mShortSpins    = metricDesc("evfs_loop_short_spins_total", "Of those, spins of a fifth of --spin, while requests came one at a time (--short-spin).")
	mMoves         = metricDesc("evfs_loop_moves_total", "Times the loop moved its thread to its client's CPU (--follow-client).")
	mUnknown       = metricDesc("evfs_loop_unknown_completions_total", "Completions with no continuation (bugs).")
	mNodes         = metricDesc("evfs_nodes", "Inodes the kernel knows through this mount (node table entries, root included).")
	mNodeFds       = metricDesc("evfs_node_fds", "O_PATH fds the node table owns (an open file's node fd holds its handle's file, owned by the handle).")
	mHandles       = metricDesc("evfs_open_handles", "Open files and directories (handle table entries).")
	mEvictions     = metricDesc("evfs_node_evictions_total", "Batches of names the kernel was asked to forget because node fds reached their budget.")
	mOrderedIO     = metricDesc("evfs_ordered_io_total", "READs and WRITEs that waited for an earlier overlapping one to finish.")
	mBSubmitted    = metricDesc("evfs_backend_submitted_total", "Operations submitted to the asynchronous I/O backend.", "backend")
	mBCompleted    = metricDesc("evfs_backend_completed_total", "Operations the backend completed.", "backend")
	mBFallbacks    = metricDesc("evfs_backend_fallbacks_total", "Operations the uring backend handed to its worker pool.", "backend")
	mBInline       = metricDesc("evfs_backend_inline_total", "Operations completed on the spot, without a worker or the ring (non-blocking first attempts).", "backend")
	mBRingFull     = metricDesc("evfs_backend_ring_full_total", "Times the uring submission queue was full.", "backend")
)

// metricsCollector is a prometheus.Collector over one mount. Safe for
// concurrent use: each Collect takes its own snapshot through the loop.
type metricsCollector struct {
	snap func(context.Context) (fs.Snapshot, error)
	meta statsMeta
}

func (c *metricsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mInfo, mRequests, mRequestErrors, mRequestDur, mInflight, mQueueDepth,
		mEvents, mPosts, mWakes, mBusy, mWait, mLongest, mStalls, mSpins, mShortSpins, mMoves, mUnknown,
		mNodes, mNodeFds, mHandles, mEvictions, mOrderedIO,
		mBSubmitted, mBCompleted, mBFallbacks, mBInline, mBRingFull} {
		ch <- d
	}
}

func (c *metricsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsTimeout)
	defer cancel()
	s, err := c.snap(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(mRequests, fmt.Errorf("evfs statistics unavailable: %w", err))
		return
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(mInfo, 1, c.meta.Mountpoint, c.meta.Backing, c.meta.Backend, version)
	for i := range s.Ops {
		o := &s.Ops[i]
		counter(mRequests, float64(o.Count), o.Name)
		counter(mRequestErrors, float64(o.Errors), o.Name)
		count, buckets := promBuckets(&o.Latency)
		ch <- prometheus.MustNewConstHistogram(mRequestDur, count, o.Latency.Sum.Seconds(), buckets, o.Name)
	}
	l := &s.Loop
	gauge(mInflight, float64(l.InFlight))
	gauge(mQueueDepth, float64(l.QueueDepth))
	counter(mEvents, float64(l.Events))
	counter(mPosts, float64(l.Posts))
	counter(mWakes, float64(l.Wakes))
	counter(mBusy, l.Busy.Seconds())
	counter(mWait, l.Waiting.Seconds())
	gauge(mLongest, l.Longest.Seconds())
	counter(mStalls, float64(l.Stalls))
	counter(mSpins, float64(l.Spins))
	counter(mShortSpins, float64(l.ShortSpins))
	counter(mMoves, float64(l.Moves))
	counter(mUnknown, float64(l.Unknown))
	gauge(mNodes, float64(s.Tables.Nodes))
	gauge(mNodeFds, float64(s.Tables.NodeFds))
	gauge(mHandles, float64(s.Tables.Handles))
	counter(mEvictions, float64(s.Tables.Evictions))
	counter(mOrderedIO, float64(s.OrderedIO))
	b := c.meta.Backend
	counter(mBSubmitted, float64(l.Backend.Submitted), b)
	counter(mBCompleted, float64(l.Backend.Completed), b)
	counter(mBFallbacks, float64(l.Backend.Fallbacks), b)
	counter(mBInline, float64(l.Backend.Inline), b)
	counter(mBRingFull, float64(l.Backend.RingFull), b)
}

// promBuckets turns a loop.Histogram into Prometheus's cumulative buckets
// keyed by upper bound in seconds; the last bucket (no upper edge) is
// +Inf, which Prometheus derives from the count.
func promBuckets(h *loop.Histogram) (uint64, map[float64]uint64) {
	buckets := make(map[float64]uint64, loop.HistBuckets-1)
	var cum uint64
	for i := 0; i < loop.HistBuckets-1; i++ {
		cum += h.Counts[i]
		buckets[loop.UpperBound(i).Seconds()] = cum
	}
	return cum + h.Counts[loop.HistBuckets-1], buckets
}

// checkMetricsAddr refuses an address that is not HOST:PORT, and one that
// is not loopback unless allowRemote: the endpoint is unauthenticated.
func checkMetricsAddr(addr string, allowRemote bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--metrics-addr %q: %v (want HOST:PORT, e.g. 127.0.0.1:9464)", addr, err)
	}
	if allowRemote || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return usagef("--metrics-addr %s is not a loopback address; the metrics are unauthenticated: add --metrics-allow-remote to serve them beyond this machine", addr)
	}
	return nil
}

// metricsServer serves /metrics on a listener bound before the mount.
type metricsServer struct {
	ln  net.Listener
	srv *http.Server
}

func listenMetrics(addr string) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	return &metricsServer{ln: ln}, nil
}

// serve starts answering scrapes with c (plus the Go runtime's and the
// process's standard collectors).
func (ms *metricsServer) serve(c prometheus.Collector, log *slog.Logger) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Timeout:       2 * metricsTimeout,
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "evfs: metrics at /metrics")
	})
	ms.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := ms.srv.Serve(ms.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
}

// Close stops the server (or just the listener if it never served).
func (ms *metricsServer) Close() {
	if ms.srv != nil {
		ms.srv.Close()
		return
	}
	ms.ln.Close()
}

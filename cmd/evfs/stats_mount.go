package main

// What `evfs mount` adds for observability: the control socket (always),
// the Prometheus endpoint (--metrics-addr) and the stall detector's
// threshold (--stall-threshold).

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"evfs/fs"
	"evfs/loop"
)

func observabilityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "stall-threshold", Value: loop.DefaultStall, Usage: "log \"loop stalled\" (a warning naming the event) when one event or continuation holds the loop longer than this; 0 turns the detector off"},
		&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at http://`HOST:PORT`/metrics (e.g. 127.0.0.1:9464); off by default; loopback only unless --metrics-allow-remote"},
		&cli.BoolFlag{Name: "metrics-allow-remote", Usage: "allow a --metrics-addr that is not a loopback address (the endpoint has no authentication)"},
	}
}

// observability is a mount's control socket and metrics server. Bound
// before the mount appears (so a client that sees the mount finds the
// socket), served once it is up, closed when the kernel connection ends.
type observability struct {
	meta    statsMeta
	log     *slog.Logger
	control *controlServer // nil if no runtime directory was usable
	metrics *metricsServer // nil without --metrics-addr
	stall   time.Duration  // as given: 0 = off
	once    sync.Once
}

// newObservability validates the flags and binds the sockets. Call it
// after the mountpoint checks (it replaces a stale control socket, which
// must not be a live mount's).
func newObservability(c *cli.Context, mountpoint, backing string, log *slog.Logger) (*observability, error) {
	o := &observability{log: log, stall: c.Duration("stall-threshold"),
		meta: statsMeta{Mountpoint: mountpoint, Backing: backing}}
	if o.stall < 0 {
		return nil, usagef("--stall-threshold must not be negative (0 turns the detector off)")
	}
	o.meta.Stall = o.stall
	if addr := c.String("metrics-addr"); addr != "" {
		if err := checkMetricsAddr(addr, c.Bool("metrics-allow-remote")); err != nil {
			return nil, err
		}
		ms, err := listenMetrics(addr)
		if err != nil {
			return nil, err
		}
		o.metrics = ms
	}
	cs, err := listenControl(mountpoint, log)
	if err != nil {
		log.Warn("serving without a control socket: evfs stats will not work for this mount", "err", err)
	} else {
		o.control = cs
	}
	return o, nil
}

// loopStall is the threshold in fs.Config/loop.Config terms (< 0 = off).
func (o *observability) loopStall() time.Duration {
	if o.stall == 0 {
		return -1
	}
	return o.stall
}

// start serves the statistics of m until its kernel connection ends.
func (o *observability) start(m *fs.Mount) {
	o.meta.Backend = m.Loop.Backend()
	o.meta.Started = time.Now()
	meta := o.meta
	if o.control != nil {
		o.control.serve(func(ctx context.Context) ([]byte, error) {
			s, err := m.Snapshot(ctx)
			if err != nil {
				return nil, err
			}
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetIndent("", "  ")
			err = enc.Encode(newStatsDoc(meta, s))
			return buf.Bytes(), err
		})
		o.log.Info("control socket", "path", o.control.path)
	}
	if o.metrics != nil {
		o.metrics.serve(&metricsCollector{snap: m.Snapshot, meta: meta}, o.log)
		o.log.Info("serving metrics", "url", "http://"+o.metrics.ln.Addr().String()+"/metrics")
	}
	// Stop before the loop does: after unmount it runs no more events.
	go func() {
		<-m.Served()
		o.close()
	}()
}

// close removes the control socket and stops the metrics server.
// Idempotent; safe from any goroutine.
func (o *observability) close() {
	o.once.Do(func() {
		if o.control != nil {
			o.control.Close()
		}
		if o.metrics != nil {
			o.metrics.Close()
		}
	})
}

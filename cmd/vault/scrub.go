package main

import (
	"context"
	"flag"
	"log/slog"
	"time"

	"github.com/jupyterhealth/vault/store/postgres"
)

// defaultScrubInterval is how often serve on PostgreSQL scrubs deleted
// patients' keys out of the tables' files unless --scrub-interval says
// otherwise: a day, so a deleted key's bytes leave the live database
// files within a day (docs/scaling.md, "Crypto-shredding on PostgreSQL").
const defaultScrubInterval = 24 * time.Hour

// scrubber is a backend whose deleted rows outlive their deletion in its
// files until it is scrubbed: PostgreSQL's. bbolt compacts its file in
// DeletePatient itself, and has no scrub.
type scrubber interface {
	Scrub(ctx context.Context, o postgres.ScrubOptions) (postgres.ScrubResult, error)
}

// scrubPlan is serve's --scrub-interval and --scrub-records.
type scrubPlan struct {
	every   time.Duration // 0: never
	records bool
}

func scrubSchedule(fs *flag.FlagSet) scrubPlan {
	return scrubPlan{
		every:   fs.Lookup("scrub-interval").Value.(flag.Getter).Get().(time.Duration),
		records: fs.Lookup("scrub-records").Value.(flag.Getter).Get().(bool),
	}
}

// runScrubs scrubs st every plan.every until ctx ends; it returns at once
// for a backend without a scrub or with the schedule off. The first scrub
// is one interval after the start, so a restart (or a replica's start)
// does not lock the tables. A failed scrub is logged and tried again at
// the next tick: nothing is lost by waiting, the deleted rows are already
// gone from every query.
func runScrubs(ctx context.Context, st backend, plan scrubPlan, log *slog.Logger) {
	sc, ok := st.(scrubber)
	if !ok || plan.every <= 0 {
		return
	}
	tick := time.NewTicker(plan.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		res, err := sc.Scrub(ctx, postgres.ScrubOptions{Records: plan.records})
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			log.Error("scrub of deleted rows failed; it runs again at the next interval", "cause", err.Error(), "tables_done", res.Tables)
		case res.Skipped:
			log.Info("scrub skipped: another vault process on the database is scrubbing")
		default:
			log.Info("scrubbed deleted rows out of the tables' files", "tables", res.Tables, "ms", res.Took.Milliseconds())
		}
	}
}

package handler

import (
	"context"
	"time"
)

// scWithMaxTime returns ctx cancelled once maxTimeMS have passed (ctx itself when 0), and the
// function that releases it (stream-coordinator patch 18): an update waits for its
// collection's lock, reads and writes under it, and writes in a SQLite transaction that a
// cancelled context rolls back, so an update that runs out of time never lands afterwards.
// Cancelled rather than given a deadline, so that handleMaxTimeMSError (which looks for
// context.Canceled, as find's own maxTimeMS does) names the error MaxTimeMSExpired.
func scWithMaxTime(ctx context.Context, maxTimeMS int64) (context.Context, func()) {
	if maxTimeMS == 0 {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	t := time.AfterFunc(time.Duration(maxTimeMS)*time.Millisecond, cancel)
	return ctx, func() {
		t.Stop()
		cancel()
	}
}

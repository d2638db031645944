package handler

import (
	"context"
	"sync"
)

// scLocks holds one lock per "db.collection": update, findAndModify and delete read the
// matching documents and then write them by _id, so without a lock held from the read to
// the write two conditional updates of one document could both match (stream-coordinator
// patch 3, see src/provision/ferretdb-patches.ts). A lock is a channel of one slot, so that
// waiting for it can end with the command's deadline (patch 18).
var scLocks sync.Map

// scLockCollection locks the collection and returns the function that unlocks it.
func scLockCollection(db, collection string) func() {
	unlock, _ := scLockCollectionCtx(context.Background(), db, collection)
	return unlock
}

// scLockCollectionCtx locks the collection, or gives up when ctx is done first (its error).
func scLockCollectionCtx(ctx context.Context, db, collection string) (func(), error) {
	v, _ := scLocks.LoadOrStore(db+"."+collection, make(chan struct{}, 1))
	slot := v.(chan struct{})
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

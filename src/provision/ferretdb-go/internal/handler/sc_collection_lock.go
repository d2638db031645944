package handler

import "sync"

// scLocks holds one mutex per "db.collection": update, findAndModify and delete read the
// matching documents and then write them by _id, so without a lock held from the read to
// the write two conditional updates of one document could both match (stream-coordinator
// patch 3, see src/provision/ferretdb-patches.ts).
var scLocks sync.Map

// scLockCollection locks the collection's mutex and returns the function that unlocks it.
func scLockCollection(db, collection string) func() {
	v, _ := scLocks.LoadOrStore(db+"."+collection, new(sync.Mutex))
	m := v.(*sync.Mutex)
	m.Lock()
	return m.Unlock
}

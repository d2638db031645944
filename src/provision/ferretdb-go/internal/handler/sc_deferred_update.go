package handler

import (
	"context"

	"github.com/FerretDB/FerretDB/internal/backends"
	"github.com/FerretDB/FerretDB/internal/handler/sjson"
	"github.com/FerretDB/FerretDB/internal/types"
	"github.com/FerretDB/FerretDB/internal/util/lazyerrors"
)

// scDeferredUpdates holds the documents the statements of one update command modified, so
// that they are written in one SQLite transaction (stream-coordinator patch 17, see
// src/provision/ferretdb-patches.ts). v1.24.2 wrote each document in a transaction of its
// own, and each commit waits for the disk: a bulk write of many updates cost about 0.5 ms a
// document. The command holds the collection's lock (patch 3) until they are written.
type scDeferredUpdates struct {
	c    backends.Collection
	docs []*types.Document
	ids  map[string]struct{}
}

// scDeferringCollection is a collection whose UpdateAll keeps the documents for the flush.
type scDeferringCollection struct {
	backends.Collection
	d *scDeferredUpdates
}

// UpdateAll implements backends.Collection by keeping the documents until flush.
func (c scDeferringCollection) UpdateAll(_ context.Context, params *backends.UpdateAllParams) (*backends.UpdateAllResult, error) {
	for _, doc := range params.Docs {
		id, err := doc.Get("_id")
		if err != nil {
			return nil, lazyerrors.Error(err)
		}

		b, err := sjson.MarshalSingleValue(id)
		if err != nil {
			return nil, lazyerrors.Error(err)
		}

		c.d.ids[string(b)] = struct{}{}
	}

	c.d.docs = append(c.d.docs, params.Docs...)

	return &backends.UpdateAllResult{Updated: int32(len(params.Docs))}, nil
}

// wrap returns c with its UpdateAll deferred to flush.
func (d *scDeferredUpdates) wrap(c backends.Collection) backends.Collection {
	d.c = c
	if d.ids == nil {
		d.ids = map[string]struct{}{}
	}

	return scDeferringCollection{Collection: c, d: d}
}

// mustFlushBefore reports whether a statement with this filter could match a document held
// here, which SQLite still has in its old version: the held ones must be written first. Only
// an _id equal to a string or ObjectID that none of them has is sure not to; any other
// filter (no _id, an operator, another type that MongoDB may compare as equal across
// number types) flushes.
func (d *scDeferredUpdates) mustFlushBefore(filter *types.Document) bool {
	if len(d.docs) == 0 {
		return false
	}

	v, err := filter.Get("_id")
	if err != nil {
		return true
	}

	switch v.(type) {
	case string, types.ObjectID:
	default:
		return true
	}

	b, err := sjson.MarshalSingleValue(v)
	if err != nil {
		return true
	}

	_, held := d.ids[string(b)]

	return held
}

// flush writes the held documents in one transaction.
func (d *scDeferredUpdates) flush(ctx context.Context) error {
	if len(d.docs) == 0 {
		return nil
	}

	docs := d.docs
	d.docs = nil
	clear(d.ids)

	if _, err := d.c.UpdateAll(ctx, &backends.UpdateAllParams{Docs: docs}); err != nil {
		return lazyerrors.Error(err)
	}

	return nil
}

/**
 * Stream file bytes in MongoDB: inline as BSON binary up to `storage.inlineMaxBytes`
 * (one document, one round trip), GridFS above. Reads stream in chunks, never holding a
 * large file in memory.
 */
import { Binary, GridFSBucket, ObjectId, type Db, type WriteConcernSettings } from 'mongodb';
import type { StreamBody } from '../http/router';
import type { StoredFile } from '../model';

/** Metadata recorded with GridFS blobs, so leftovers can be traced to their stream. */
export interface BlobMeta {
  streamId: string;
  kind: 'seed' | 'tag' | 'frame' | 'checkpoint';
  partition: number;
}

/** How commit-path writes are made durable and bounded in time. */
export interface Durability {
  /** Write concern of partition documents, uploads and the commit point. */
  writeConcern?: WriteConcernSettings;
  /** Server-side time limit of each commit-path operation, ms. */
  maxTimeMS?: number;
  /** Aborts the operation (the commit point's window: store/commit.ts); not sent to the server. */
  signal?: AbortSignal;
}

/** Inline bytes one document may still take; {@link FileStore.put} spends it. */
export interface InlineBudget {
  left: number;
}

/** Inline/GridFS storage of file bytes. */
export class FileStore {
  readonly bucket: GridFSBucket;

  /**
   * @param inlineMaxBytes largest file stored inline (storage.inlineMaxBytes)
   * @param docInlineBytes most inline bytes of all files of one document
   *   (storage.maxInlineBytesPerDocument), far under MongoDB's 16 MiB document limit
   * @param durable write concern and time limit of the commit path (mongodb.commit*, mongodb.opTimeoutMs)
   */
  constructor(
    private readonly db: Db,
    private readonly inlineMaxBytes: number,
    private readonly docInlineBytes = 8 * 1024 * 1024,
    /** Applied by the commit path (partitions.ts, commit.ts) to every write it makes. */
    readonly durable: Durability = {},
  ) {
    this.bucket = new GridFSBucket(db, { bucketName: 'blobs', ...(durable.writeConcern ? { writeConcern: durable.writeConcern } : {}) });
  }

  /** A fresh inline budget for one document. */
  budget(): InlineBudget {
    return { left: this.docInlineBytes };
  }

  /**
   * Stores bytes inline or in GridFS and returns the reference to keep in a document. With a
   * budget, a file goes inline only while the document's inline total stays within it (the
   * decision is taken before the first await, so files put in order spend it in order).
   */
  async put(name: string, bytes: Buffer, meta: BlobMeta, budget?: InlineBudget): Promise<StoredFile> {
    if (bytes.length <= this.inlineMaxBytes && (!budget || budget.left >= bytes.length)) {
      if (budget) budget.left -= bytes.length;
      return { name, size: bytes.length, data: new Binary(bytes) };
    }
    const upload = this.bucket.openUploadStream(`${meta.streamId}/${meta.kind}/${meta.partition}/${name}`, { metadata: meta });
    try {
      await new Promise<void>((resolve, reject) => {
        upload.once('error', reject);
        upload.once('finish', () => resolve());
        upload.end(bytes);
      });
    } catch (err) {
      // The driver leaves the chunks it wrote, under no files document that anything would
      // find them by: remove them now (best effort: MongoDB may be why the upload failed).
      await this.bucket.delete(upload.id).catch(() => undefined);
      throw err;
    }
    return { name, size: bytes.length, gridfsId: upload.id };
  }

  /** The chunks of a stored file from byte `start` (default 0) on, read lazily. */
  async *chunks(file: StoredFile, start = 0): AsyncGenerator<Uint8Array> {
    if (start >= file.size) return;
    if (file.data) {
      yield start > 0 ? file.data.buffer.subarray(start) : file.data.buffer;
      return;
    }
    if (!file.gridfsId) return;
    // The driver needs `end` with `start` (it takes a missing end as 0 and throws).
    const download = this.bucket.openDownloadStream(file.gridfsId, start > 0 ? { start, end: file.size } : undefined);
    try {
      for await (const chunk of download) yield chunk as Buffer;
    } finally {
      download.destroy();
    }
  }

  /** A streamed body of one or more files, concatenated in order (and able to start mid-way, for Range requests). */
  body(files: StoredFile[]): StreamBody {
    const length = files.reduce((n, f) => n + f.size, 0);
    const self = this;
    const from = async function* (offset: number) {
      for (const f of files) {
        if (offset < f.size) yield* self.chunks(f, offset);
        offset = Math.max(0, offset - f.size);
      }
    };
    return { length, chunks: from(0), from };
  }

  /** Deletes the GridFS blobs of these files (inline bytes go with their document). */
  async removeBlobs(files: StoredFile[]): Promise<void> {
    for (const f of files) {
      if (f.gridfsId) await this.bucket.delete(f.gridfsId).catch(() => undefined);
    }
  }

  /** Deletes every GridFS blob of a stream. */
  async removeStreamBlobs(streamId: string): Promise<void> {
    const ids = await this.db
      .collection('blobs.files')
      .find({ 'metadata.streamId': streamId }, { projection: { _id: 1 } })
      .toArray();
    for (const { _id } of ids) await this.bucket.delete(_id as ObjectId).catch(() => undefined);
  }
}

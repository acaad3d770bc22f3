/**
 * A large file in parts (docs/uploads.md): Uppy's core with its S3 multipart uploader sends the
 * parts in parallel straight to storage; every step goes through the API, which signs each part's
 * PUT, lists what storage holds and completes the upload only when the parts add up.
 *
 * Resuming: each unfinished upload is remembered in localStorage (which job, which file), so after
 * a dropped connection, a reload or a closed tab, choosing the same file again lists the parts
 * storage already has (from the API, never from this record) and sends only the others.
 */

import { ApiError, request } from './api.js';

/** Parts in flight at once: a browser opens at most 6 connections to one host over HTTP/1.1. */
export const PARALLEL_PARTS = 6;
/** Part URLs asked for per API call (the API allows up to its maxPartsPerRequest). */
const SIGN_AHEAD = 24;
/** A signed URL closer than this to its expiry is signed again rather than used. */
const EXPIRY_MARGIN_MS = 60_000;
/** Headers a browser sets itself and refuses to let a page set. */
const BROWSER_HEADERS = new Set(['content-length', 'host', 'connection']);
const PENDING_KEY = 'vidproc.uploads.v1';

// --- the unfinished uploads this browser knows of -------------------------------------------------

/** Same name, size and modification time: the same file, as far as a browser can tell. */
function fingerprint(file) {
  return `${file.name}\u0000${file.size}\u0000${file.lastModified}`;
}

function readPending() {
  try {
    const records = JSON.parse(localStorage.getItem(PENDING_KEY) || '[]');
    return Array.isArray(records) ? records : [];
  } catch {
    return [];
  }
}

function writePending(records) {
  try {
    localStorage.setItem(PENDING_KEY, JSON.stringify(records));
  } catch {
    // Storage full or disabled: the upload works, it just cannot be resumed after a reload.
  }
}

export const pending = {
  /** The workspace's unfinished uploads, newest first; expired ones are forgotten. */
  list(workspaceId) {
    const now = Date.now();
    const live = readPending().filter((r) => !r.expiresAt || Date.parse(r.expiresAt) > now);
    writePending(live);
    return live.filter((r) => !workspaceId || r.workspaceId === workspaceId);
  },
  find(file, workspaceId) {
    return this.list(workspaceId).find((r) => r.fingerprint === fingerprint(file)) || null;
  },
  save(record) {
    writePending([record, ...readPending().filter((r) => r.jobId !== record.jobId)]);
  },
  update(jobId, changes) {
    writePending(readPending().map((r) => (r.jobId === jobId ? { ...r, ...changes } : r)));
  },
  drop(jobId) {
    writePending(readPending().filter((r) => r.jobId !== jobId));
  },
};

/** What to remember of a job created for `file` with a multipart upload. */
export function pendingRecord(file, job, upload, workspaceId) {
  return {
    fingerprint: fingerprint(file),
    jobId: job.id,
    workspaceId: workspaceId || job.workspaceId,
    name: file.name,
    size: file.size,
    partSize: upload.partSize,
    expiresAt: upload.expiresAt,
    storedBytes: 0,
  };
}

// --- signing parts, a batch at a time --------------------------------------------------------------

/** Signs part PUTs through the API, SIGN_AHEAD at a time, and hands each URL out once. */
class PartSigner {
  constructor(jobId, partCount, workspaceBody) {
    this.path = `/jobs/${encodeURIComponent(jobId)}/upload/parts`;
    this.partCount = partCount;
    this.workspaceBody = workspaceBody;
    this.signed = new Map(); // part number -> {part, expiresAt}
    this.asking = new Map(); // part number -> the request signing it
    this.skip = new Set(); // parts storage holds: never signed ahead
  }

  async sign(number, signal) {
    let entry = this.take(number);
    if (!entry) {
      if (!this.asking.has(number)) this.ask(number, signal);
      await this.asking.get(number);
      entry = this.take(number);
    }
    if (!entry) throw new ApiError(`Part ${number} could not be signed.`, { code: 'SIGN_FAILED' });
    const headers = {};
    for (const [name, value] of Object.entries(entry.part.headers || {})) {
      if (!BROWSER_HEADERS.has(name.toLowerCase())) headers[name] = value;
    }
    return { method: 'PUT', url: entry.part.url, headers };
  }

  /** A fresh URL for the part, removed from the cache: asked again means the last one failed. */
  take(number) {
    const entry = this.signed.get(number);
    this.signed.delete(number);
    return entry && entry.expiresAt - Date.now() > EXPIRY_MARGIN_MS ? entry : null;
  }

  ask(first, signal) {
    const batch = [];
    for (let n = first; n <= this.partCount && batch.length < SIGN_AHEAD; n += 1) {
      if (n === first || (!this.skip.has(n) && !this.signed.has(n) && !this.asking.has(n))) batch.push(n);
    }
    const asked = request(this.path, {
      method: 'POST',
      body: { partNumbers: batch, ...this.workspaceBody() },
      signal,
    }).then((answer) => {
      const expiresAt = Date.parse(answer.expiresAt);
      for (const part of answer.parts) this.signed.set(part.partNumber, { part, expiresAt });
    });
    const settled = asked.finally(() => batch.forEach((n) => this.asking.delete(n)));
    batch.forEach((n) => this.asking.set(n, settled));
    settled.catch(() => {}); // each caller awaits it and sees the error
  }
}

// --- one upload ----------------------------------------------------------------------------------

/**
 * Send the parts storage does not hold yet, then complete the upload. `stored` is the API's
 * list (GET /jobs/{id}/upload/parts). onProgress(sentBytes, totalBytes) counts the stored parts
 * too. Resolves when the upload is complete; rejects with an ApiError. `cancel()` on the returned
 * handle stops it and discards the upload.
 */
export function sendParts({ file, record, stored, workspaceBody, onProgress, onPartStored }) {
  const jobPath = `/jobs/${encodeURIComponent(record.jobId)}/upload`;
  const signer = new PartSigner(record.jobId, stored.partCount, workspaceBody);
  stored.parts.forEach((p) => signer.skip.add(p.partNumber));
  let listed = stored;
  let uppy = null;
  let cancelled = false;

  const done = (async () => {
    const { Uppy, AwsS3 } = await import('./vendor/uppy.js');
    uppy = new Uppy({ autoProceed: false, allowMultipleUploadBatches: false });
    uppy.use(AwsS3, {
      shouldUseMultipart: () => true,
      limit: PARALLEL_PARTS,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      getChunkSize: () => record.partSize,
      // The job and its upload exist already: Uppy resumes it (listParts first), never creates one.
      createMultipartUpload: () => ({ uploadId: record.jobId, key: record.jobId }),
      listParts: async (_file, { signal }) => {
        const parts = listed || (await request(`${jobPath}/parts`, { query: workspaceBody(), signal }));
        listed = null; // a later resumption (after a pause) asks storage again
        return parts.parts.map((p) => ({ PartNumber: p.partNumber, Size: p.size, ETag: p.etag }));
      },
      signPart: (_file, { partNumber, signal }) => signer.sign(partNumber, signal),
      completeMultipartUpload: async (_file, { signal }) => {
        await request(`${jobPath}/complete`, { method: 'POST', body: workspaceBody(), signal });
        return {};
      },
      abortMultipartUpload: async () => {
        await request(jobPath, { method: 'DELETE', query: workspaceBody() }).catch(() => {});
      },
    });
    uppy.on('upload-progress', (_file, progress) => onProgress(progress.bytesUploaded, file.size));
    uppy.on('s3-multipart:part-uploaded', (_file, part) => onPartStored(part.PartNumber));
    const id = uppy.addFile({ name: file.name, type: file.type || 'application/octet-stream', data: file });
    uppy.setFileState(id, { s3Multipart: { uploadId: record.jobId, key: record.jobId } });
    let failure = null;
    uppy.on('upload-error', (_file, error) => {
      failure = error;
    });
    const result = await uppy.upload();
    if (cancelled) throw new ApiError('The upload was cancelled.', { code: 'ABORTED' });
    if (!result || result.failed?.length || failure) throw asApiError(failure);
  })();

  return {
    done,
    cancel() {
      cancelled = true;
      if (uppy) uppy.cancelAll();
    },
  };
}

function asApiError(error) {
  if (error instanceof ApiError) return error;
  const status = error?.source?.status;
  if (status) {
    return new ApiError(`Storage refused a part (HTTP ${status}).`, { status, code: 'UPLOAD_FAILED' });
  }
  return new ApiError('Network error: the connection to storage was lost.', { code: 'NETWORK_ERROR' });
}

// --- progress: bytes, speed, time left --------------------------------------------------------------

/** Speed over the last few seconds of an upload, and the time left at that speed. */
export class Throughput {
  constructor(windowMs = 8000, now = () => performance.now()) {
    this.windowMs = windowMs;
    this.now = now;
    this.samples = [];
  }

  /** Record that `bytes` of the file are sent (stored parts included) at this moment. */
  add(bytes) {
    const t = this.now();
    this.samples.push([t, bytes]);
    while (this.samples.length > 2 && t - this.samples[0][0] > this.windowMs) this.samples.shift();
  }

  /** Bytes per second, or null until a second of transfer has been seen. */
  speed() {
    if (this.samples.length < 2) return null;
    const [t0, b0] = this.samples[0];
    const [t1, b1] = this.samples[this.samples.length - 1];
    if (t1 - t0 < 1000 || b1 <= b0) return null;
    return ((b1 - b0) * 1000) / (t1 - t0);
  }

  secondsLeft(total) {
    const speed = this.speed();
    if (!speed || this.samples.length === 0) return null;
    return (total - this.samples[this.samples.length - 1][1]) / speed;
  }
}

/**
 * Uploading a video: POST /jobs (the API checks size and type), the bytes straight to storage,
 * then POST /jobs/{id}/start. A file up to the API's multipart threshold goes in one presigned PUT;
 * a larger one in parallel parts that survive a dropped connection, a reload or a closed tab
 * (multipart.js): choosing the same file again continues where it stopped.
 * The progress bar shows bytes, speed and time left. Every refusal shows the API's own message
 * (too large, not a video, no credits).
 */

import { ApiError, request } from './api.js';
import { el, replaceChildren, show } from './dom.js';
import { formatMB, formatRate, formatSize, formatTimeLeft } from './format.js';
import { pending, pendingRecord, sendParts, Throughput } from './multipart.js';

/** Headers a browser sets itself and refuses to let a page set. */
const BROWSER_HEADERS = new Set(['content-length', 'host', 'connection']);
/** The progress line is redrawn at most this often (progress events come much faster). */
const REDRAW_MS = 250;

/** PUT the file to the presigned URL; onProgress(loadedBytes, totalBytes). */
export function putFile(upload, file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method || 'PUT', upload.url);
    for (const [name, value] of Object.entries(upload.headers || {})) {
      if (!BROWSER_HEADERS.has(name.toLowerCase())) xhr.setRequestHeader(name, value);
    }
    xhr.upload.addEventListener('progress', (event) => {
      onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    });
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else {
        reject(new ApiError(`The upload was refused by storage (HTTP ${xhr.status}). Please try again.`, {
          status: xhr.status,
          code: 'UPLOAD_FAILED',
        }));
      }
    });
    xhr.addEventListener('error', () => {
      reject(new ApiError('Network error: the file could not be sent to storage.', { code: 'NETWORK_ERROR' }));
    });
    xhr.addEventListener('abort', () => {
      reject(new ApiError('The upload was cancelled.', { code: 'ABORTED' }));
    });
    xhr.send(file);
  });
}

/** "45% · 1.20 GB of 2.70 GB · 38.5 MB/s · about 1 min left"; at the end "100% · x of x". */
export function progressText(sent, total, speed, secondsLeft) {
  const percent = total > 0 ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
  const size = total >= 1024 ** 3 ? formatSize : formatMB;
  const parts = [`${sent >= total ? 100 : percent}%`, `${size(sent)} of ${size(total)}`];
  if (sent < total && speed) parts.push(formatRate(speed), formatTimeLeft(secondsLeft));
  return parts.filter(Boolean).join(' · ');
}

/**
 * The upload panel. els: { input, dropzone, progressWrap, progress, progressText, error, status,
 * cancel, pendingWrap, pendingList }. ctx: { workspaceBody(), refreshCredits(), announce(message) };
 * jobs: the JobsView.
 */
export class Uploader {
  constructor(els, ctx, jobs) {
    this.els = els;
    this.ctx = ctx;
    this.jobs = jobs;
    this.queue = [];
    this.busy = false;
    this.active = null; // the multipart upload in progress: { jobId, cancel() }

    els.input.addEventListener('change', () => {
      const files = [...els.input.files];
      els.input.value = '';
      this.enqueue(files);
    });
    els.cancel.addEventListener('click', () => this.cancelActive());
    const zone = els.dropzone;
    for (const type of ['dragenter', 'dragover']) {
      zone.addEventListener(type, (event) => {
        event.preventDefault();
        zone.classList.add('is-dragging');
      });
    }
    for (const type of ['dragleave', 'dragend']) {
      zone.addEventListener(type, () => zone.classList.remove('is-dragging'));
    }
    zone.addEventListener('drop', (event) => {
      event.preventDefault();
      zone.classList.remove('is-dragging');
      this.enqueue([...(event.dataTransfer?.files || [])]);
    });
  }

  reset() {
    this.queue = [];
    this.setError('');
    this.els.status.textContent = '';
    this.els.progressWrap.hidden = true;
    this.renderPending();
  }

  enqueue(files) {
    if (files.length === 0) return;
    this.queue.push(...files);
    if (!this.busy) this.drain();
  }

  async drain() {
    this.busy = true;
    this.els.dropzone.setAttribute('aria-busy', 'true');
    this.setError('');
    try {
      while (this.queue.length > 0) {
        await this.uploadOne(this.queue.shift());
      }
    } finally {
      this.busy = false;
      this.els.dropzone.removeAttribute('aria-busy');
      this.renderPending();
    }
  }

  setError(message) {
    this.els.error.textContent = message;
    this.els.error.hidden = !message;
  }

  /**
   * A progress reporter for one file: the bar, and the text redrawn a few times a second.
   * `progress.from(bytes)` says that many are stored already (a resumption): the speed counts
   * only what is sent from then on.
   */
  meter(file) {
    let rate = new Throughput();
    let drawn = 0;
    const progress = (sent, total = file.size) => {
      rate.add(sent);
      const now = performance.now();
      if (sent < total && now - drawn < REDRAW_MS) return;
      drawn = now;
      this.els.progress.value = total > 0 ? Math.min(100, Math.floor((sent / total) * 100)) : 0;
      this.els.progressText.textContent = progressText(sent, total, rate.speed(), rate.secondsLeft(total));
    };
    progress.from = (bytes) => {
      rate = new Throughput();
      drawn = 0;
      progress(bytes);
    };
    return progress;
  }

  async uploadOne(file) {
    const { els, ctx } = this;
    els.progressWrap.hidden = false;
    els.cancel.hidden = true;
    els.status.textContent = `Uploading ${file.name}...`;
    const progress = this.meter(file);
    progress(0);
    let jobId = null;
    try {
      const resumed = await this.resumable(file);
      if (resumed) {
        jobId = resumed.record.jobId;
        await this.sendInParts(file, resumed.record, resumed.stored, progress);
      } else {
        const created = await request('/jobs', {
          method: 'POST',
          body: {
            filename: file.name,
            contentType: file.type || 'application/octet-stream',
            size: file.size,
            ...ctx.workspaceBody(),
          },
        });
        jobId = created.job.id;
        this.jobs.refresh();
        if (created.upload.method === 'MULTIPART') {
          const record = pendingRecord(file, created.job, created.upload, ctx.workspaceBody().workspaceId);
          pending.save(record);
          const stored = { partCount: created.upload.partCount, parts: [], uploadedBytes: 0 };
          await this.sendInParts(file, record, stored, progress);
        } else {
          await putFile(created.upload, file, (loaded, total) => progress(loaded, total));
        }
      }
      progress(file.size, file.size);
      els.cancel.hidden = true;
      els.status.textContent = `Starting ${file.name}...`;
      await request(`/jobs/${encodeURIComponent(jobId)}/start`, { method: 'POST', body: ctx.workspaceBody() });
      pending.drop(jobId);
      els.status.textContent = `${file.name} is uploaded and queued.`;
      els.progressWrap.hidden = true;
      ctx.announce(`${file.name} is uploaded and queued for processing.`);
    } catch (error) {
      if (error.status === 401) return;
      els.progressWrap.hidden = true;
      els.status.textContent = '';
      const message = this.failureMessage(file, jobId, error);
      this.setError(message);
      ctx.announce(message);
    } finally {
      this.active = null;
      if (jobId) await Promise.all([ctx.refreshCredits(), this.jobs.refresh()]);
    }
  }

  /** An unfinished upload of this very file that storage still holds: continue it. */
  async resumable(file) {
    const workspaceBody = this.ctx.workspaceBody();
    const record = pending.find(file, workspaceBody.workspaceId);
    if (!record) return null;
    try {
      const path = `/jobs/${encodeURIComponent(record.jobId)}/upload/parts`;
      const stored = await request(path, { query: workspaceBody });
      this.els.status.textContent = `Continuing ${file.name} (${formatSize(stored.uploadedBytes)} stored)...`;
      return { record, stored };
    } catch (error) {
      if (error.status === 401 || !error.status || error.status >= 500) throw error;
      pending.drop(record.jobId); // gone, expired or started: this file starts over as a new job
      return null;
    }
  }

  async sendInParts(file, record, stored, progress) {
    if (stored.completed) return; // joined already (the start was what failed)
    let storedBytes = stored.uploadedBytes || 0;
    progress.from(storedBytes);
    const partBytes = (n) => Math.min(record.partSize, file.size - (n - 1) * record.partSize);
    const handle = sendParts({
      file,
      record,
      stored,
      workspaceBody: this.ctx.workspaceBody,
      onProgress: progress,
      onPartStored: (n) => {
        storedBytes += partBytes(n);
        pending.update(record.jobId, { storedBytes });
      },
    });
    this.active = { jobId: record.jobId, cancel: handle.cancel };
    this.els.cancel.hidden = false;
    await handle.done;
  }

  cancelActive() {
    if (!this.active) return;
    pending.drop(this.active.jobId);
    this.active.cancel();
  }

  failureMessage(file, jobId, error) {
    const record = jobId ? pending.list().find((r) => r.jobId === jobId) : null;
    if (record && (error.isNetworkError || error.code === 'UPLOAD_FAILED')) {
      return `${file.name}: the connection was lost. Choose the same file again to continue where it stopped.`;
    }
    return `${file.name}: ${error.message}`;
  }

  /** The workspace's unfinished uploads, each with how to continue it or a way to discard it. */
  renderPending() {
    const { pendingWrap, pendingList } = this.els;
    const workspaceBody = this.ctx.workspaceBody();
    const records = this.busy ? [] : pending.list(workspaceBody.workspaceId);
    replaceChildren(
      pendingList,
      records.map((record) =>
        el(
          'li',
          { class: 'pending-upload', 'data-testid': 'pending-upload', dataset: { jobId: record.jobId } },
          el('span', {}, `${record.name}: ${formatSize(record.storedBytes || 0)} of ${formatSize(record.size)} stored. `),
          el('span', { class: 'muted' }, 'Choose the same file to continue. '),
          el(
            'button',
            {
              type: 'button',
              class: 'link-button',
              'data-testid': 'pending-upload-discard',
              onclick: () => this.discard(record),
            },
            'Discard',
          ),
        ),
      ),
    );
    show(pendingWrap, records.length > 0);
  }

  async discard(record) {
    pending.drop(record.jobId);
    this.renderPending();
    const path = `/jobs/${encodeURIComponent(record.jobId)}/upload`;
    await request(path, { method: 'DELETE', query: this.ctx.workspaceBody() }).catch(() => {});
    await this.jobs.refresh();
  }
}

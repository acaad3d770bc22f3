/**
 * Uploading a video: POST /jobs with the output chosen beside the drop zone (the API checks size
 * and type, remembers the output for the workspace, and answers with a presigned PUT), the bytes
 * PUT straight to R2 with a progress bar, then POST /jobs/{id}/start.
 * Every refusal shows the API's own message (too large, not a video, no credits).
 */

import { ApiError, request } from './api.js';
import { formatMB } from './format.js';

/** Headers a browser sets itself and refuses to let a page set. */
const BROWSER_HEADERS = new Set(['content-length', 'host', 'connection']);

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

/**
 * The upload panel. els: { input, dropzone, progressWrap, progress, progressText, error, status }.
 * ctx: { workspaceBody(), refreshCredits(), announce(message) }; jobs: the JobsView;
 * presets: the Presets (the select beside the drop zone).
 */
export class Uploader {
  constructor(els, ctx, jobs, presets) {
    this.els = els;
    this.ctx = ctx;
    this.jobs = jobs;
    this.presets = presets;
    this.queue = [];
    this.busy = false;

    els.input.addEventListener('change', () => {
      const files = [...els.input.files];
      els.input.value = '';
      this.enqueue(files);
    });
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
    }
  }

  setError(message) {
    this.els.error.textContent = message;
    this.els.error.hidden = !message;
  }

  showProgress(loaded, total) {
    const percent = total > 0 ? Math.min(100, Math.round((loaded / total) * 100)) : 0;
    this.els.progress.value = percent;
    this.els.progressText.textContent = `${percent}% · ${formatMB(loaded)} of ${formatMB(total)}`;
  }

  async uploadOne(file) {
    const { els, ctx } = this;
    els.progressWrap.hidden = false;
    els.status.textContent = `Uploading ${file.name}...`;
    this.showProgress(0, file.size);
    let job = null;
    const preset = this.presets.chosen();
    try {
      const created = await request('/jobs', {
        method: 'POST',
        body: {
          filename: file.name,
          contentType: file.type || 'application/octet-stream',
          size: file.size,
          preset,
          ...ctx.workspaceBody(),
        },
      });
      job = created.job;
      this.presets.remember(preset);
      this.jobs.refresh();
      await putFile(created.upload, file, (loaded, total) => this.showProgress(loaded, total));
      this.showProgress(file.size, file.size);
      els.status.textContent = `Starting ${file.name}...`;
      await request(`/jobs/${encodeURIComponent(job.id)}/start`, {
        method: 'POST',
        body: ctx.workspaceBody(),
      });
      els.status.textContent = `${file.name} is uploaded and queued.`;
      els.progressWrap.hidden = true;
      ctx.announce(`${file.name} is uploaded and queued for processing.`);
    } catch (error) {
      if (error.status === 401) return;
      els.progressWrap.hidden = true;
      els.status.textContent = '';
      this.setError(`${file.name}: ${error.message}`);
      ctx.announce(`${file.name} was not uploaded: ${error.message}`);
    } finally {
      if (job) await Promise.all([ctx.refreshCredits(), this.jobs.refresh()]);
    }
  }
}

/**
 * Retrying failed jobs: one job (the card's Retry button) or every failed job on screen
 * (the "Retry all failed (N)" button). Each costs 1 credit per job, after a confirm.
 *
 * Idempotency: one Idempotency-Key per intent to retry. The key is kept until the server
 * gives a definite answer, so clicking Retry again after a lost response (a network error,
 * a 5xx, a 409 "still in progress") repeats the same request and cannot charge twice.
 */

import { request } from './api.js';
import { plural } from './format.js';

export const RETRY_CONFIRM_MESSAGE = 'This will use 1 credit. Are you sure you want to retry this job?';
export const FREE_RETRY_CONFIRM_MESSAGE = 'This retry is free. Are you sure you want to retry this job?';

/** The confirm text for a job: the seed's exact sentence, unless the server says it is free. */
export function retryConfirmMessage(job) {
  return job && job.retryPrice === 0 ? FREE_RETRY_CONFIRM_MESSAGE : RETRY_CONFIRM_MESSAGE;
}
const BATCH_MAX = 25;

/** The confirm text of "Retry all failed (N)"; `cost` is less than `count` when some retries are free. */
export function batchConfirmMessage(count, balance, cost = count) {
  const credits = plural(cost, 'credit');
  const jobs = plural(count, 'failed job');
  if (typeof balance !== 'number') return `This will use ${credits} to retry ${jobs}. Continue?`;
  if (balance < cost) {
    return `This will use up to ${credits} to retry ${jobs}, but your balance is ${plural(balance, 'credit')}: `
      + `only ${plural(Math.max(balance, 0), 'job')} can be retried. Continue?`;
  }
  return `This will use ${credits} to retry ${jobs}. Your balance will be ${plural(balance - cost, 'credit')}. Continue?`;
}

/** An answer that settles the request's outcome (so its key must not be reused). */
function isDefinite(error) {
  if (error.isNetworkError) return false;
  if (error.status >= 500) return false;
  if (error.status === 409 && error.code === 'CONFLICT' && /in progress/i.test(error.message)) return false;
  return true;
}

function newKey() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') return window.crypto.randomUUID();
  // Older browsers / insecure origins: a random v4-shaped id.
  const bytes = window.crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * ctx: { workspaceBody(), credits(), canBuy(), refreshCredits(), announce(message) }
 * jobs: the JobsView. batchUi: { button, results } elements of the batch controls.
 */
export class RetryController {
  constructor(ctx, jobs, batchUi) {
    this.ctx = ctx;
    this.jobs = jobs;
    this.batchUi = batchUi;
    this.pendingKeys = new Map(); // jobId or 'batch:<ids>' -> key whose outcome is unknown
    this.inFlight = new Set();
    this.batchInFlight = false;
    this.batchOpening = false; // fetching the balance the batch confirm will state
    batchUi.button.addEventListener('click', () => this.retryAllFailed());
    jobs.onChange((list) => this.renderBatchButton(list));
  }

  reset() {
    this.pendingKeys.clear();
    this.inFlight.clear();
    this.batchInFlight = false;
    this.batchUi.results.replaceChildren();
    this.batchUi.results.hidden = true;
  }

  keyFor(intent) {
    let key = this.pendingKeys.get(intent);
    if (!key) {
      key = newKey();
      this.pendingKeys.set(intent, key);
    }
    return key;
  }

  settle(intent, error) {
    if (!error || isDefinite(error)) this.pendingKeys.delete(intent);
  }

  /** The card's Retry button. */
  async retryOne(job) {
    if (this.inFlight.has(job.id)) return; // the first click's request is still running
    if (!window.confirm(retryConfirmMessage(job))) return;
    const name = job.originalFilename || 'the job';
    const key = this.keyFor(job.id);
    this.inFlight.add(job.id);
    this.jobs.setUi(job.id, { retrying: true, message: null, offerPurchase: false });
    this.ctx.announce(`Retrying ${name}...`);
    try {
      const answer = await request(`/jobs/${encodeURIComponent(job.id)}/retry`, {
        method: 'POST',
        body: this.ctx.workspaceBody(),
        headers: { 'Idempotency-Key': key },
      });
      this.settle(job.id);
      const charged = answer && typeof answer.creditsCharged === 'number' ? answer.creditsCharged : 1;
      this.ctx.announce(`${name} is queued again. ${charged ? plural(charged, 'credit') + ' used' : 'No credit used'}.`);
      await Promise.all([this.ctx.refreshCredits(), this.jobs.refresh()]);
    } catch (error) {
      this.settle(job.id, error);
      if (error.status === 401) return;
      this.jobs.setUi(job.id, { message: error.message, messageKind: 'error', messageFor: 'failed' });
      this.ctx.announce(`${name}: ${error.message}`);
      // The job may have changed elsewhere (retried, deleted) or credits moved: show the truth.
      if (error.status >= 400 && error.status < 500) {
        await Promise.all([this.ctx.refreshCredits(), this.jobs.refresh()]);
      }
      // Refused for the balance: offer to buy credits right there (owners, where buying works).
      const price = typeof job.retryPrice === 'number' ? job.retryPrice : 1;
      if (error.status === 403 && this.ctx.credits() < price && this.ctx.canBuy()) {
        this.jobs.setUi(job.id, { offerPurchase: true });
      }
    } finally {
      this.inFlight.delete(job.id);
      this.jobs.setUi(job.id, { retrying: false });
      this.renderBatchButton(this.jobs.jobs);
    }
  }

  renderBatchButton(jobs) {
    const failed = jobs.filter((job) => job.status === 'failed' && !this.inFlight.has(job.id));
    const { button } = this.batchUi;
    button.hidden = failed.length === 0 && !this.batchInFlight;
    if (!this.batchInFlight) {
      button.textContent = `Retry all failed (${failed.length})`;
      button.disabled = false;
      button.className = 'btn text-white bg-orange-600 hover:bg-orange-700';
    }
  }

  /** "Retry all failed (N)": exactly the failed jobs on screen when the dialog opened. */
  async retryAllFailed() {
    if (this.batchInFlight || this.batchOpening) return;
    // The confirm states the balance after: make it the current one, not the last one seen.
    this.batchOpening = true;
    try {
      await this.ctx.refreshCredits();
    } finally {
      this.batchOpening = false;
    }
    const targets = this.jobs.failedJobs().filter((job) => !this.inFlight.has(job.id));
    if (targets.length === 0) return;
    const ids = targets.map((job) => job.id);
    const cost = targets.reduce((sum, job) => sum + (job.retryPrice === 0 ? 0 : 1), 0);
    if (!window.confirm(batchConfirmMessage(ids.length, this.ctx.credits(), cost))) return;

    const { button } = this.batchUi;
    this.batchInFlight = true;
    button.disabled = true;
    button.textContent = 'Retrying...';
    button.className = 'btn text-white bg-orange-600 opacity-50 cursor-not-allowed';
    for (const id of ids) {
      this.inFlight.add(id);
      this.jobs.setUi(id, { retrying: true, message: null });
    }
    this.ctx.announce(`Retrying ${plural(ids.length, 'job')}...`);

    const results = [];
    let failure = null;
    try {
      for (let i = 0; i < ids.length; i += BATCH_MAX) {
        const chunk = ids.slice(i, i + BATCH_MAX);
        const intent = `batch:${chunk.join(',')}`;
        try {
          const data = await request('/jobs/retry', {
            method: 'POST',
            body: { jobIds: chunk, ...this.ctx.workspaceBody() },
            headers: { 'Idempotency-Key': this.keyFor(intent) },
          });
          this.settle(intent);
          results.push(...((data && data.results) || []));
        } catch (error) {
          this.settle(intent, error);
          if (error.status === 401) return;
          failure = error;
          for (const jobId of chunk) results.push({ jobId, success: false, message: error.message });
        }
      }
    } finally {
      for (const id of ids) this.inFlight.delete(id);
      this.batchInFlight = false;
    }
    this.showBatchResults(targets, results, failure);
    // Refresh before clearing "Retrying..." so a queued job never flashes its Retry button.
    await Promise.all([this.ctx.refreshCredits(), this.jobs.refresh()]);
    for (const id of ids) this.jobs.setUi(id, { retrying: false });
    this.renderBatchButton(this.jobs.jobs);
  }

  showBatchResults(targets, results, failure) {
    const names = new Map(targets.map((job) => [job.id, job.originalFilename || job.id]));
    const { results: box } = this.batchUi;
    const succeeded = results.filter((result) => result.success).length;
    const summary = `${succeeded} of ${plural(targets.length, 'job')} queued again.`
      + (failure ? ` ${failure.message}` : '');
    const items = results.map((result) => {
      const li = document.createElement('li');
      li.dataset.testid = 'batch-result';
      li.dataset.jobId = result.jobId;
      li.dataset.success = String(Boolean(result.success));
      li.className = result.success ? 'text-green-700' : 'text-red-600';
      li.textContent = `${names.get(result.jobId) || result.jobId}: ${result.success ? 'queued again' : result.message || 'not retried'}`;
      if (!result.success) {
        this.jobs.setUi(result.jobId, {
          message: result.message || 'This job was not retried.',
          messageKind: 'error',
          messageFor: 'failed',
        });
      }
      return li;
    });
    const heading = document.createElement('p');
    heading.textContent = summary;
    heading.dataset.testid = 'batch-summary';
    const list = document.createElement('ul');
    list.append(...items);
    const dismiss = document.createElement('button');
    dismiss.type = 'button';
    dismiss.className = 'link-button';
    dismiss.textContent = 'Dismiss';
    dismiss.addEventListener('click', () => {
      box.hidden = true;
      box.replaceChildren();
    });
    box.replaceChildren(heading, list, dismiss);
    box.hidden = false;
    this.ctx.announce(summary);
  }
}

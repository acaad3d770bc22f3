/**
 * Cancelling a queued or processing job (the card's Cancel button), after a confirm. The job's
 * credit comes back; a second click while the first request runs does nothing, and cancelling
 * twice is harmless (the server answers that nothing more was refunded).
 */

import { request } from './api.js';
import { plural } from './format.js';

export const CANCEL_CONFIRM_MESSAGE = 'Cancel this job? Its credit will be refunded.';

/** ctx: { workspaceBody(), refreshCredits(), announce(message) }; jobs: the JobsView. */
export class CancelController {
  constructor(ctx, jobs) {
    this.ctx = ctx;
    this.jobs = jobs;
    this.inFlight = new Set();
  }

  async cancelOne(job) {
    if (this.inFlight.has(job.id)) return;
    if (!window.confirm(CANCEL_CONFIRM_MESSAGE)) return;
    const name = job.originalFilename || 'the job';
    this.inFlight.add(job.id);
    this.jobs.setUi(job.id, { cancelling: true, message: null });
    this.ctx.announce(`Cancelling ${name}...`);
    try {
      const answer = await request(`/jobs/${encodeURIComponent(job.id)}/cancel`, {
        method: 'POST',
        body: this.ctx.workspaceBody(),
      });
      const back = answer && answer.creditsRefunded ? `${plural(answer.creditsRefunded, 'credit')} refunded` : 'nothing charged';
      this.ctx.announce(`${name} was cancelled: ${back}.`);
    } catch (error) {
      if (error.status === 401) return;
      this.jobs.setUi(job.id, { message: error.message, messageKind: 'error', messageFor: job.status });
      this.ctx.announce(`${name}: ${error.message}`);
    } finally {
      this.inFlight.delete(job.id);
      this.jobs.setUi(job.id, { cancelling: false });
      await Promise.all([this.ctx.refreshCredits(), this.jobs.refresh()]);
    }
  }
}

/**
 * The job list: one card per job in the seed's "Job Card Layout", newest first, refreshed
 * every ~2 s while any job is queued or processing and not at all once none is.
 *
 * Cards are kept between refreshes (keyed by job id) so focus, an open history and a
 * "Retrying..." button survive polling.
 */

import { request } from './api.js';
import { el, replaceChildren, setClasses, show } from './dom.js';
import { formatTimestamp, parseDate, plural } from './format.js';

export const POLL_INTERVAL_MS = 2000;
const ERROR_BACKOFF_MS = 5000;
const PAGE_SIZE = 50;
const ACTIVE_STATUSES = new Set(['queued', 'processing']);

export const BADGE_CLASSES = {
  failed: 'bg-red-100 text-red-800',
  completed: 'bg-green-100 text-green-800',
  queued: 'bg-yellow-100 text-yellow-800',
  processing: 'bg-blue-100 text-blue-800',
  uploading: 'bg-gray-100 text-gray-800',
  cancelled: 'bg-gray-100 text-gray-800',
};
const CANCELLABLE_STATUSES = new Set(['queued', 'processing']);

const RETRY_CLASSES = 'btn text-white bg-orange-600 hover:bg-orange-700';
const RETRY_BUSY_CLASSES = 'btn text-white bg-orange-600 opacity-50 cursor-not-allowed';
const DOWNLOAD_CLASSES = 'btn text-white bg-blue-600 hover:bg-blue-700';
const CANCEL_CLASSES = 'btn btn-secondary';

const TRIGGER_LABELS = {
  initial: 'first run',
  manual: 'retry',
  batch: 'batch retry',
  auto: 'automatic retry',
  reprocess: 'reprocessed',
};

/** "Retrying automatically in N s (try 2 of 3)" for a job waiting for a free automatic try. */
export function autoRetryText(job, now = Date.now()) {
  const due = parseDate(job.nextAttemptAt);
  if (job.status !== 'queued' || !due) return '';
  const seconds = Math.max(0, Math.ceil((due.getTime() - now) / 1000));
  const tries = Number(job.maxAutoAttempts) || 1;
  const current = Math.min((Number(job.autoAttempts) || 0) + 1, tries);
  const when = seconds > 0 ? `in ${seconds} s` : 'now';
  return `Retrying automatically ${when} (try ${current} of ${tries})`;
}

const NOT_RETRYABLE_NOTE = 'A retry is unlikely to help: the problem is with the file itself.';

/** One job's card. `update(job, ui)` makes it show that job and the page's state for it. */
class JobCard {
  constructor(job, handlers) {
    this.handlers = handlers;
    this.id = job.id;
    this.job = job;
    this.historyOpen = false;
    this.historyLoadedFor = null;
    const historyId = `history-${job.id}`;

    this.filename = el('h3', { class: 'job-filename', 'data-testid': 'job-filename' });
    this.time = el('time', { 'data-testid': 'job-timestamp' });
    this.error = el('p', { class: 'text-red-600 job-error', 'data-testid': 'job-error' });
    this.retried = el('p', { class: 'job-meta', 'data-testid': 'retry-count' });
    this.suggestion = el('p', { class: 'job-meta', 'data-testid': 'job-suggestion' });
    this.autoRetry = el('p', { class: 'job-meta', 'data-testid': 'auto-retry', role: 'status' });
    this.retryNote = el('p', { class: 'job-meta retry-note', 'data-testid': 'retry-note' }, NOT_RETRYABLE_NOTE);
    this.cancelledNote = el('p', { class: 'job-meta', 'data-testid': 'job-cancelled' }, 'Cancelled');
    this.progress = el('progress', { max: '100', 'data-testid': 'job-progress' });
    this.progressLabel = el('span', { class: 'job-meta' });
    this.progressWrap = el(
      'div',
      { class: 'job-progress' },
      el('label', { class: 'job-meta' }, el('span', {}, 'Processing: ', this.progressLabel), this.progress),
    );

    this.badge = el('span', { class: 'badge', 'data-testid': 'status-badge' });
    this.retryButton = el('button', {
      type: 'button',
      class: RETRY_CLASSES,
      'data-testid': 'retry-button',
      onclick: () => this.handlers.onRetry(this.job),
    });
    this.cancelButton = el('button', {
      type: 'button',
      class: CANCEL_CLASSES,
      'data-testid': 'cancel-button',
      onclick: () => this.handlers.onCancel(this.job),
    });
    this.downloadButton = el('button', {
      type: 'button',
      class: DOWNLOAD_CLASSES,
      'data-testid': 'download-button',
      onclick: () => this.handlers.onDownload(this.job),
    });
    this.message = el('div', { class: 'job-message', 'data-testid': 'job-message' });

    this.historyToggle = el('button', {
      type: 'button',
      class: 'link-button',
      'aria-expanded': 'false',
      'aria-controls': historyId,
      'data-testid': 'history-toggle',
      onclick: () => this.toggleHistory(),
    }, 'History');
    this.history = el('div', { id: historyId, class: 'job-history', 'data-testid': 'job-history', hidden: true });

    this.root = el(
      'li',
      { class: 'job-card', 'data-testid': 'job-card', dataset: { jobId: job.id } },
      el(
        'div',
        { class: 'job-row' },
        el(
          'div',
          { class: 'job-info' },
          this.filename,
          el('p', { class: 'job-time' }, this.time),
          this.error,
          this.suggestion,
          this.autoRetry,
          this.retried,
          this.cancelledNote,
          this.progressWrap,
        ),
        el(
          'div',
          { class: 'job-side' },
          this.badge,
          this.retryButton,
          this.retryNote,
          this.cancelButton,
          this.downloadButton,
        ),
      ),
      this.message,
      el('div', { class: 'job-footer' }, this.historyToggle),
      this.history,
    );
  }

  update(job, ui) {
    const previous = this.job;
    this.job = job;
    const status = job.status;
    this.root.dataset.status = status;

    this.filename.textContent = job.originalFilename || '(unnamed file)';
    this.time.textContent = formatTimestamp(job.createdAt);
    this.time.dateTime = parseDate(job.createdAt)?.toISOString() || '';

    const failed = status === 'failed';
    this.error.textContent = failed && job.error ? `Error: ${job.error}` : '';
    show(this.error, failed && Boolean(job.error));
    this.suggestion.textContent = failed && job.suggestion ? job.suggestion : '';
    show(this.suggestion, failed && Boolean(job.suggestion));
    this.renderAutoRetry();

    const retries = Number(job.retryCount) || 0;
    this.retried.textContent = retries > 0 ? `Retried ${retries}×` : '';
    show(this.retried, retries > 0);

    const hasProgress = status === 'processing' && typeof job.progress === 'number';
    show(this.progressWrap, hasProgress);
    if (hasProgress) {
      const percent = Math.max(0, Math.min(100, Math.round(job.progress * 100)));
      this.progress.value = percent;
      // A long video is encoded in segments: count them, the bar shows the share of seconds done.
      const total = Number(job.segmentsTotal) || 0;
      this.progressLabel.textContent = total > 0
        ? `${Number(job.segmentsDone) || 0} of ${total} segments`
        : `${percent}%`;
    }

    setClasses(this.badge, `badge ${BADGE_CLASSES[status] || BADGE_CLASSES.uploading}`);
    this.badge.textContent = status;

    const retrying = Boolean(ui.retrying);
    show(this.retryButton, failed || retrying);
    this.retryButton.disabled = retrying;
    this.retryButton.textContent = retrying ? 'Retrying...' : 'Retry';
    setClasses(this.retryButton, retrying ? RETRY_BUSY_CLASSES : RETRY_CLASSES);
    if (retrying) this.retryButton.setAttribute('aria-busy', 'true');
    else this.retryButton.removeAttribute('aria-busy');
    this.retryButton.setAttribute('aria-label', `${retrying ? 'Retrying' : 'Retry'} ${job.originalFilename || 'job'}`);
    show(this.retryNote, failed && !retrying && job.retryable === false);

    const cancelling = Boolean(ui.cancelling);
    show(this.cancelButton, CANCELLABLE_STATUSES.has(status) || cancelling);
    this.cancelButton.disabled = cancelling;
    this.cancelButton.textContent = cancelling ? 'Cancelling...' : 'Cancel';
    this.cancelButton.setAttribute('aria-label', `Cancel ${job.originalFilename || 'job'}`);
    show(this.cancelledNote, status === 'cancelled');

    show(this.downloadButton, status === 'completed');
    this.downloadButton.disabled = Boolean(ui.downloading);
    this.downloadButton.textContent = ui.downloading ? 'Preparing...' : 'Download';
    this.downloadButton.setAttribute('aria-label', `Download ${job.originalFilename || 'video'}`);

    this.renderMessage(ui.message, ui.messageKind, Boolean(ui.offerPurchase));

    if (this.historyOpen && previous.updatedAt !== job.updatedAt) this.loadHistory();
  }

  /** The automatic retry's countdown; called on every update and every second by the view. */
  renderAutoRetry() {
    const text = autoRetryText(this.job);
    if (this.autoRetry.textContent !== text) this.autoRetry.textContent = text;
    show(this.autoRetry, Boolean(text));
  }

  /** The outcome of an action on this card; `offerPurchase`: a "Buy credits" button below it. */
  renderMessage(message, kind, offerPurchase = false) {
    const current = this.message.firstChild;
    if (!message) {
      if (current) replaceChildren(this.message);
      return;
    }
    const offered = this.message.childElementCount > 1;
    if (current && current.textContent === message && current.dataset.kind === kind && offered === offerPurchase) return;
    const isError = kind !== 'success';
    replaceChildren(
      this.message,
      el('p', {
        class: isError ? 'text-red-600' : 'text-green-700',
        role: isError ? 'alert' : 'status',
        'data-testid': isError ? 'job-action-error' : 'job-action-result',
        dataset: { kind },
      }, message),
      offerPurchase
        ? el('button', {
          type: 'button',
          class: 'btn btn-primary',
          'data-testid': 'job-buy-credits',
          onclick: () => this.handlers.onBuyCredits(),
        }, 'Buy credits')
        : null,
    );
  }

  toggleHistory() {
    this.historyOpen = !this.historyOpen;
    this.historyToggle.setAttribute('aria-expanded', String(this.historyOpen));
    this.historyToggle.textContent = this.historyOpen ? 'Hide history' : 'History';
    show(this.history, this.historyOpen);
    if (this.historyOpen) this.loadHistory();
  }

  async loadHistory() {
    const updatedAt = this.job.updatedAt;
    if (!this.history.firstChild) replaceChildren(this.history, el('p', { class: 'job-meta' }, 'Loading history...'));
    try {
      const data = await this.handlers.loadJob(this.id);
      if (!this.historyOpen) return;
      this.historyLoadedFor = updatedAt;
      this.renderHistory((data && data.job && data.job.attempts) || []);
    } catch (error) {
      if (!this.historyOpen) return;
      replaceChildren(this.history, el('p', { class: 'text-red-600', role: 'alert' }, error.message));
    }
  }

  renderHistory(attempts) {
    if (attempts.length === 0) {
      replaceChildren(this.history, el('p', { class: 'job-meta' }, 'No attempts yet.'));
      return;
    }
    const items = attempts.map((attempt) => {
      const times = [
        ['queued', attempt.queuedAt],
        ['started', attempt.startedAt],
        ['finished', attempt.finishedAt],
      ]
        .filter(([, value]) => value)
        .map(([label, value]) => `${label} ${formatTimestamp(value)}`)
        .join(' · ');
      const charged = typeof attempt.creditsCharged === 'number' ? ` · ${plural(attempt.creditsCharged, 'credit')}` : '';
      return el(
        'li',
        { class: 'attempt', 'data-testid': 'attempt', dataset: { outcome: attempt.outcome || '' } },
        el(
          'p',
          { class: 'attempt-title' },
          `Attempt ${attempt.n} · ${TRIGGER_LABELS[attempt.trigger] || attempt.trigger} · `,
          el('strong', {}, attempt.outcome || 'unknown'),
          charged,
          attempt.refunded ? el('span', { class: 'text-green-700', 'data-testid': 'attempt-refunded' }, ' · refunded') : null,
        ),
        attempt.plan ? el('p', { class: 'job-meta', 'data-testid': 'attempt-plan' }, `Long video: ${attempt.plan}`) : null,
        attempt.error ? el('p', { class: 'text-red-600' }, `Error: ${attempt.error}`) : null,
        times ? el('p', { class: 'job-meta' }, times) : null,
      );
    });
    replaceChildren(this.history, el('ol', { class: 'attempts', 'aria-label': 'Attempts' }, items));
  }
}

/**
 * The list of jobs of the current workspace and its polling loop.
 * ctx: { workspaceQuery(), announce(message) }; handlers: { onRetry(job), onDownload(job) }.
 */
export class JobsView {
  constructor({ section, list, empty, loadMoreButton, listError }, ctx, handlers) {
    this.section = section;
    this.list = list;
    this.empty = empty;
    this.loadMoreButton = loadMoreButton;
    this.listError = listError;
    this.ctx = ctx;
    this.handlers = {
      ...handlers,
      loadJob: (id) => request(`/jobs/${encodeURIComponent(id)}`, { query: ctx.workspaceQuery() }),
    };
    this.listeners = new Set();
    this.reset();
    loadMoreButton.addEventListener('click', () => this.loadMore());
    // The automatic retry's "in N s" counts down between polls.
    setInterval(() => {
      for (const card of this.cards.values()) card.renderAutoRetry();
    }, 1000);
  }

  /** Forget everything (a new session or another workspace). */
  reset() {
    clearTimeout(this.timer);
    this.timer = null;
    this.generation = (this.generation || 0) + 1;
    this.jobs = [];
    this.cards = new Map();
    this.ui = new Map();
    this.cursor = undefined;
    this.loaded = false;
    this.refreshing = null;
    this.again = false;
    this.stopped = true;
    replaceChildren(this.list);
    show(this.empty, false);
    show(this.loadMoreButton, false);
    show(this.listError, false);
    this.section.dataset.polling = 'false';
    this.section.setAttribute('aria-busy', 'true');
  }

  start() {
    this.stopped = false;
    return this.refresh();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = null;
    this.section.dataset.polling = 'false';
  }

  /** Called after every render with the jobs on screen. */
  onChange(listener) {
    this.listeners.add(listener);
  }

  job(id) {
    return this.jobs.find((job) => job.id === id);
  }

  failedJobs() {
    return this.jobs.filter((job) => job.status === 'failed');
  }

  /** Merge page-state for one job (retrying, message, ...) and re-render its card. */
  setUi(id, patch) {
    const next = { ...(this.ui.get(id) || {}), ...patch };
    this.ui.set(id, next);
    const card = this.cards.get(id);
    const job = this.job(id);
    if (card && job) card.update(job, next);
    this.schedule();
  }

  uiFor(id) {
    return this.ui.get(id) || {};
  }

  /** Reload the newest page now; concurrent calls share one load (plus one more if asked). */
  refresh() {
    if (this.stopped) return Promise.resolve();
    if (this.refreshing) {
      this.again = true;
      return this.refreshing;
    }
    clearTimeout(this.timer);
    const generation = this.generation;
    const run = (async () => {
      do {
        this.again = false;
        await this.loadFirstPage();
      } while (this.again && !this.stopped && generation === this.generation);
    })().finally(() => {
      // A reset (sign-out, another workspace) may have started a newer refresh meanwhile.
      if (this.refreshing !== run) return;
      this.refreshing = null;
      this.schedule();
    });
    this.refreshing = run;
    return run;
  }

  async loadFirstPage() {
    const generation = this.generation;
    try {
      const data = await request('/jobs', { query: { limit: PAGE_SIZE, ...this.ctx.workspaceQuery() } });
      if (generation !== this.generation) return;
      this.failing = false;
      show(this.listError, false);
      if (!this.loaded) this.cursor = data.cursor || null;
      this.loaded = true;
      this.merge(data.jobs || []);
    } catch (error) {
      if (generation !== this.generation || error.status === 401) return;
      this.failing = true;
      this.listError.textContent = `Could not load jobs: ${error.message}`;
      show(this.listError, true);
    }
  }

  async loadMore() {
    if (!this.cursor) return;
    const generation = this.generation;
    this.loadMoreButton.disabled = true;
    try {
      const data = await request('/jobs', {
        query: { limit: PAGE_SIZE, cursor: this.cursor, ...this.ctx.workspaceQuery() },
      });
      if (generation !== this.generation) return;
      this.cursor = data.cursor || null;
      this.merge(data.jobs || []);
    } catch (error) {
      if (generation !== this.generation || error.status === 401) return;
      this.listError.textContent = `Could not load more jobs: ${error.message}`;
      show(this.listError, true);
    } finally {
      this.loadMoreButton.disabled = false;
    }
  }

  merge(jobs) {
    const byId = new Map(this.jobs.map((job) => [job.id, job]));
    for (const job of jobs) byId.set(job.id, job);
    const time = (job) => parseDate(job.createdAt)?.getTime() || 0;
    this.jobs = [...byId.values()].sort((a, b) => time(b) - time(a));
    for (const job of jobs) {
      const ui = this.ui.get(job.id);
      // A message about a failed job means nothing once the job has moved on.
      if (ui && ui.message && ui.messageFor && ui.messageFor !== job.status) {
        this.ui.set(job.id, { ...ui, message: null, messageFor: null });
      }
    }
    this.render();
  }

  render() {
    this.jobs.forEach((job, index) => {
      let card = this.cards.get(job.id);
      if (!card) {
        card = new JobCard(job, this.handlers);
        this.cards.set(job.id, card);
      }
      card.update(job, this.uiFor(job.id));
      // Move a card only when it is out of place: moving a node would drop its focus.
      if (this.list.children[index] !== card.root) {
        this.list.insertBefore(card.root, this.list.children[index] || null);
      }
    });
    show(this.empty, this.loaded && this.jobs.length === 0);
    show(this.loadMoreButton, Boolean(this.cursor));
    this.section.setAttribute('aria-busy', 'false');
    for (const listener of this.listeners) listener(this.jobs);
  }

  /** True while something on screen can still change by itself. */
  isActive() {
    if (this.jobs.some((job) => ACTIVE_STATUSES.has(job.status))) return true;
    for (const ui of this.ui.values()) if (ui.retrying) return true;
    return false;
  }

  schedule() {
    clearTimeout(this.timer);
    this.timer = null;
    const poll = !this.stopped && (this.isActive() || this.failing);
    this.section.dataset.polling = String(poll);
    if (!poll || this.refreshing) return;
    const delay = this.failing ? ERROR_BACKOFF_MS : POLL_INTERVAL_MS;
    this.timer = setTimeout(() => this.refresh(), delay);
  }
}

/**
 * The credit history: the workspace's ledger (GET /credits/ledger), newest first, in a panel that
 * loads when it is opened. Purchases and their reversals are entries like any other: the ledger is
 * the truth, and the balance is its sum.
 */

import { request } from './api.js';
import { el, replaceChildren, show } from './dom.js';
import { formatTimestamp, plural } from './format.js';

const PAGE_SIZE = 20;

export const REASON_LABELS = {
  grant: 'Credits granted',
  adjustment: 'Balance adjusted',
  job_start: 'Job started',
  retry: 'Retry',
  retry_refund: 'Refund: the retry could not be queued',
  start_refund: 'Refund: the job could not be queued',
  system_failure_refund: 'Refund: processing failed on our side',
  operator_grant: 'Paid by an operator',
  cancel_refund: 'Refund: job cancelled',
  purchase: 'Purchase',
  purchase_reversal: 'Purchase refunded or disputed',
};

function signed(delta) {
  return delta > 0 ? `+${delta}` : String(delta);
}

/** ctx: { workspaceQuery() }; ui: { panel, list, more, error } */
export class CreditHistory {
  constructor(ctx, ui) {
    this.ctx = ctx;
    this.ui = ui;
    this.reset();
    ui.panel.addEventListener('toggle', () => {
      if (ui.panel.open) this.refresh();
    });
    ui.more.addEventListener('click', () => this.loadMore());
  }

  reset() {
    this.generation = (this.generation || 0) + 1;
    this.cursor = null;
    replaceChildren(this.ui.list);
    show(this.ui.more, false);
    show(this.ui.error, false);
  }

  /** Reload the newest page, if the panel is open (after a purchase, a retry, ...). */
  async refresh() {
    if (!this.ui.panel.open) return;
    const generation = ++this.generation;
    await this.load(null, generation, true);
  }

  async loadMore() {
    if (this.cursor) await this.load(this.cursor, this.generation, false);
  }

  async load(cursor, generation, replace) {
    try {
      const data = await request('/credits/ledger', {
        query: { limit: PAGE_SIZE, cursor, ...this.ctx.workspaceQuery() },
      });
      if (generation !== this.generation) return;
      const items = (data.entries || []).map((entry) => this.item(entry));
      if (replace) replaceChildren(this.ui.list, items);
      else this.ui.list.append(...items);
      if (replace && items.length === 0) {
        replaceChildren(this.ui.list, el('li', { class: 'muted' }, 'No credit changes yet.'));
      }
      this.cursor = data.cursor || null;
      show(this.ui.more, Boolean(this.cursor));
      show(this.ui.error, false);
    } catch (error) {
      if (generation !== this.generation || error.status === 401) return;
      this.ui.error.textContent = `Could not load the credit history: ${error.message}`;
      show(this.ui.error, true);
    }
  }

  item(entry) {
    let label = REASON_LABELS[entry.reason] || entry.reason;
    if (entry.reason === 'purchase') label = `Bought ${plural(entry.delta, 'credit')}`;
    return el(
      'li',
      { class: 'ledger-entry', 'data-testid': 'ledger-entry', dataset: { reason: entry.reason, delta: String(entry.delta) } },
      el('span', { class: `ledger-delta ${entry.delta >= 0 ? 'is-credit' : 'is-debit'}` }, signed(entry.delta)),
      el('span', { 'data-testid': 'ledger-label' }, label),
      el('time', { class: 'muted', datetime: entry.createdAt }, formatTimestamp(entry.createdAt)),
    );
  }
}

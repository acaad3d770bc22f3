/**
 * The "Storage" panel: how long this workspace keeps an upload after its job completed or was
 * cancelled (owners change it, members see it), and that outputs are kept until deleted.
 *
 * Self-contained: `new RetentionPanel(container, ctx)` builds its own elements inside
 * `container` (any settings view can host it) and loads when `load()` is called; `reset()` on a
 * workspace change. GET/PUT /retention (docs/performance.md, "Storage").
 */

import { request } from './api.js';
import { el, replaceChildren } from './dom.js';

const MAX_DAYS = 3650;

function days(n) {
  return `${n} day${n === 1 ? '' : 's'}`;
}

export class RetentionPanel {
  constructor(container, ctx) {
    this.container = container;
    this.ctx = ctx;
    this.data = null;
    this.status = el('p', { role: 'status', 'data-testid': 'retention-status' });
  }

  reset() {
    this.data = null;
    replaceChildren(this.container, el('p', { class: 'muted', text: 'Loading…' }));
  }

  async load() {
    try {
      this.data = await request('/retention', { query: this.ctx.workspaceQuery() });
      this.render();
    } catch (error) {
      if (error.status === 401) return;
      replaceChildren(this.container, this.status);
      this.status.textContent = `Could not load: ${error.message}`;
    }
  }

  render() {
    const d = this.data;
    const summary = el('p', {
      'data-testid': 'retention-summary',
      text:
        d.keepOriginalsDays === 0
          ? 'Uploads are deleted as soon as their job is done.'
          : `Uploads are kept ${days(d.keepOriginalsDays)} after their job completed or was cancelled` +
            `${d.chosen ? '' : ' (the default)'}.`,
    });
    const outputs = el('p', {
      class: 'muted',
      text: 'Processed videos are kept until you delete them. A failed job keeps its upload, so it can be retried.',
    });
    if (!d.canChange) {
      replaceChildren(this.container, summary, outputs, el('p', { class: 'muted', text: 'Only owners change this.' }));
      return;
    }
    const input = el('input', {
      id: 'retention-days',
      type: 'number',
      min: '0',
      max: String(MAX_DAYS),
      step: '1',
      required: true,
      value: String(d.keepOriginalsDays),
      'data-testid': 'retention-days',
    });
    const form = el(
      'form',
      {
        class: 'notify-block',
        'data-testid': 'retention-form',
        novalidate: true,
        onsubmit: (event) => {
          event.preventDefault();
          this.save(input.value === '' ? NaN : Number(input.value));
        },
      },
      el('p', { class: 'field' }, el('label', { for: 'retention-days', text: 'Keep uploads for (days) ' }), input),
      el('button', { type: 'submit', class: 'btn btn-secondary', 'data-testid': 'retention-save', text: 'Save' }),
      ' ',
      el('button', {
        type: 'button',
        class: 'btn btn-secondary',
        'data-testid': 'retention-default',
        text: `Use the default (${days(d.defaultDays)})`,
        hidden: !d.chosen,
        onclick: () => this.save(null),
      }),
    );
    replaceChildren(this.container, summary, outputs, form, this.status);
  }

  async save(value) {
    if (value !== null && !(Number.isInteger(value) && value >= 0 && value <= MAX_DAYS)) {
      this.status.textContent = `Enter a whole number of days from 0 to ${MAX_DAYS}.`;
      return;
    }
    try {
      this.data = await request('/retention', {
        method: 'PUT',
        body: { ...this.ctx.workspaceBody(), keepOriginalsDays: value },
      });
      this.render();
      this.status.textContent = 'Saved.';
    } catch (error) {
      if (error.status !== 401) this.status.textContent = `Could not save: ${error.message}`;
    }
  }
}

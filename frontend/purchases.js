/**
 * Buying credits (docs/payments.md): the "Buy credits" dialog with the packs and their prices,
 * the trip to Stripe Checkout, and the return page.
 *
 * The page never adds credits itself. Coming back from Stripe (?purchase=success&session_id=...)
 * it polls GET /credits/checkout until the server says the purchase is `completed` (its webhook
 * has landed and granted the pack), then shows the balance the server reports: one grant per
 * payment, however often the page polls or is reloaded.
 */

import { request } from './api.js';
import { el, replaceChildren, show } from './dom.js';
import { plural } from './format.js';

export const RETURN_POLL_MS = 1000;
const RETURN_POLL_LIMIT = 120; // about two minutes, then the page stops asking (the credits still come)

/** "$5.00" in the browser's locale; `price` is in the currency's smallest unit. */
export function formatPrice(price, currency) {
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency: currency.toUpperCase() });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(price / 10 ** digits);
  } catch {
    return `${(price / 100).toFixed(2)} ${currency.toUpperCase()}`;
  }
}

const STATE_TEXT = {
  open: 'Waiting for your payment to go through…',
  paid: 'Payment received. Adding your credits…',
  expired: 'This checkout expired without a payment. Nothing was charged.',
};

/**
 * ctx: { workspaceId(), workspaceName(), role(), refreshCredits(), onCredited(), announce(message) }
 * ui: { button, dialog, workspace, list, error, close, status }
 */
export class Purchases {
  constructor(ctx, ui) {
    this.ctx = ctx;
    this.ui = ui;
    this.packs = [];
    this.available = false;
    this.generation = 0;
    ui.button.addEventListener('click', () => this.open());
    ui.close.addEventListener('click', () => ui.dialog.close());
  }

  /** Owners of a workspace where buying is available (members see the balance only). */
  get canBuy() {
    return this.available && this.packs.length > 0 && this.ctx.role() === 'owner';
  }

  reset() {
    this.generation += 1;
    this.packs = [];
    this.available = false;
    if (this.ui.dialog.open) this.ui.dialog.close();
    show(this.ui.button, false);
    show(this.ui.status, false);
  }

  /** Load the packs on sale (once per workspace shown). */
  async load() {
    const generation = this.generation;
    try {
      const data = await request('/credits/packs');
      if (generation !== this.generation) return;
      this.packs = (data && data.packs) || [];
      this.available = Boolean(data && data.available);
    } catch {
      this.packs = [];
      this.available = false;
    }
    show(this.ui.button, this.canBuy);
  }

  open() {
    if (!this.canBuy) return;
    const { dialog, list, error, workspace } = this.ui;
    workspace.textContent = this.ctx.workspaceName();
    error.hidden = true;
    replaceChildren(
      list,
      this.packs.map((pack) => {
        const buy = el('button', {
          type: 'button',
          class: 'btn btn-primary',
          'data-testid': 'buy-pack',
          dataset: { pack: pack.id },
          'aria-label': `Buy ${plural(pack.credits, 'credit')} for ${formatPrice(pack.price, pack.currency)}`,
          onclick: () => this.checkout(pack, buy),
        }, 'Buy');
        return el(
          'li',
          { class: 'pack', 'data-testid': 'pack', dataset: { pack: pack.id } },
          el('span', {},
            el('span', { class: 'pack-credits' }, plural(pack.credits, 'credit')),
            ' · ',
            el('span', { 'data-testid': 'pack-price' }, formatPrice(pack.price, pack.currency))),
          buy,
        );
      }),
    );
    if (!dialog.open) dialog.showModal();
  }

  async checkout(pack, button) {
    const { error } = this.ui;
    for (const other of this.ui.list.querySelectorAll('button')) other.disabled = true;
    button.textContent = 'Opening Stripe…';
    error.hidden = true;
    try {
      const session = await request('/credits/checkout', {
        method: 'POST',
        body: { pack: pack.id, workspaceId: this.ctx.workspaceId() },
      });
      window.location.assign(session.url);
    } catch (err) {
      if (err.status === 401) return;
      error.textContent = err.message;
      error.hidden = false;
      for (const other of this.ui.list.querySelectorAll('button')) other.disabled = false;
      button.textContent = 'Buy';
    }
  }

  /** Back from Stripe: say how the purchase went, polling until its credits are added. */
  async handleReturn() {
    const params = new URLSearchParams(window.location.search);
    const outcome = params.get('purchase');
    if (!outcome) return;
    const sessionId = params.get('session_id');
    // Keep ?workspace= (a reload stays in this workspace), drop the rest: a reload asks nothing again.
    params.delete('purchase');
    params.delete('session_id');
    const query = params.toString();
    history.replaceState(null, '', window.location.pathname + (query ? `?${query}` : '') + window.location.hash);
    if (outcome === 'cancelled') {
      this.status('The purchase was cancelled. Nothing was charged.', 'cancelled');
      return;
    }
    if (outcome !== 'success' || !sessionId) return;
    const generation = this.generation;
    this.status('Confirming your payment…', 'confirming');
    for (let i = 0; i < RETURN_POLL_LIMIT && generation === this.generation; i += 1) {
      let data;
      try {
        data = await request('/credits/checkout', {
          query: { sessionId, workspaceId: this.ctx.workspaceId() },
        });
      } catch (error) {
        if (error.status === 401 || generation !== this.generation) return;
        if (error.status >= 400 && error.status < 500) {
          this.status(error.message, 'error');
          return;
        }
        data = null; // a network error or a 5xx: ask again
      }
      if (generation !== this.generation) return;
      if (data && data.status === 'completed') {
        const text = `${plural(data.credits, 'credit')} added. Your balance is ${plural(data.balance, 'credit')}.`;
        this.status(text, 'completed');
        this.ctx.announce(text);
        await this.ctx.refreshCredits();
        this.ctx.onCredited();
        return;
      }
      if (data && data.status === 'expired') {
        this.status(STATE_TEXT.expired, 'expired');
        return;
      }
      if (data) this.status(STATE_TEXT[data.status] || STATE_TEXT.open, data.status);
      await new Promise((resolve) => setTimeout(resolve, RETURN_POLL_MS));
    }
    if (generation === this.generation) {
      this.status('Your payment is still being confirmed. The credits will appear here shortly.', 'slow');
    }
  }

  status(text, state) {
    const { status } = this.ui;
    status.textContent = text;
    status.dataset.state = state;
    status.hidden = false;
  }
}

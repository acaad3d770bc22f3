/**
 * The Retry dialog: the seed's confirm text exactly, with Cancel and OK, and "Retry with
 * different settings", which shows the outputs to pick for that retry (same price).
 * A <dialog> (modal: focus stays in it, Escape cancels) instead of window.confirm, which has no
 * room for a choice.
 */

import { show } from './dom.js';

export class RetryDialog {
  /** els: { dialog, message, toggle, settings, select }; presets: the Presets. */
  constructor({ dialog, message, toggle, settings, select }, presets) {
    this.dialog = dialog;
    this.message = message;
    this.toggle = toggle;
    this.settings = settings;
    this.select = select;
    this.presets = presets;
    this.resolve = null;
    toggle.addEventListener('click', () => this.expand(this.settings.hidden));
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'ok';
      const resolve = this.resolve;
      this.resolve = null;
      if (!resolve) return;
      const changed = ok && !this.settings.hidden && this.select.value !== this.current;
      resolve(ok ? { preset: changed ? this.select.value : null } : null);
    });
  }

  expand(open) {
    show(this.settings, open);
    this.toggle.setAttribute('aria-expanded', String(open));
    if (open) this.select.focus();
  }

  /**
   * Ask. Resolves to null (Cancel, Escape) or { preset } (OK; preset: another output chosen for
   * this retry, else null).
   */
  ask(message, current) {
    if (this.resolve) this.resolve(null);
    this.current = current;
    this.message.textContent = message;
    this.presets.fill(this.select, current);
    this.expand(false);
    this.dialog.returnValue = '';
    return new Promise((resolve) => {
      this.resolve = resolve;
      this.dialog.showModal();
    });
  }
}

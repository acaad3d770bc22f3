/**
 * The settings view, reached from the header (#settings): the workspace's default output, the
 * notifications (email, browser, webhooks: notifications.js) and, to come, retention. The main
 * page is the upload and the jobs.
 */

import { request } from './api.js';

export const SETTINGS_HASH = '#settings';

/** Which view the address asks for: settings, or the upload and the jobs. */
export function wantsSettings() {
  return window.location.hash === SETTINGS_HASH;
}

/** The "Default output" form. ctx: { workspaceBody() }; presets: the Presets. */
export class DefaultPresetForm {
  constructor(ctx, presets, { form, select, status }) {
    this.ctx = ctx;
    this.presets = presets;
    this.select = select;
    this.status = status;
    presets.onChange((p) => p.fill(select, p.workspaceDefault));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.save();
    });
  }

  async save() {
    const preset = this.select.value;
    this.status.textContent = 'Saving...';
    try {
      const data = await request('/presets/default', { method: 'PUT', body: { preset, ...this.ctx.workspaceBody() } });
      this.presets.remember(data.default);
      this.status.textContent = 'Saved.';
    } catch (error) {
      if (error.status !== 401) this.status.textContent = error.message;
    }
  }
}

/**
 * The output presets (GET /presets): the select beside the drop zone, which starts at the
 * workspace's preset (the last one used there, or its default); their labels for cards and dialogs.
 */

import { request } from './api.js';
import { el, replaceChildren } from './dom.js';

const FALLBACK = [{ id: 'mp4-720p', label: 'MP4 720p', description: '' }];

export class Presets {
  /** ctx: { workspaceQuery() }; els: { select, hint } (the upload panel's). */
  constructor(ctx, { select, hint }) {
    this.ctx = ctx;
    this.select = select;
    this.hint = hint;
    this.presets = FALLBACK;
    this.workspaceDefault = 'mp4-720p';
    this.listeners = new Set();
    select.addEventListener('change', () => this.renderHint());
  }

  /** Called with the list whenever it (or the workspace's default) changes. */
  onChange(listener) {
    this.listeners.add(listener);
  }

  async load() {
    try {
      const data = await request('/presets', { query: this.ctx.workspaceQuery() });
      this.presets = (data && data.presets) || FALLBACK;
      this.workspaceDefault = (data && data.default) || 'mp4-720p';
    } catch {
      this.presets = FALLBACK;
    }
    this.fill(this.select, this.workspaceDefault);
    this.renderHint();
    for (const listener of this.listeners) listener(this);
  }

  /** Options for a select, `selected` chosen. */
  fill(select, selected) {
    replaceChildren(
      select,
      ...this.presets.map((p) => el('option', { value: p.id, selected: p.id === selected }, p.label)),
    );
    select.value = selected;
  }

  label(id) {
    const found = this.presets.find((p) => p.id === id);
    return found ? found.label : id || '';
  }

  /** What the next upload produces. */
  chosen() {
    return this.select.value || this.workspaceDefault;
  }

  /** An upload used `id`: the workspace remembers it (the API did), and so does the select. */
  remember(id) {
    this.workspaceDefault = id;
    this.select.value = id;
    for (const listener of this.listeners) listener(this);
  }

  renderHint() {
    const found = this.presets.find((p) => p.id === this.select.value);
    this.hint.textContent = found ? found.description : '';
  }
}

/**
 * The "Notifications" panel: which events email me and reach my browsers, browser notifications
 * while the page is open, push notifications to this device (push.js), and (owners) the
 * workspace's webhook endpoints with their delivery log.
 *
 * Browser notifications use the Notification API only after the person clicks "Turn on": no
 * permission prompt before that. They fire when a job on screen goes from queued/processing to
 * completed or failed, while this page is open (a background tab too: the list keeps polling).
 */

import { request } from './api.js';
import { el, replaceChildren, show } from './dom.js';
import { PushToggle } from './push.js';

const OPT_IN_KEY = 'vidproc.browserNotifications';
const ACTIVE = new Set(['queued', 'processing']);

const $ = (id) => document.getElementById(id);

function browserSupported() {
  return typeof window.Notification === 'function';
}

/** Shows a system notification when a watched job finishes (after the person opted in). */
export class BrowserNotifier {
  constructor(button, status) {
    this.button = button;
    this.status = status;
    this.lastStatus = new Map();
    button.addEventListener('click', () => this.toggle());
    this.render();
  }

  get enabled() {
    return (
      browserSupported() && localStorage.getItem(OPT_IN_KEY) === 'on' && window.Notification.permission === 'granted'
    );
  }

  async toggle() {
    if (!browserSupported()) return;
    if (this.enabled) {
      localStorage.removeItem(OPT_IN_KEY);
    } else {
      const permission = await window.Notification.requestPermission();
      if (permission === 'granted') localStorage.setItem(OPT_IN_KEY, 'on');
    }
    this.render();
  }

  render() {
    if (!browserSupported()) {
      this.button.hidden = true;
      this.status.textContent = 'This browser cannot show notifications.';
      return;
    }
    const denied = window.Notification.permission === 'denied';
    this.button.textContent = this.enabled ? 'Turn off browser notifications' : 'Turn on browser notifications';
    this.button.disabled = denied && !this.enabled;
    this.status.textContent = this.enabled
      ? 'Browser notifications are on.'
      : denied
        ? 'Notifications are blocked for this site in your browser settings.'
        : 'Browser notifications are off.';
  }

  /** Reset what was seen (another workspace or a new session): no notification for old news. */
  reset() {
    this.lastStatus = new Map();
  }

  /** Called with the jobs on screen after every refresh. */
  observe(jobs) {
    for (const job of jobs) {
      const before = this.lastStatus.get(job.id);
      this.lastStatus.set(job.id, job.status);
      const finished = job.status === 'completed' || job.status === 'failed';
      if (finished && before && ACTIVE.has(before) && this.enabled) this.show(job);
    }
  }

  show(job) {
    const name = job.originalFilename || 'your video';
    const title = job.status === 'completed' ? `Ready: ${name}` : `Failed: ${name}`;
    const body = job.status === 'completed' ? 'Your video is ready to download.' : job.error || 'Processing failed.';
    const note = new window.Notification(title, { body, tag: `job-${job.id}-${job.status}` });
    note.onclick = () => {
      window.focus();
      document.querySelector(`[data-job-id="${CSS.escape(job.id)}"]`)?.scrollIntoView();
    };
  }
}

/** Email settings and (owners) webhooks of the current workspace. */
export class NotificationPanel {
  constructor(ctx) {
    this.ctx = ctx;
    this.role = null;
    this.push = new PushToggle($('push-toggle'), $('push-status'));
    $('email-settings').addEventListener('submit', (event) => {
      event.preventDefault();
      this.save();
    });
    $('webhook-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.addEndpoint();
    });
    $('notification-settings').addEventListener('toggle', () => {
      if ($('notification-settings').open) this.load();
    });
  }

  reset() {
    this.role = null;
    $('email-settings-status').textContent = '';
    show($('webhooks'), false);
    show($('webhook-secret'), false);
    show($('delivery-log'), false);
    replaceChildren($('webhook-list'));
    if ($('notification-settings').open) this.load();
  }

  async load() {
    try {
      const settings = await request('/notifications/settings', { query: this.ctx.workspaceQuery() });
      this.role = settings.role;
      for (const box of document.querySelectorAll('input[name="emailEvents"]')) {
        box.checked = settings.emailEvents.includes(box.value);
      }
      for (const box of document.querySelectorAll('input[name="pushEvents"]')) {
        box.checked = settings.pushEvents.includes(box.value);
      }
      await this.push.load();
      const owner = settings.role === 'owner';
      show($('threshold-field'), owner);
      $('low-credits-threshold').value = String(settings.lowCreditsThreshold);
      show($('webhooks'), owner);
      if (owner) await this.loadEndpoints();
    } catch (error) {
      if (error.status !== 401) $('email-settings-status').textContent = `Could not load: ${error.message}`;
    }
  }

  async save() {
    const checked = (name) => [...document.querySelectorAll(`input[name="${name}"]:checked`)].map((b) => b.value);
    const body = { ...this.ctx.workspaceBody(), emailEvents: checked('emailEvents'), pushEvents: checked('pushEvents') };
    if (this.role === 'owner') body.lowCreditsThreshold = Number($('low-credits-threshold').value);
    const status = $('email-settings-status');
    try {
      await request('/notifications/settings', { method: 'PUT', body });
      status.textContent = 'Saved.';
    } catch (error) {
      if (error.status !== 401) status.textContent = error.message;
    }
  }

  async loadEndpoints() {
    const data = await request('/webhooks', { query: this.ctx.workspaceQuery() });
    replaceChildren($('webhook-list'), ...(data.endpoints || []).map((endpoint) => this.endpointItem(endpoint)));
  }

  endpointItem(endpoint) {
    const action = (label, testid, handler) =>
      el('button', { type: 'button', class: 'btn btn-secondary', 'data-testid': testid, onclick: handler }, label);
    return el(
      'li',
      { class: 'webhook-item', 'data-testid': 'webhook-item', dataset: { endpointId: endpoint.id } },
      el('code', { 'data-testid': 'webhook-item-url' }, endpoint.url),
      el('span', { class: 'muted' }, endpoint.eventTypes.join(', ')),
      el(
        'span',
        { 'data-testid': 'webhook-item-state', class: endpoint.enabled ? '' : 'text-red-600' },
        endpoint.enabled ? 'Enabled' : `Disabled: ${endpoint.disabledReason || ''}`,
      ),
      el(
        'div',
        { class: 'webhook-actions' },
        action('Deliveries', 'webhook-deliveries', () => this.showDeliveries(endpoint)),
        action('Rotate secret', 'webhook-rotate', () => this.rotate(endpoint)),
        endpoint.enabled ? null : action('Enable', 'webhook-enable', () => this.post(endpoint, 'enable')),
        action('Delete', 'webhook-delete', () => this.remove(endpoint)),
      ),
    );
  }

  showError(error) {
    if (error.status === 401) return;
    $('webhook-error').textContent = error.message;
    show($('webhook-error'), true);
  }

  showSecret(secret) {
    $('webhook-secret-value').textContent = secret;
    show($('webhook-secret'), true);
  }

  async addEndpoint() {
    show($('webhook-error'), false);
    const eventTypes = [...document.querySelectorAll('input[name="webhookEvents"]:checked')].map((b) => b.value);
    try {
      const data = await request('/webhooks', {
        method: 'POST',
        body: { ...this.ctx.workspaceBody(), url: $('webhook-url').value.trim(), eventTypes },
      });
      $('webhook-url').value = '';
      this.showSecret(data.secret);
      await this.loadEndpoints();
    } catch (error) {
      this.showError(error);
    }
  }

  async rotate(endpoint) {
    try {
      const data = await this.post(endpoint, 'rotate');
      if (data) this.showSecret(data.secret);
    } catch (error) {
      this.showError(error);
    }
  }

  async post(endpoint, action) {
    show($('webhook-error'), false);
    try {
      const data = await request(`/webhooks/${encodeURIComponent(endpoint.id)}/${action}`, {
        method: 'POST',
        body: this.ctx.workspaceBody(),
      });
      await this.loadEndpoints();
      return data;
    } catch (error) {
      this.showError(error);
      return null;
    }
  }

  async remove(endpoint) {
    if (!window.confirm(`Delete the endpoint ${endpoint.url}?`)) return;
    try {
      await request(`/webhooks/${encodeURIComponent(endpoint.id)}`, {
        method: 'DELETE',
        query: this.ctx.workspaceQuery(),
      });
      show($('delivery-log'), false);
      await this.loadEndpoints();
    } catch (error) {
      this.showError(error);
    }
  }

  async showDeliveries(endpoint) {
    try {
      const data = await request(`/webhooks/${encodeURIComponent(endpoint.id)}/deliveries`, {
        query: this.ctx.workspaceQuery(),
      });
      const rows = (data.deliveries || []).map((d) =>
        el(
          'tr',
          { 'data-testid': 'delivery-row', dataset: { status: d.status } },
          el('td', {}, d.eventType),
          el('td', { 'data-testid': 'delivery-status' }, d.status),
          el('td', {}, String(d.attempts)),
          el('td', {}, d.lastResponseCode === null ? d.lastError || '' : String(d.lastResponseCode)),
          el('td', {}, d.nextTryAt || ''),
          el(
            'td',
            {},
            d.status === 'pending'
              ? ''
              : el(
                  'button',
                  {
                    type: 'button',
                    class: 'btn btn-secondary',
                    'data-testid': 'delivery-resend',
                    onclick: () => this.resend(endpoint, d),
                  },
                  'Resend',
                ),
          ),
        ),
      );
      const head = el(
        'tr',
        {},
        ...['Event', 'Status', 'Tries', 'Last answer', 'Next try', ''].map((h) => el('th', { scope: 'col' }, h)),
      );
      replaceChildren(
        $('delivery-log'),
        el('h4', {}, `Deliveries to ${endpoint.url}`),
        rows.length ? el('table', { class: 'delivery-table' }, el('thead', {}, head), el('tbody', {}, rows)) : el('p', { class: 'muted' }, 'No deliveries yet.'),
      );
      show($('delivery-log'), true);
    } catch (error) {
      this.showError(error);
    }
  }

  async resend(endpoint, delivery) {
    try {
      await request(
        `/webhooks/${encodeURIComponent(endpoint.id)}/deliveries/${encodeURIComponent(delivery.id)}/resend`,
        { method: 'POST', body: this.ctx.workspaceBody() },
      );
      await this.showDeliveries(endpoint);
    } catch (error) {
      this.showError(error);
    }
  }
}

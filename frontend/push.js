/**
 * Web Push on this device: "Turn on push notifications" registers the service worker (sw.js),
 * subscribes with the API's VAPID public key and stores the subscription (POST /push/subscriptions);
 * "Turn off" unsubscribes and removes it. The notifier then pushes the outcomes of your jobs here
 * even when no dashboard page is open (docs/notifications.md, "Web Push").
 */

import { request } from './api.js';

function supported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && typeof window.Notification === 'function';
}

function keyBytes(base64url) {
  const base64 = base64url.replace(/-/g, '+').replace(/_/g, '/');
  const raw = atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

export class PushToggle {
  constructor(button, status) {
    this.button = button;
    this.status = status;
    this.subscriptionId = null;
    button.addEventListener('click', () => this.toggle());
  }

  async registration() {
    await navigator.serviceWorker.register('sw.js');
    return navigator.serviceWorker.ready;
  }

  /** Show whether this browser is subscribed (after sign-in, or when the panel opens). */
  async load() {
    if (!supported()) {
      this.button.hidden = true;
      this.status.textContent = 'This browser cannot receive push notifications.';
      return;
    }
    const registration = await navigator.serviceWorker.getRegistration();
    const subscription = registration ? await registration.pushManager.getSubscription() : null;
    this.subscriptionId = null;
    if (subscription) {
      const mine = await request('/push/subscriptions');
      const stored = (mine.subscriptions || []).find((s) => s.endpoint === subscription.endpoint);
      this.subscriptionId = stored ? stored.id : null;
    }
    this.render();
  }

  render() {
    const on = Boolean(this.subscriptionId);
    this.button.textContent = on ? 'Turn off push notifications on this device' : 'Turn on push notifications on this device';
    this.button.dataset.state = on ? 'on' : 'off';
    if (!this.status.dataset.error) {
      this.status.textContent = on
        ? 'Push notifications are on for this device, even with the dashboard closed.'
        : 'Push notifications are off for this device.';
    }
  }

  say(text, error = false) {
    this.status.textContent = text;
    if (error) this.status.dataset.error = '1';
    else delete this.status.dataset.error;
  }

  async toggle() {
    this.button.disabled = true;
    this.say('');
    try {
      if (this.subscriptionId) await this.turnOff();
      else await this.turnOn();
    } catch (error) {
      if (error.status !== 401) this.say(`Could not change push notifications: ${error.message}`, true);
    } finally {
      this.button.disabled = false;
      this.render();
    }
  }

  async turnOn() {
    const permission = await window.Notification.requestPermission();
    if (permission !== 'granted') {
      this.say('Notifications are blocked for this site in your browser settings.', true);
      return;
    }
    const { publicKey } = await request('/push/public-key');
    const registration = await this.registration();
    let subscription;
    try {
      subscription = await registration.pushManager.subscribe({
        userVisibleOnly: true,
        applicationServerKey: keyBytes(publicKey),
      });
    } catch (error) {
      this.say(`This browser could not reach its push service: ${error.message}`, true);
      return;
    }
    const stored = await request('/push/subscriptions', { method: 'POST', body: subscription.toJSON() });
    this.subscriptionId = stored.subscription.id;
  }

  async turnOff() {
    const registration = await navigator.serviceWorker.getRegistration();
    const subscription = registration ? await registration.pushManager.getSubscription() : null;
    await request(`/push/subscriptions/${encodeURIComponent(this.subscriptionId)}`, { method: 'DELETE' });
    if (subscription) await subscription.unsubscribe();
    this.subscriptionId = null;
  }
}

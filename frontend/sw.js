/**
 * The dashboard's service worker: Web Push about your jobs while no dashboard page is open.
 *
 * The push service hands it the notifier's payload (decrypted by the browser):
 * {type, eventId, jobId, workspaceId, title, body, url, tag}. It shows a system notification;
 * a click takes an open dashboard tab to the job's card (/?workspace=…#job-…), or opens one there.
 */

self.addEventListener('install', (event) => event.waitUntil(self.skipWaiting()));
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('push', (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch {
    message = { title: 'vidproc', body: event.data ? event.data.text() : '' };
  }
  const url = new URL(message.url || '/', self.registration.scope).href;
  event.waitUntil(
    self.registration.showNotification(message.title || 'vidproc', {
      body: message.body || '',
      tag: message.tag || undefined,
      data: { url, jobId: message.jobId || null, type: message.type || null },
    }),
  );
});

/** A dashboard tab of this origin, if one is open. */
async function dashboardTab() {
  const tabs = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  return tabs.find((tab) => new URL(tab.url).origin === self.location.origin) || null;
}

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || self.registration.scope;
  event.waitUntil(
    (async () => {
      const tab = await dashboardTab();
      if (!tab) return self.clients.openWindow(url);
      const shown = await tab.navigate(url);
      try {
        await (shown || tab).focus();
      } catch {
        // Focusing needs the click's user activation; the tab is on the card either way.
      }
      return shown;
    })(),
  );
});

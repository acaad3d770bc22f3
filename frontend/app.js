/**
 * The dashboard's entry point: wires sign-in, the header (workspace, credits, account, the link
 * to the settings view), the upload panel with its output select, the job list, the player,
 * retries, buying credits and the credit history together.
 */

import { onUnauthorized, request, SESSION_EXPIRED_MESSAGE } from './api.js';
import { getToken, hasExpiredSession, signIn, signOut, signedInEmail } from './auth.js';
import { plural } from './format.js';
import { JobsView } from './jobs.js';
import { CreditHistory } from './ledger.js';
import { BrowserNotifier, NotificationPanel } from './notifications.js';
import { Purchases } from './purchases.js';
import { CancelController } from './cancel.js';
import { RetryDialog } from './dialog.js';
import { Player } from './player.js';
import { Presets } from './presets.js';
import { RetentionPanel } from './retention.js';
import { RetryController } from './retry.js';
import { config } from './settings.js';
import { DefaultPresetForm, wantsSettings } from './settings-view.js';
import { Uploader } from './upload.js';

const $ = (id) => document.getElementById(id);
const WORKSPACE_KEY = 'vidproc.workspaceId';

const state = { workspaces: [], workspaceId: null, credits: null, session: 0 };

const ctx = {
  workspaceQuery: () => (state.workspaceId ? { workspaceId: state.workspaceId } : {}),
  workspaceBody: () => (state.workspaceId ? { workspaceId: state.workspaceId } : {}),
  credits: () => state.credits,
  canBuy: () => Boolean(purchases && purchases.canBuy),
  refreshCredits,
  announce,
};

let jobs;
let retry;
let canceller;
let uploader;
let notifier;
let panel;
let presets;
let player;
let storage; // the "Storage" panel (frontend/retention.js)
let purchases;
let creditHistory;

/** Say something in the polite live region (and show it in the status line). */
function announce(message) {
  const region = $('live-status');
  region.textContent = '';
  // A fresh text node after a tick makes screen readers repeat an identical message.
  setTimeout(() => {
    region.textContent = message;
  }, 50);
}

// --- views ---------------------------------------------------------------------------------

function showView(name) {
  $('signin-view').hidden = name !== 'signin';
  $('dashboard-view').hidden = name !== 'dashboard';
}

function showSignIn(message = '') {
  state.session += 1;
  jobs.stop();
  jobs.reset();
  retry.reset();
  uploader.reset();
  notifier.reset();
  purchases.reset();
  creditHistory.reset();
  state.workspaceId = null;
  state.credits = null;
  showView('signin');
  const notice = $('signin-message');
  notice.textContent = message;
  notice.hidden = !message;
  $('signin-error').hidden = true;
  $('signin-password').value = '';
  $('signin-email').focus();
}

function onSessionExpired(message) {
  if (!$('signin-view').hidden && $('signin-message').textContent === message) return;
  const email = signedInEmail();
  signOut();
  showSignIn(message);
  if (email) {
    // The same person signs in again: keep their email, start at the password.
    $('signin-email').value = email;
    $('signin-password').focus();
  }
}

/** The upload and the jobs, or the settings (#settings): one of them at a time. */
function showPage() {
  const settings = wantsSettings();
  $('main-view').hidden = settings;
  $('settings-view').hidden = !settings;
  const link = $('settings-link');
  link.textContent = settings ? 'Back to jobs' : 'Settings';
  link.setAttribute('href', settings ? '#' : '#settings');
  if (settings) $('settings-heading').focus();
}

// --- header --------------------------------------------------------------------------------

function currentWorkspace() {
  return state.workspaces.find((ws) => ws.id === state.workspaceId) || null;
}

function renderCredits() {
  const credits = $('credits');
  const owed = typeof state.credits === 'number' && state.credits < 0;
  if (typeof state.credits === 'number') {
    // Below 0 only after a purchase was refunded or disputed: the workspace owes credits.
    credits.textContent = owed ? `Owes ${plural(-state.credits, 'credit')}` : plural(state.credits, 'credit');
    credits.dataset.credits = String(state.credits);
  } else {
    credits.textContent = '…';
    delete credits.dataset.credits;
  }
  credits.classList.toggle('credits-owed', owed);
  const notice = $('credits-owed');
  notice.hidden = !owed;
  if (owed) {
    notice.textContent = `This workspace owes ${plural(-state.credits, 'credit')}: a purchase was refunded or `
      + 'disputed. Jobs cannot be started or retried until credits are bought to cover it.';
  }
}

function renderHeader() {
  const workspace = currentWorkspace();
  $('workspace-name').textContent = workspace ? workspace.name || workspace.id : 'No workspace';
  const several = state.workspaces.length > 1;
  $('workspace-picker').hidden = !several;
  $('workspace-label').hidden = several;
  if (several) {
    const select = $('workspace-select');
    select.replaceChildren(
      ...state.workspaces.map((ws) => {
        const option = document.createElement('option');
        option.value = ws.id;
        option.textContent = ws.name || ws.id;
        option.selected = ws.id === state.workspaceId;
        return option;
      }),
    );
  }
  $('user-email').textContent = signedInEmail();
  renderCredits();
}

async function refreshCredits() {
  if (!state.workspaceId) return;
  const session = state.session;
  const workspaceId = state.workspaceId;
  try {
    const data = await request('/credits', { query: { workspaceId } });
    if (session !== state.session || workspaceId !== state.workspaceId) return;
    state.credits = data.credits;
    const workspace = currentWorkspace();
    if (workspace) workspace.credits = data.credits;
    renderCredits();
    creditHistory.refresh();
  } catch {
    // The header keeps the last known balance; the action that needed it shows its own error.
  }
}

function chooseWorkspace(workspaces) {
  // A link from an email names the workspace: /?workspace=ws#job-<id>
  const linked = new URLSearchParams(window.location.search).get('workspace');
  if (linked && workspaces.some((ws) => ws.id === linked)) return linked;
  const saved = sessionStorage.getItem(WORKSPACE_KEY);
  if (saved && workspaces.some((ws) => ws.id === saved)) return saved;
  return workspaces.length > 0 ? workspaces[0].id : null;
}

function selectWorkspace(id) {
  state.workspaceId = id;
  sessionStorage.setItem(WORKSPACE_KEY, id);
  const workspace = currentWorkspace();
  state.credits = workspace ? workspace.credits : null;
  renderHeader();
  jobs.reset();
  retry.reset();
  uploader.reset();
  notifier.reset();
  panel.reset();
  storage.reset();
  storage.load();
  purchases.reset();
  creditHistory.reset();
  purchases.load();
  jobs.start();
  refreshCredits();
  presets.load();
}

// --- dashboard -----------------------------------------------------------------------------

async function enterDashboard() {
  const session = state.session;
  showView('dashboard');
  $('dashboard-error').hidden = true;
  $('user-email').textContent = signedInEmail();
  renderCredits();
  let me;
  try {
    me = await request('/me');
  } catch (error) {
    if (error.status === 401 || session !== state.session) return;
    $('dashboard-error').textContent = `Could not load your account: ${error.message}`;
    $('dashboard-error').hidden = false;
    return;
  }
  if (session !== state.session) return;
  state.workspaces = (me && me.workspaces) || [];
  if (state.workspaces.length === 0) {
    renderHeader();
    $('dashboard-error').textContent = 'You are not a member of any workspace yet.';
    $('dashboard-error').hidden = false;
    return;
  }
  selectWorkspace(chooseWorkspace(state.workspaces));
  purchases.handleReturn();
}

async function download(job) {
  jobs.setUi(job.id, { downloading: true, message: null });
  try {
    const data = await request(`/jobs/${encodeURIComponent(job.id)}/download`, { query: ctx.workspaceQuery() });
    announce(`Downloading ${job.originalFilename || 'the video'}.`);
    window.location.assign(data.url);
  } catch (error) {
    if (error.status !== 401) {
      jobs.setUi(job.id, { message: error.message, messageKind: 'error', messageFor: 'completed' });
    }
  } finally {
    jobs.setUi(job.id, { downloading: false });
  }
}

/** An email's link ends in #job-<id>: once that card is on screen, bring it into view (once). */
function revealLinkedJob() {
  const match = /^#job-([A-Za-z0-9-]+)$/.exec(window.location.hash);
  if (!match) return;
  const cardNode = document.querySelector(`[data-testid="job-card"][data-job-id="${match[1]}"]`);
  if (!cardNode) return;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  cardNode.classList.add('job-card-linked');
  cardNode.scrollIntoView({ block: 'center' });
}

// --- start ---------------------------------------------------------------------------------

function wire() {
  presets = new Presets(ctx, { select: $('preset-select'), hint: $('preset-hint') });
  player = new Player(ctx, {
    dialog: $('player'),
    title: $('player-title'),
    video: $('player-video'),
    close: $('player-close'),
    toggle: $('player-toggle'),
    mute: $('player-mute'),
    fullscreen: $('player-fullscreen'),
    seek: $('player-seek'),
    preview: $('seek-preview'),
    thumb: $('seek-thumb'),
    previewTime: $('seek-time'),
    time: $('player-time'),
    status: $('player-status'),
    error: $('player-error'),
  });
  jobs = new JobsView(
    {
      section: $('jobs-section'),
      list: $('job-list'),
      empty: $('jobs-empty'),
      loadMoreButton: $('load-more'),
      listError: $('jobs-error'),
    },
    ctx,
    {
      onRetry: (job) => retry.retryOne(job),
      onReplace: (job) => retry.chooseReplacement(job),
      onCancel: (job) => canceller.cancelOne(job),
      onDownload: download,
      onPlay: (job) => player.open(job),
      presetLabel: (id) => presets.label(id),
      onBuyCredits: () => purchases.open(),
    },
  );
  const dialog = new RetryDialog(
    {
      dialog: $('retry-dialog'),
      message: $('retry-dialog-message'),
      toggle: $('retry-settings-toggle'),
      settings: $('retry-settings'),
      select: $('retry-preset'),
    },
    presets,
  );
  retry = new RetryController(
    ctx,
    jobs,
    { button: $('retry-all'), note: $('retry-all-note'), results: $('batch-results') },
    dialog,
    $('replace-input'),
  );
  new DefaultPresetForm(ctx, presets, {
    form: $('preset-settings'),
    select: $('default-preset'),
    status: $('default-preset-status'),
  });
  presets.onChange(() => jobs.render());
  canceller = new CancelController(ctx, jobs);
  notifier = new BrowserNotifier($('browser-notify'), $('browser-notify-status'));
  jobs.onChange((shown) => notifier.observe(shown));
  jobs.onChange(revealLinkedJob);
  panel = new NotificationPanel(ctx);
  storage = new RetentionPanel($('retention-panel'), ctx);
  creditHistory = new CreditHistory(ctx, {
    panel: $('credit-history'),
    list: $('ledger-list'),
    more: $('ledger-more'),
    error: $('ledger-error'),
  });
  purchases = new Purchases(
    {
      workspaceId: () => state.workspaceId,
      workspaceName: () => (currentWorkspace() ? currentWorkspace().name || state.workspaceId : ''),
      role: () => (currentWorkspace() ? currentWorkspace().role : null),
      refreshCredits,
      onCredited: () => jobs.refresh(),
      announce,
    },
    {
      button: $('buy-credits'),
      dialog: $('buy-dialog'),
      workspace: $('buy-workspace'),
      list: $('pack-list'),
      error: $('buy-error'),
      close: $('buy-close'),
      status: $('purchase-status'),
    },
  );
  uploader = new Uploader(
    {
      input: $('upload-input'),
      dropzone: $('dropzone'),
      progressWrap: $('upload-progress-wrap'),
      progress: $('upload-progress'),
      progressText: $('upload-progress-text'),
      error: $('upload-error'),
      status: $('upload-status'),
      cancel: $('upload-cancel'),
      pendingWrap: $('pending-uploads'),
      pendingList: $('pending-upload-list'),
    },
    ctx,
    jobs,
    presets,
  );

  onUnauthorized(onSessionExpired);
  window.addEventListener('hashchange', showPage);
  showPage();

  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const email = $('signin-email').value.trim();
    const password = $('signin-password').value;
    const error = $('signin-error');
    if (!email || !password) {
      error.textContent = 'Enter your email and password.';
      error.hidden = false;
      return;
    }
    const button = $('signin-submit');
    button.disabled = true;
    button.textContent = 'Signing in...';
    error.hidden = true;
    try {
      await signIn(email, password);
      $('signin-message').hidden = true;
      state.session += 1;
      await enterDashboard();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });

  $('sign-out').addEventListener('click', () => {
    signOut();
    sessionStorage.removeItem(WORKSPACE_KEY);
    showSignIn('You have signed out.');
  });

  $('workspace-select').addEventListener('change', (event) => selectWorkspace(event.target.value));
}

function main() {
  try {
    config();
  } catch (error) {
    $('fatal').textContent = error.message;
    $('fatal').hidden = false;
    return;
  }
  wire();
  if (getToken()) {
    state.session += 1;
    enterDashboard();
  } else if (hasExpiredSession()) {
    onSessionExpired(SESSION_EXPIRED_MESSAGE);
  } else {
    showSignIn();
  }
}

main();

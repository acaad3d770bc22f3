/**
 * The player: a completed job (or a long HLS video still being encoded) plays before anyone
 * downloads it.
 *
 * - GET /jobs/{id}/playback says what to play: an MP4 (presigned URL) in the <video> element, or
 *   an HLS master playlist served by the API. HLS plays natively where the browser can (Safari,
 *   Chromium 142+), else through hls.js (npm, pinned; served by the dashboard at
 *   /vendor/hls.js/hls.min.js and loaded the first time it is needed); a stream still growing goes
 *   through hls.js wherever it runs (Chromium's own player refuses live playlists).
 * - The links expire (PLAYBACK_URL_EXPIRY_SECONDS): when the player is refused (403) or a segment
 *   is gone, it asks for a fresh playback and resumes where it was.
 * - The seek bar shows the thumbnails: their WebVTT index maps each interval to a cell of a
 *   sprite sheet (`sheet.jpg#xywh=x,y,w,h`); hovering or dragging shows that cell.
 */

import { request } from './api.js';
import { formatDuration } from './format.js';
import { show } from './dom.js';

const HLS_TYPE = 'application/vnd.apple.mpegurl';
const HLS_SCRIPT = '/vendor/hls.js/hls.min.js';
const MAX_REFRESHES = 5;

let hlsLoading = null;

/** hls.js, loaded once on first use (a classic script that defines window.Hls). */
function loadHlsJs() {
  if (window.Hls) return Promise.resolve(window.Hls);
  if (!hlsLoading) {
    hlsLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = HLS_SCRIPT;
      script.onload = () => (window.Hls ? resolve(window.Hls) : reject(new Error('hls.js did not load')));
      script.onerror = () => {
        hlsLoading = null;
        reject(new Error('The streaming player could not be loaded.'));
      };
      document.head.append(script);
    });
  }
  return hlsLoading;
}

/** The cues of a thumbnails WebVTT file: [{start, end, url, x, y, w, h}]. */
export function parseThumbnails(text) {
  const cues = [];
  const toSeconds = (stamp) => {
    const parts = stamp.trim().split(':').map(Number);
    return parts.reduce((total, part) => total * 60 + part, 0);
  };
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i += 1) {
    const match = /^([\d:.]+)\s+-->\s+([\d:.]+)/.exec(lines[i]);
    if (!match) continue;
    const target = (lines[i + 1] || '').trim();
    const [url, fragment] = target.split('#xywh=');
    if (!fragment) continue;
    const [x, y, w, h] = fragment.split(',').map(Number);
    cues.push({ start: toSeconds(match[1]), end: toSeconds(match[2]), url, x, y, w, h });
  }
  return cues;
}

/** ctx: { workspaceQuery(), announce(message) }; els: the player dialog's elements. */
export class Player {
  constructor(ctx, els) {
    this.ctx = ctx;
    this.els = els;
    this.video = els.video;
    this.hls = null;
    this.job = null;
    this.cues = [];
    this.refreshes = 0;
    this.session = 0;
    els.close.addEventListener('click', () => els.dialog.close());
    els.dialog.addEventListener('close', () => this.stop());
    els.toggle.addEventListener('click', () => this.toggle());
    els.mute.addEventListener('click', () => {
      this.video.muted = !this.video.muted;
      this.renderButtons();
    });
    els.fullscreen.addEventListener('click', () => {
      const stage = this.video.parentElement;
      if (document.fullscreenElement) document.exitFullscreen();
      else if (stage.requestFullscreen) stage.requestFullscreen();
    });
    for (const type of ['play', 'pause', 'volumechange']) this.video.addEventListener(type, () => this.renderButtons());
    this.video.addEventListener('timeupdate', () => this.renderTime());
    this.video.addEventListener('durationchange', () => this.renderTime());
    this.video.addEventListener('error', () => this.onMediaError());
    this.video.addEventListener('click', () => this.toggle());
    const seek = els.seek;
    seek.addEventListener('input', () => {
      const duration = this.duration();
      if (duration) this.video.currentTime = (Number(seek.value) / 1000) * duration;
      this.preview(Number(seek.value) / 1000);
    });
    seek.addEventListener('pointermove', (event) => {
      const box = seek.getBoundingClientRect();
      this.preview(Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1));
    });
    seek.addEventListener('pointerleave', () => show(els.preview, false));
    seek.addEventListener('blur', () => show(els.preview, false));
  }

  /** Open the player on a job (its card's Play). */
  async open(job) {
    this.session += 1;
    this.job = job;
    this.refreshes = 0;
    this.cues = [];
    this.wantsPlay = true; // the person pressed Play: a refresh goes on playing
    this.els.title.textContent = job.originalFilename || 'Video';
    this.setError('');
    this.els.status.textContent = 'Loading...';
    if (!this.els.dialog.open) this.els.dialog.showModal();
    await this.load(0, true);
  }

  async load(startAt, autoplay) {
    const session = this.session;
    let playback;
    try {
      playback = await request(`/jobs/${encodeURIComponent(this.job.id)}/playback`, {
        query: this.ctx.workspaceQuery(),
      });
    } catch (error) {
      if (session === this.session) this.setError(error.message);
      return;
    }
    if (session !== this.session) return;
    this.playback = playback;
    this.detach();
    this.video.poster = playback.posterUrl || '';
    this.els.status.textContent = playback.live
      ? 'Still processing: the rest plays as it is encoded.'
      : '';
    this.els.dialog.dataset.kind = playback.kind;
    this.els.dialog.dataset.live = String(Boolean(playback.live));
    try {
      await this.attach(playback);
    } catch (error) {
      this.setError(error.message);
      return;
    }
    if (startAt > 0) {
      const resume = () => {
        this.video.currentTime = startAt;
      };
      if (this.video.readyState >= 1) resume();
      else this.video.addEventListener('loadedmetadata', resume, { once: true });
    }
    if (autoplay) this.play();
    if (playback.thumbnailsUrl && this.cues.length === 0) this.loadThumbnails(playback.thumbnailsUrl, session);
  }

  async attach(playback) {
    const video = this.video;
    if (playback.kind === 'mp4') {
      this.els.dialog.dataset.engine = 'native';
      video.src = playback.url;
      return;
    }
    const native = Boolean(video.canPlayType(HLS_TYPE));
    // A growing stream (EVENT, no ENDLIST yet) goes through hls.js wherever it runs: Chromium's own
    // HLS player refuses live playlists (measured with 156), Safari's plays them too.
    if (native && !playback.live) {
      this.els.dialog.dataset.engine = 'native';
      video.src = playback.url;
      return;
    }
    const Hls = await loadHlsJs().catch((error) => {
      if (native) return null;
      throw error;
    });
    if (!Hls || !Hls.isSupported()) {
      if (!native) throw new Error('This browser cannot play streaming video.');
      this.els.dialog.dataset.engine = 'native';
      video.src = playback.url;
      return;
    }
    this.els.dialog.dataset.engine = 'hls.js';
    // A growing stream (EVENT playlist) starts at the beginning, not at its live edge.
    const hls = new Hls({ startPosition: 0 });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_event, data) => {
      const status = data.response && data.response.code;
      if (status === 403 || status === 404 || status === 410) {
        this.refresh();
        return;
      }
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else this.refresh();
    });
    hls.loadSource(playback.url);
    hls.attachMedia(video);
  }

  /** The Play/Pause button, and a click on the picture. */
  toggle() {
    this.wantsPlay = this.video.paused;
    if (this.wantsPlay) this.play();
    else this.video.pause();
  }

  play() {
    const started = this.video.play();
    if (started && typeof started.catch === 'function') {
      started.catch(() => {
        this.els.status.textContent = 'Press Play to start.';
      });
    }
  }

  /** The links expired (or a segment moved when the job completed): ask again, resume here. */
  refresh() {
    if (!this.job || this.refreshing) return;
    if (this.refreshes >= MAX_REFRESHES) {
      this.setError('The video could not be loaded. Close the player and try again.');
      return;
    }
    this.refreshes += 1;
    this.refreshing = true;
    const at = this.video.currentTime || 0;
    this.load(at, this.wantsPlay).finally(() => {
      this.refreshing = false;
    });
  }

  onMediaError() {
    if (this.hls || !this.job || !this.video.getAttribute('src')) return;
    const error = this.video.error;
    // A refused URL (an expired link answers 403) shows as a network error, or, from Chromium's
    // own HLS player, as a source it could not parse: fetch fresh links. A decode error is final.
    if (error && error.code === error.MEDIA_ERR_DECODE) {
      this.setError('This video could not be played in this browser. Download it instead.');
      return;
    }
    this.refresh();
  }

  async loadThumbnails(url, session) {
    try {
      const response = await fetch(url);
      if (!response.ok) return;
      const cues = parseThumbnails(await response.text());
      if (session !== this.session) return;
      this.cues = cues;
      this.els.preview.dataset.cues = String(cues.length);
      // Fetch the sheets now: the preview then shows at once.
      this.sheets = new Map();
      for (const cue of cues) {
        if (this.sheets.has(cue.url)) continue;
        const image = new Image();
        image.onload = () => {
          const loaded = [...this.sheets.values()].filter((i) => i.complete && i.naturalWidth > 0).length;
          this.els.preview.dataset.sheetsLoaded = String(loaded);
        };
        image.src = cue.url;
        this.sheets.set(cue.url, image);
      }
    } catch {
      // No thumbnails: the seek bar still works.
    }
  }

  duration() {
    const d = this.video.duration;
    if (Number.isFinite(d) && d > 0) return d;
    return this.job && this.job.durationSeconds ? this.job.durationSeconds : 0;
  }

  /** Show the thumbnail at `fraction` of the timeline above the seek bar. */
  preview(fraction) {
    const { preview, thumb, previewTime, seek } = this.els;
    const duration = this.duration();
    const at = fraction * duration;
    const cue = this.cues.find((c) => at >= c.start && at < c.end) || this.cues[this.cues.length - 1];
    if (!cue || !duration) {
      show(preview, false);
      return;
    }
    thumb.style.backgroundImage = `url("${cue.url}")`;
    thumb.style.backgroundPosition = `-${cue.x}px -${cue.y}px`;
    thumb.style.width = `${cue.w}px`;
    thumb.style.height = `${cue.h}px`;
    thumb.dataset.start = String(cue.start);
    previewTime.textContent = formatDuration(at);
    const box = seek.getBoundingClientRect();
    preview.style.left = `${Math.min(Math.max(fraction * box.width - cue.w / 2, 0), box.width - cue.w)}px`;
    show(preview, true);
  }

  renderTime() {
    const duration = this.duration();
    const now = this.video.currentTime || 0;
    this.els.time.textContent = `${formatDuration(now)} / ${formatDuration(duration)}`;
    if (duration && document.activeElement !== this.els.seek) {
      this.els.seek.value = String(Math.round((now / duration) * 1000));
    }
  }

  renderButtons() {
    this.els.toggle.textContent = this.video.paused ? 'Play' : 'Pause';
    this.els.mute.textContent = this.video.muted ? 'Unmute' : 'Mute';
  }

  setError(message) {
    this.els.error.textContent = message;
    show(this.els.error, Boolean(message));
    if (message) this.els.status.textContent = '';
  }

  detach() {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.video.removeAttribute('src');
    this.video.load();
  }

  stop() {
    this.session += 1;
    this.video.pause();
    this.detach();
    this.job = null;
    show(this.els.preview, false);
  }
}

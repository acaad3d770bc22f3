/** Formatting for people: dates, sizes, counts. */

const MB = 1024 * 1024;

/** "10/19/2025, 2:30 PM" in the browser's locale and time zone. */
export function formatTimestamp(iso) {
  const date = parseDate(iso);
  if (!date) return '';
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: '2-digit',
  });
}

/**
 * Parse the API's ISO 8601 timestamps. Python writes microseconds ("...00.123456+00:00");
 * keep three fraction digits so every engine reads it the same way.
 */
export function parseDate(iso) {
  if (!iso) return null;
  const trimmed = String(iso).replace(/(\.\d{3})\d+/, '$1');
  const date = new Date(trimmed);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Bytes as megabytes with one decimal: "12.3 MB". */
export function formatMB(bytes) {
  const mb = bytes / MB;
  return `${mb.toFixed(mb > 0 && mb < 1 ? 2 : 1)} MB`;
}

/** A size for people: KB below a megabyte ("820 KB"), MB below a gigabyte ("12.3 MB"), GB above ("1.25 GB"). */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  if (n >= 1024 * MB) return `${(n / (1024 * MB)).toFixed(2)} GB`;
  if (n >= MB) return formatMB(n);
  return `${Math.max(1, Math.round(n / 1024))} KB`;
}

/** A transfer rate: "12.3 MB/s". */
export function formatRate(bytesPerSecond) {
  return `${formatSize(bytesPerSecond)}/s`;
}

/** Time left, rounded for people: "about 40 s left", "about 3 min left", "about 1 h 5 min left". */
export function formatTimeLeft(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '';
  if (seconds < 60) return `about ${Math.max(1, Math.round(seconds))} s left`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `about ${minutes} min left`;
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  return `about ${hours} h${rest ? ` ${rest} min` : ''} left`;
}

/** "1 credit", "3 credits". */
export function plural(count, singular, pluralForm = `${singular}s`) {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** "0:07", "12:03", "1:02:03": a length as a player shows it. */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.round(Number(seconds) || 0));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = String(total % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${secs}` : `${minutes}:${secs}`;
}


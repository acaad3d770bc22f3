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

/** A file's size for people: MB below a gigabyte ("12.3 MB"), GB above ("1.25 GB"). */
export function formatSize(bytes) {
  const gb = bytes / (1024 * MB);
  return gb >= 1 ? `${gb.toFixed(2)} GB` : formatMB(bytes);
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

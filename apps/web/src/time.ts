// How times and durations read on screen; the API speaks ISO 8601 UTC and whole seconds.

/** A moment to the second, date included. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

/** How far `iso` lies from `now`, in words: "3 min 5 s ago", "in 2 h 4 min", "just now". */
export function relativeTime(iso: string, now: number): string {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (Math.abs(seconds) < 2) return 'just now';
  // Past an hour the seconds are noise.
  const magnitude =
    Math.abs(seconds) >= 3600 ? Math.abs(seconds) - (Math.abs(seconds) % 60) : Math.abs(seconds);
  return seconds > 0 ? `in ${formatDuration(magnitude)}` : `${formatDuration(magnitude)} ago`;
}

/** A moment within the next minutes, to the second (a retry). */
export function formatClock(iso: string | null | undefined): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleTimeString(undefined, { timeStyle: 'medium' });
}

export function formatDuration(seconds: number): string {
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = seconds % 60;
  const parts = [hours && `${hours} h`, minutes && `${minutes} min`, rest && `${rest} s`].filter(Boolean);
  return parts.length > 0 ? parts.join(' ') : '0 s';
}

/** Time left until `iso` by the server's clock `now`, to the second: "4 min 05 s left", or null once passed. */
export function timeLeft(iso: string | null | undefined, now: number): string | null {
  if (!iso) return null;
  const seconds = Math.ceil((Date.parse(iso) - now) / 1000);
  return seconds > 0 ? `${formatDuration(seconds)} left` : null;
}

/** What a request is by now: ENDED or EXPIRED the moment its window or deadline passes, before the broker says so. */
export function stateByNow(
  request: { state: string; notAfter: string | null; pendingUntil: string | null; activateBy: string | null },
  now: number,
): string {
  const passed = (iso: string | null) => iso !== null && Date.parse(iso) <= now;
  if (request.state === 'ACTIVE' && passed(request.notAfter)) return 'ENDED';
  if (request.state === 'PENDING' && passed(request.pendingUntil)) return 'EXPIRED';
  if (request.state === 'APPROVED' && passed(request.activateBy)) return 'EXPIRED';
  return request.state;
}

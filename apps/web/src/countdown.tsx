// Deadlines to the second, counted down on the server's clock (the live stream's hello carries it).
import { formatDuration, formatTime, timeLeft } from './time';

/** A deadline to the second by the server's clock, with the time left while it is ahead. */
export function Deadline({ iso, now }: { iso: string | null; now: number }) {
  const left = timeLeft(iso, now);
  return (
    <>
      {formatTime(iso)}
      {left && (
        <span className="muted" data-time-left>
          {' '}
          ({left})
        </span>
      )}
    </>
  );
}

/** Time left until `until` (epoch ms, server clock) to the second, ticking; "now" once it has passed. */
export function Countdown({ until, now }: { until: number; now: number }) {
  const seconds = Math.ceil((until - now) / 1000);
  return <span data-countdown>{seconds > 0 ? formatDuration(seconds) : 'now'}</span>;
}

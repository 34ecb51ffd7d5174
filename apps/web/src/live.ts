// Live updates (DESIGN §10): one Server-Sent Events stream per tab from GET /api/events. Events name a
// request and its new state; pages refetch what they show. While the stream is down, pages poll instead,
// and catch up once it is back. The stream's hello carries the server's clock, so countdowns run on it.
import { useEffect, useRef, useState } from 'react';

/** A change to one request, or (requestId null) "anything may have changed": refetch everything shown. */
export interface LiveEvent {
  requestId: string | null;
  state?: string;
  grantState?: string | null;
}

const POLL_MS = 5000;
const RECONNECT_MS = 10_000;
/** Countdowns re-render twice a second, so a second boundary shows within half a second. */
const TICK_MS = 500;

const listeners = new Set<(event: LiveEvent) => void>();
let source: EventSource | null = null;
let pollTimer: ReturnType<typeof setInterval> | null = null;
let reconnectTimer: ReturnType<typeof setTimeout> | null = null;
let helloSeen = false;
/** The server's clock minus this browser's, in milliseconds. */
let clockOffsetMs = 0;

function notify(event: LiveEvent): void {
  for (const listener of listeners) listener(event);
}

function startPolling(): void {
  pollTimer ??= setInterval(() => notify({ requestId: null }), POLL_MS);
}

function stopPolling(): void {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
}

function connect(): void {
  const stream = new EventSource('/api/events');
  source = stream;
  stream.addEventListener('hello', (message) => {
    const { serverTime } = JSON.parse((message as MessageEvent<string>).data) as { serverTime: string };
    clockOffsetMs = Date.parse(serverTime) - Date.now();
    stopPolling();
    // A reconnect may have missed events: catch up once.
    if (helloSeen) notify({ requestId: null });
    helloSeen = true;
  });
  stream.addEventListener('request', (message) => {
    notify(JSON.parse((message as MessageEvent<string>).data) as LiveEvent);
  });
  stream.addEventListener('error', () => {
    startPolling();
    // CLOSED: the broker refused the stream (signed out, too many tabs); try again later, poll meanwhile.
    if (stream.readyState === EventSource.CLOSED && source === stream) {
      source = null;
      reconnectTimer = setTimeout(() => {
        reconnectTimer = null;
        if (!source) connect();
      }, RECONNECT_MS);
    }
  });
}

/** Opens the stream for the signed-in person (once per tab). */
export function startLive(): void {
  if (!source && !reconnectTimer) connect();
}

/** Closes the stream and stops polling (sign-out). */
export function stopLive(): void {
  source?.close();
  source = null;
  if (reconnectTimer) clearTimeout(reconnectTimer);
  reconnectTimer = null;
  stopPolling();
  helloSeen = false;
}

/** The server's clock now, in epoch milliseconds. */
export function serverNow(): number {
  return Date.now() + clockOffsetMs;
}

/** Calls `onEvent` for each live event while the component is mounted. */
export function useLiveEvents(onEvent: (event: LiveEvent) => void): void {
  const latest = useRef(onEvent);
  useEffect(() => {
    latest.current = onEvent;
  });
  useEffect(() => {
    const listener = (event: LiveEvent) => latest.current(event);
    listeners.add(listener);
    return () => {
      listeners.delete(listener);
    };
  }, []);
}

/** The server's clock, re-rendering twice a second (countdowns). */
export function useServerNow(): number {
  const [now, setNow] = useState(serverNow);
  useEffect(() => {
    const timer = setInterval(() => setNow(serverNow()), TICK_MS);
    return () => clearInterval(timer);
  }, []);
  return now;
}

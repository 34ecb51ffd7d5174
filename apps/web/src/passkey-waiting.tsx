// "Waiting for your passkey…" while any passkey prompt is open, whichever page asked for it.
import { useSyncExternalStore } from 'react';

let waiting = 0;
const listeners = new Set<() => void>();

function notify(): void {
  for (const listener of listeners) listener();
}

/** Runs one passkey ceremony (`startAuthentication`, `startRegistration`) with the waiting line shown. */
export async function withPasskeyPrompt<T>(ceremony: () => Promise<T>): Promise<T> {
  waiting += 1;
  notify();
  try {
    return await ceremony();
  } finally {
    waiting -= 1;
    notify();
  }
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** The line itself, announced politely; the shell renders it once. */
export function PasskeyWaiting() {
  const shown = useSyncExternalStore(subscribe, () => waiting > 0);
  if (!shown) return null;
  return (
    <p className="passkey-waiting" role="status">
      Waiting for your passkey…
    </p>
  );
}

// Loading state for GETs and busy/error state for actions, the two shapes every page needs.
import { useCallback, useEffect, useState } from 'react';
import { api, describeError } from './api';

/**
 * GETs `path` on mount and on reload() (the person asked); refresh() refetches as background traffic (live
 * events, polling), which does not extend the session. `path` null waits.
 */
export function useApiGet<T>(path: string | null): {
  data: T | undefined;
  error: string | null;
  reload: () => void;
  refresh: () => void;
} {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const [version, setVersion] = useState({ count: 0, background: false });
  useEffect(() => {
    if (path === null) return;
    let current = true;
    api.get<T>(path, { background: version.background }).then(
      (value) => {
        if (!current) return;
        setData(value);
        setError(null);
      },
      (reason: unknown) => {
        if (current) setError(describeError(reason));
      },
    );
    return () => {
      current = false;
    };
  }, [path, version]);
  const reload = useCallback(() => setVersion(({ count }) => ({ count: count + 1, background: false })), []);
  const refresh = useCallback(() => setVersion(({ count }) => ({ count: count + 1, background: true })), []);
  return { data, error, reload, refresh };
}

/** Runs one user action at a time, keeping its error for display. */
export function useAction(): {
  busy: boolean;
  error: string | null;
  run: (work: () => Promise<void>) => Promise<void>;
  clearError: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (work: () => Promise<void>) => {
    setBusy(true);
    setError(null);
    try {
      await work();
    } catch (reason) {
      setError(describeError(reason));
    } finally {
      setBusy(false);
    }
  }, []);
  const clearError = useCallback(() => setError(null), []);
  return { busy, error, run, clearError };
}

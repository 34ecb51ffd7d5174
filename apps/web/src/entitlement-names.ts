// Entitlements by their titles: pages show "Admin API token", not "api-admin-token".
import { useCallback } from 'react';
import type { Entitlement } from './api';
import { useApiGet } from './use-api';

/** The entitlements the person may request or approve, and a lookup of one by id. */
export function useEntitlements(): {
  items: Entitlement[] | undefined;
  error: string | null;
  find: (id: string) => Entitlement | undefined;
  titleOf: (id: string) => string;
} {
  const loaded = useApiGet<{ policyHash: string; items: Entitlement[] }>('/api/entitlements');
  const items = loaded.data?.items;
  const find = useCallback((id: string) => items?.find((item) => item.id === id), [items]);
  // An entitlement outside the person's view (or since removed from the policy) keeps its id.
  const titleOf = useCallback((id: string) => find(id)?.title ?? id, [find]);
  return { items, error: loaded.error, find, titleOf };
}

// The auditor's filters (time range, actor, action, request, entitlement), shared by the events and export
// pages. Times are typed in the browser's zone and sent as UTC; the actor is a username.
import { useId } from 'react';
import { COMMON_ACTIONS } from './audit-types';

/** The filter form's fields, as typed. */
export interface FilterValues {
  /** `datetime-local` values (local time, no zone). */
  from: string;
  to: string;
  actor: string;
  action: string;
  requestId: string;
  entitlementId: string;
}

export const NO_FILTERS: FilterValues = {
  from: '',
  to: '',
  actor: '',
  action: '',
  requestId: '',
  entitlementId: '',
};

const FIELDS = ['from', 'to', 'actor', 'action', 'requestId', 'entitlementId'] as const;

/** The filters as query parameters of GET /api/audit/events (`actor` a username); empty fields left out. */
export function filterParams(values: FilterValues): URLSearchParams {
  const params = new URLSearchParams();
  for (const field of FIELDS) {
    const value = values[field].trim();
    if (value === '') continue;
    params.set(field, field === 'from' || field === 'to' ? localToIso(value) : value);
  }
  return params;
}

/** The filters read back from a query string (the page's address), for a link that keeps them. */
export function filtersFromSearch(search: string): FilterValues {
  const params = new URLSearchParams(search);
  const values = { ...NO_FILTERS };
  for (const field of FIELDS) {
    const value = params.get(field);
    if (value === null) continue;
    values[field] = field === 'from' || field === 'to' ? isoToLocal(value) : value;
  }
  return values;
}

/** `2026-12-04T13:05` (local) as an ISO 8601 UTC time; unparseable text is sent as typed, for the broker to refuse. */
function localToIso(value: string): string {
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? value : time.toISOString();
}

function isoToLocal(value: string): string {
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) return value;
  const local = new Date(time.getTime() - time.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}

/** The six filter fields, inside the caller's form. */
export function AuditFilterFields({
  values,
  onChange,
}: {
  values: FilterValues;
  onChange: (values: FilterValues) => void;
}) {
  const id = useId();
  const set = (field: keyof FilterValues) => (event: { target: { value: string } }) =>
    onChange({ ...values, [field]: event.target.value });
  return (
    <fieldset className="filters">
      <legend>Filters</legend>
      <label>
        From
        <input type="datetime-local" value={values.from} onChange={set('from')} />
      </label>
      <label>
        Until (not included)
        <input type="datetime-local" value={values.to} onChange={set('to')} />
      </label>
      <label>
        Actor (username)
        <input value={values.actor} onChange={set('actor')} autoComplete="off" spellCheck={false} />
      </label>
      <label>
        Action
        <input
          value={values.action}
          onChange={set('action')}
          list={`${id}-actions`}
          autoComplete="off"
          spellCheck={false}
        />
        <datalist id={`${id}-actions`}>
          {COMMON_ACTIONS.map((action) => (
            <option key={action} value={action} />
          ))}
        </datalist>
      </label>
      <label>
        Request id
        <input value={values.requestId} onChange={set('requestId')} autoComplete="off" spellCheck={false} />
      </label>
      <label>
        Entitlement id
        <input
          value={values.entitlementId}
          onChange={set('entitlementId')}
          autoComplete="off"
          spellCheck={false}
        />
      </label>
    </fieldset>
  );
}

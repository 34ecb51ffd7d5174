// JCS (RFC 8785) text of parsed JSON, on the export's and the verifier's hot paths: byte for byte what
// canonicalJson (the `canonicalize` package) writes, at a fraction of its cost for the plain objects, arrays,
// strings, finite numbers, booleans and nulls that JSON.parse and the pg driver return. Anything else (a
// toJSON, a lone surrogate, a non-finite number, undefined) is left to canonicalJson, so its output or error
// stays the one answer.
import { canonicalJson } from '../domain/canonical-json.js';
import type { ExportedEvent } from './manifest.js';

/** A string JSON.stringify writes as `"…"` unchanged: no quote, backslash, control character or surrogate. */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const PLAIN_STRING = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;
const OBJECT_PROTOTYPE = Object.prototype;

interface WellFormed {
  isWellFormed(): boolean;
}

/** Returned by the fast path for a value it does not handle. */
const UNUSUAL = Symbol('unusual');

/** canonicalJson(value), faster for plain JSON data. */
export function jcs(value: unknown): string {
  const text = plainJcs(value);
  return text === UNUSUAL ? canonicalJson(value) : text;
}

/**
 * canonicalJson(event) for an exported event: its ten members in JCS order (action, actorId, at, data, hash,
 * prevHash, requestId, seq, subjectId, subjectType), only `data` serialised generically.
 */
export function eventJcs(event: ExportedEvent): string {
  const { action, actorId, at, data, hash, prevHash, requestId, seq, subjectId, subjectType } = event;
  const dataText = plainJcs(data);
  if (
    dataText === UNUSUAL ||
    typeof data !== 'object' ||
    data === null ||
    Array.isArray(data) ||
    !Number.isSafeInteger(seq) ||
    !isPlainString(action) ||
    !isPlainString(actorId) ||
    !isPlainString(at) ||
    !isPlainString(hash) ||
    !isPlainString(prevHash) ||
    !(requestId === null || isPlainString(requestId)) ||
    !isPlainString(subjectId) ||
    !isPlainString(subjectType) ||
    Object.keys(event).length !== 10
  ) {
    return canonicalJson(event);
  }
  return (
    `{"action":"${action}","actorId":"${actorId}","at":"${at}","data":${dataText},"hash":"${hash}",` +
    `"prevHash":"${prevHash}","requestId":${requestId === null ? 'null' : `"${requestId}"`},"seq":${seq},` +
    `"subjectId":"${subjectId}","subjectType":"${subjectType}"}`
  );
}

function isPlainString(value: unknown): value is string {
  return typeof value === 'string' && PLAIN_STRING.test(value);
}

function quote(text: string): string | typeof UNUSUAL {
  if (PLAIN_STRING.test(text)) return `"${text}"`;
  // String.prototype.isWellFormed is Node 20's (ES2024); tsconfig's lib stops at ES2023.
  return (text as unknown as WellFormed).isWellFormed() ? JSON.stringify(text) : UNUSUAL;
}

/** JCS of plain JSON, or UNUSUAL. Recursion depth is the value's nesting: JSON.parse's own limit bounds it. */
function plainJcs(value: unknown): string | typeof UNUSUAL {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      return Number.isFinite(value) ? JSON.stringify(value) : UNUSUAL;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      return Array.isArray(value) ? arrayJcs(value) : objectJcs(value);
    default:
      return UNUSUAL;
  }
}

function arrayJcs(items: unknown[]): string | typeof UNUSUAL {
  if (Object.getPrototypeOf(items) !== Array.prototype) return UNUSUAL;
  let text = '[';
  for (let index = 0; index < items.length; index++) {
    const item = plainJcs(items[index]);
    if (item === UNUSUAL) return UNUSUAL;
    text += index === 0 ? item : `,${item}`;
  }
  return `${text}]`;
}

function objectJcs(object: object): string | typeof UNUSUAL {
  const prototype = Object.getPrototypeOf(object) as unknown;
  if (prototype !== OBJECT_PROTOTYPE && prototype !== null) return UNUSUAL;
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return UNUSUAL;
  // Default sort: UTF-16 code units, the order JCS requires (and canonicalize uses).
  const keys = Object.keys(object).sort();
  let text = '{';
  for (let index = 0; index < keys.length; index++) {
    const key = quote(keys[index]);
    const item = plainJcs((object as Record<string, unknown>)[keys[index]]);
    if (key === UNUSUAL || item === UNUSUAL) return UNUSUAL;
    text += index === 0 ? `${key}:${item}` : `,${key}:${item}`;
  }
  return `${text}}`;
}

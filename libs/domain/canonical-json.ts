import canonicalize from 'canonicalize';

/**
 * RFC 8785 (JCS) canonical JSON text of a value: the one byte form that everything hashed or signed is built
 * from (audit chain, step-up challenges and subject digests, connector settings as cache keys, webhooks).
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no canonical JSON form');
  return text;
}

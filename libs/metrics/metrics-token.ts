import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * The METRICS_TOKEN bearer check of the broker's and the worker's scrape endpoints. Without a token
 * configured nothing is accepted: the endpoints stay shut rather than open.
 */
export class MetricsToken {
  private readonly expected: Buffer | null;

  constructor(token: string | null) {
    this.expected = token ? digest(token) : null;
  }

  /** True when `authorization` is `Bearer <METRICS_TOKEN>`. */
  accepts(authorization: string | undefined): boolean {
    const header = authorization ?? '';
    const presented = header.startsWith('Bearer ') ? digest(header.slice('Bearer '.length)) : null;
    // Compare digests, so the comparison takes the same time whatever the presented length.
    return Boolean(this.expected && presented && timingSafeEqual(this.expected, presented));
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

import type { Logger } from '@nestjs/common';
import pg from 'pg';

/** The channel an activation notifies, in its own transaction (so on commit), with the hash as payload. */
export const POLICY_ACTIVATED_CHANNEL = 'policy_activated';

const RETRY_MS = 1000;

/**
 * One LISTEN connection for policy activations by any broker instance. `live` only while it listens: a
 * cache may trust itself only then. `onChange` runs on every notification and whenever listening starts or
 * stops, since activations may have been missed in between.
 */
export class ActivationListener {
  live = false;
  private client: pg.Client | null = null;
  private connecting: Promise<void> | null = null;
  private retryAt = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly onChange: () => void,
    private readonly logger: Logger,
  ) {}

  /** Starts listening unless it already does, is connecting, or failed less than a second ago. */
  ensure(): void {
    if (this.closed || this.client || this.connecting || Date.now() < this.retryAt) return;
    this.connecting = this.connect().finally(() => {
      this.connecting = null;
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.live = false;
    await this.connecting;
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.url, application_name: 'jit-policy-listener' });
    client.on('notification', () => this.onChange());
    client.on('error', (error) => this.drop(client, error));
    client.on('end', () => this.drop(client, null));
    try {
      await client.connect();
      await client.query(`LISTEN ${POLICY_ACTIVATED_CHANNEL}`);
    } catch (error) {
      this.retryAt = Date.now() + RETRY_MS;
      this.logger.warn(`Policy activations not listened to (reading per call): ${String(error)}`);
      await client.end().catch(() => undefined);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.onChange();
    this.live = true;
  }

  private drop(client: pg.Client, error: Error | null): void {
    if (this.client !== client) return;
    this.client = null;
    this.live = false;
    this.retryAt = Date.now() + RETRY_MS;
    this.onChange();
    if (!this.closed)
      this.logger.warn(`Policy activation listener lost (reading per call): ${String(error)}`);
    client.end().catch(() => undefined);
  }
}

import { Inject, Injectable, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { Connector } from '../connectors/connector.js';
import { JwtConnector } from '../connectors/jwt.connector.js';
import { PostgresConnector } from '../connectors/postgres.connector.js';
import { SshConnector } from '../connectors/ssh.connector.js';
import { WebhookConnector } from '../connectors/webhook.connector.js';
import { canonicalJson } from '../domain/canonical-json.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';
import { SigningKeyStore } from '../keys/signing-key-store.js';

const MIN_WEBHOOK_SECRET_LENGTH = 16;

/** Connector instances built from a policy's `connectors:` section, secrets resolved from the environment. */
@Injectable()
export class ConnectorRegistry implements OnApplicationBootstrap, OnApplicationShutdown {
  /** The one SSH CA: every `type: ssh` connector signs with it, and its KRL and public key are served. */
  readonly ssh: SshConnector;
  private readonly instances = new Map<string, Connector>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    dataSource: DataSource,
    /** The process's key store (KeysModule), which the jwt and ssh connectors sign with. */
    readonly signingKeys: SigningKeyStore,
  ) {
    this.ssh = new SshConnector(dataSource, signingKeys);
  }

  /** The longest a connector's mint may take before the broker gives up on its answer (a webhook's timeout). */
  get mintTimeoutMs(): number {
    return this.config.webhookTimeoutMs;
  }

  /** The connector named `name` in `policy`, configured exactly as that policy version says. */
  get(policy: Policy, name: string): Connector {
    const settings = policy.connectors[name];
    if (!settings)
      throw new DomainError(ErrorCode.CONNECTOR_FAILED, `Connector "${name}" is not in the policy`);
    // Canonical JSON: settings read back from jsonb may list their keys in another order.
    const cacheKey = `${name}:${canonicalJson(settings)}`;
    let connector = this.instances.get(cacheKey);
    if (!connector) {
      connector = this.build(name, settings);
      this.instances.set(cacheKey, connector);
    }
    return connector;
  }

  private build(name: string, settings: Policy['connectors'][string]): Connector {
    switch (settings.type) {
      case 'jwt':
        return new JwtConnector(this.signingKeys, {
          issuer: this.config.http.publicUrl,
          audience: settings.audience,
          clientId: name,
        });
      case 'postgres': {
        const adminUrl = this.requiredSecret(name, settings.urlEnv);
        return new PostgresConnector({ adminUrl, connectorName: name });
      }
      case 'ssh':
        // A CA key from the environment would be a second CA, with its own KRL section and trust line.
        if (settings.caKeyEnv) {
          throw new DomainError(
            ErrorCode.NOT_SUPPORTED,
            `Connector "${name}": caKeyEnv is not supported yet; without it the broker's own SSH CA signs`,
          );
        }
        return this.ssh;
      case 'webhook': {
        const secret = this.requiredSecret(name, settings.secretEnv);
        // The HMAC key is all that authenticates the broker to the receiver: refuse a guessable one.
        if (secret.length < MIN_WEBHOOK_SECRET_LENGTH) {
          throw new DomainError(
            ErrorCode.CONNECTOR_FAILED,
            `Connector "${name}": ${settings.secretEnv} must be at least ${MIN_WEBHOOK_SECRET_LENGTH} characters`,
          );
        }
        const timeoutMs = this.config.webhookTimeoutMs;
        return new WebhookConnector({ url: settings.url, secret, connectorName: name, timeoutMs });
      }
      default: {
        // Every type the schema knows is handled; a stored policy version may still name another one.
        const { type } = settings as { type: string };
        throw new DomainError(
          ErrorCode.NOT_SUPPORTED,
          `Connector "${name}" of type ${type} is not available in this version of the broker`,
        );
      }
    }
  }

  /** A connector's secret from the environment; refuses when the variable the policy names is not set. */
  private requiredSecret(name: string, envName: string): string {
    const secret = this.config.connectorSecret(envName);
    if (!secret) {
      throw new DomainError(
        ErrorCode.CONNECTOR_FAILED,
        `Connector "${name}" needs the environment variable ${envName}, which is not set`,
      );
    }
    return secret;
  }

  /**
   * Loads the token signing key before the first activation needs it: loading inside an activation's
   * transaction takes a second connection, and a burst of activations holding every connection would wait
   * for it forever.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.signingKeys.currentKey('jwt');
  }

  async onApplicationShutdown(): Promise<void> {
    for (const connector of this.instances.values()) {
      if (connector instanceof PostgresConnector) await connector.close();
    }
  }
}

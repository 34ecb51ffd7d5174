import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { canonicalJson } from '../audit/chain.js';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import type { Connector } from '../connectors/connector.js';
import { JwtConnector } from '../connectors/jwt.connector.js';
import { PostgresConnector } from '../connectors/postgres.connector.js';
import { SigningKeyStore } from '../connectors/signing-keys.js';
import { DomainError, ErrorCode } from '../domain/errors.js';
import type { Policy } from '../domain/policy.js';

/** Connector instances built from a policy's `connectors:` section, secrets resolved from the environment. */
@Injectable()
export class ConnectorRegistry implements OnApplicationShutdown {
  readonly signingKeys: SigningKeyStore;
  private readonly instances = new Map<string, Connector>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    dataSource: DataSource,
  ) {
    this.signingKeys = new SigningKeyStore(dataSource, config.masterKey);
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
        });
      case 'postgres': {
        const adminUrl = this.config.connectorSecret(settings.urlEnv);
        if (!adminUrl) {
          throw new DomainError(
            ErrorCode.CONNECTOR_FAILED,
            `Connector "${name}" needs the environment variable ${settings.urlEnv}, which is not set`,
          );
        }
        return new PostgresConnector({ adminUrl, connectorName: name });
      }
      default:
        throw new DomainError(
          ErrorCode.NOT_SUPPORTED,
          `Connector "${name}" of type ${settings.type} is not available in this version of the broker`,
        );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    for (const connector of this.instances.values()) {
      if (connector instanceof PostgresConnector) await connector.close();
    }
  }
}

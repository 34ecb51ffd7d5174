import { loadKeyRotationSettingsOrExit } from '../../libs/config/config.js';
import { createDataSource, prepareSchema } from '../../libs/db/data-source.js';
import { SigningKeyStore } from '../../libs/keys/signing-key-store.js';

export const KEYS_USAGE = `keys rotate jwt
      Retire the current access-token signing key and make a new one current. Brokers sign with the new key
      from their next token on, without a restart; the retired public key stays in /.well-known/jwks.json
      until the last token it signed has expired. Needs DATABASE_URL and the brokers' BROKER_MASTER_KEY;
      audited as actor "cli".`;

const USAGE = 'usage: npm run cli -- keys rotate jwt';

/** `keys rotate jwt`: rotates the JWT signing key (DESIGN §7). Returns the exit code. */
export async function keysCommand(args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  const [action, purpose, ...rest] = args;
  if (action !== 'rotate' || purpose === undefined || rest.length > 0) {
    console.error(USAGE);
    return 2;
  }
  if (purpose !== 'jwt') {
    console.error(`Only jwt keys can be rotated (audit and ssh keys cannot yet)\n${USAGE}`);
    return 2;
  }
  const settings = loadKeyRotationSettingsOrExit(env);
  const dataSource = createDataSource(settings.databaseUrl, { poolSize: 2, applicationName: 'jit-cli' });
  await dataSource.initialize();
  try {
    // Migrates as the owner role when MIGRATION_DATABASE_URL is set; otherwise the schema must be current.
    await prepareSchema(dataSource, settings.migrationDatabaseUrl);
    const rotated = await new SigningKeyStore(dataSource, settings.masterKey).rotate(purpose, 'cli');
    console.log(
      rotated.retiredKid
        ? `Rotated the jwt signing key: ${rotated.kid} signs from now on; ${rotated.retiredKid} is retired ` +
            `(${rotated.retiredAt!.toISOString()}) and stays in the JWKS until the tokens it signed have expired.`
        : `Created the jwt signing key ${rotated.kid} (there was none to retire).`,
    );
    return 0;
  } finally {
    await dataSource.destroy();
  }
}

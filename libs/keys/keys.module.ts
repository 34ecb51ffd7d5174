import { Module } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { SigningKeyStore } from './signing-key-store.js';

/**
 * The one SigningKeyStore of a process, for whoever signs (connectors, audit checkpoints and exports) or
 * publishes keys (JWKS). Needs the global DataSource and APP_CONFIG (DatabaseModule, ConfigModule).
 */
@Module({
  providers: [
    {
      provide: SigningKeyStore,
      inject: [DataSource, APP_CONFIG],
      useFactory: (dataSource: DataSource, config: AppConfig) =>
        new SigningKeyStore(dataSource, config.masterKey),
    },
  ],
  exports: [SigningKeyStore],
})
export class KeysModule {}

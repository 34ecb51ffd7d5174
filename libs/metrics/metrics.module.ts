import { Global, Module, type DynamicModule } from '@nestjs/common';
import { Metrics, type MetricsProcess } from './metrics.js';

/** Makes the app's one Metrics (and so its one registry) injectable everywhere. */
@Global()
@Module({})
export class MetricsModule {
  static forRoot(process: MetricsProcess): DynamicModule {
    return {
      module: MetricsModule,
      providers: [{ provide: Metrics, useValue: new Metrics(process) }],
      exports: [Metrics],
    };
  }
}

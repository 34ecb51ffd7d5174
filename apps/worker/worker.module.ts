import { InjectQueue } from '@nestjs/bullmq';
import {
  Inject,
  Logger,
  Module,
  type BeforeApplicationShutdown,
  type DynamicModule,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Queue } from 'bullmq';
import { APP_CONFIG, type AppConfig } from '../../libs/config/config.js';
import { ElevationModule } from '../../libs/elevation/elevation.module.js';
import { GrantsService } from '../../libs/elevation/grants.service.js';
import { RequestSweeper } from '../../libs/elevation/request-sweeper.js';
import { JobName, QueueName } from '../../libs/jobs/jobs.js';
import { MetricsModule } from '../../libs/metrics/metrics.module.js';
import { LifecycleProcessor } from './lifecycle.processor.js';
import { MaintenanceProcessor } from './maintenance.processor.js';
import { NotifyService } from '../../libs/notify/notify.service.js';
import { NotifyProcessor, NotifyScanner } from './notify.processor.js';
import { RevocationProcessor } from './revocation.processor.js';
import { WorkerMetricsServer } from './metrics.server.js';

const SWEEP_SCHEDULER_ID = 'sweep';
const CHECKPOINT_SCHEDULER_ID = 'checkpoint';

/** The worker: BullMQ processors, and its metrics endpoint when WORKER_METRICS_PORT is set. */
@Module({})
export class WorkerModule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Worker');
  private schedulerWatchdog: NodeJS.Timeout | undefined;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly grants: GrantsService,
    private readonly requests: RequestSweeper,
    @InjectQueue(QueueName.Maintenance) private readonly maintenanceQueue: Queue,
    private readonly revocations: RevocationProcessor,
    private readonly lifecycle: LifecycleProcessor,
    private readonly maintenance: MaintenanceProcessor,
    private readonly notifications: NotifyProcessor,
  ) {}

  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: WorkerModule,
      imports: [
        ElevationModule.forRoot(config, { applicationName: 'jit-worker' }),
        MetricsModule.forRoot('worker'),
      ],
      providers: [
        RevocationProcessor,
        LifecycleProcessor,
        MaintenanceProcessor,
        NotifyService,
        NotifyProcessor,
        NotifyScanner,
        WorkerMetricsServer,
      ],
    };
  }

  /** Restore on boot: sweep from PostgreSQL first, then keep sweeping on a schedule. */
  async onApplicationBootstrap(): Promise<void> {
    const scheduled = await this.grants.sweep();
    const open = await this.requests.sweepLifecycle();
    this.logger.log(`Boot sweep scheduled ${scheduled} unrevoked grant(s) and ${open} open request(s)`);
    if (this.config.checkpointIntervalSeconds === 0) {
      this.logger.warn(
        'UNSAFE: CHECKPOINT_INTERVAL_SECONDS=0: the audit chain head is not signed periodically',
      );
    }
    await this.ensureSchedulers();
    // The schedule itself lives in Redis: re-assert it every interval, so a Redis flush or failover costs
    // at most one interval of sweeping instead of stopping it until the next worker restart.
    this.schedulerWatchdog = setInterval(() => {
      this.ensureSchedulers().catch((error: unknown) =>
        this.logger.warn(`Sweep and checkpoint schedules not renewed: ${String(error)}`),
      );
    }, this.config.sweepIntervalSeconds * 1000);
    this.schedulerWatchdog.unref();
  }

  /**
   * Graceful stop (SIGTERM): take no new jobs and let the active ones finish before the database pool and
   * Redis close in onApplicationShutdown, where @nestjs/bullmq would close the workers in parallel with
   * them. A job that cannot finish is not lost: its lock lapses and another worker takes it as stalled.
   */
  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.schedulerWatchdog);
    const processors = [this.revocations, this.lifecycle, this.maintenance, this.notifications];
    await Promise.all(processors.map((processor) => processor.worker.close()));
  }

  /** Idempotent: upserting an existing scheduler with the same settings changes nothing. */
  private async ensureSchedulers(): Promise<void> {
    await this.maintenanceQueue.upsertJobScheduler(
      SWEEP_SCHEDULER_ID,
      { every: this.config.sweepIntervalSeconds * 1000 },
      { name: JobName.Sweep, data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
    if (this.config.checkpointIntervalSeconds === 0) {
      // Explicitly off (CHECKPOINT_INTERVAL_SECONDS=0): the chain head then goes unsigned between exports.
      await this.maintenanceQueue.removeJobScheduler(CHECKPOINT_SCHEDULER_ID);
      return;
    }
    await this.maintenanceQueue.upsertJobScheduler(
      CHECKPOINT_SCHEDULER_ID,
      { every: this.config.checkpointIntervalSeconds * 1000 },
      { name: JobName.Checkpoint, data: {}, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }
}

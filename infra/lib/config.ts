/**
 * Stage configuration: every number that decides size and cost lives here, so
 * scaling from `dev` to `prod` is a change of numbers, not of code.
 *
 * Values are chosen by CDK context: `-c stage=prod` picks the preset, and any
 * field can be overridden with `-c <field>=<value>` (see {@link resolveStageConfig}).
 */

export type StageName = 'dev' | 'prod';

export interface StageConfig {
  /** Stage name; part of every physical name and tag. */
  readonly stage: StageName;

  // ---- placement -----------------------------------------------------------
  /**
   * Region. AZs are listed explicitly (below) so synth needs no AWS lookup.
   * @default 'us-east-1'
   */
  readonly region: string;
  /**
   * Availability zones of the VPC. The ALB and the DB subnet groups need two;
   * prod spreads over three.
   * @default dev: `${region}a,b`; prod: `${region}a,b,c`
   */
  readonly availabilityZones: string[];
  /**
   * NAT gateways (one per AZ for AZ-independent egress; one is the cheap option).
   * @default dev 1, prod 3
   */
  readonly natGateways: number;

  // ---- edge ------------------------------------------------------------------
  /**
   * ACM certificate ARN for the HTTPS listener. When unset, the stack takes it
   * as the CloudFormation parameter `CertificateArn` at deploy time.
   * @default undefined (CloudFormation parameter)
   */
  readonly certificateArn?: string;
  /**
   * ALB idle timeout in seconds. The ack service pings every socket every
   * 30 s (HEARTBEAT_MS), so 120 s keeps idle WebSockets open; the HTTP
   * services' keep-alive is set above it (HTTP_KEEP_ALIVE_MS), so the ALB never
   * reuses a connection the server has just closed (the cause of sporadic 502s).
   * @default 120
   */
  readonly albIdleTimeoutSeconds: number;
  /**
   * WAF rate-based rule limit (requests per client IP per 5 minutes);
   * `undefined` deploys no WAF.
   * @default dev undefined, prod 3000
   */
  readonly wafRateLimitPer5Min?: number;

  // ---- compute (Fargate) ----------------------------------------------------
  /** Gateway service sizing. */
  readonly gateway: ServiceSizing;
  /** Read API service sizing. */
  readonly readApi: ServiceSizing;
  /** Ack (WebSocket) service sizing. */
  readonly ackService: ServiceSizing;
  /**
   * CPU architecture of the container image and tasks. ARM64 is ~20% cheaper on
   * Fargate but needs an arm64-capable docker on the deploying machine.
   * @default 'x86_64'
   */
  readonly containerArchitecture: 'x86_64' | 'arm64';

  // ---- stream processing ------------------------------------------------------
  /**
   * Kinesis shard count; `undefined` means on-demand capacity mode.
   * @default dev undefined (on-demand), prod 8
   */
  readonly streamShardCount?: number;
  /**
   * Kinesis retention in hours (24 is the free tier of retention).
   * @default dev 24, prod 168
   */
  readonly streamRetentionHours: number;
  /** Processor Lambda and event source mapping settings. */
  readonly processor: ProcessorSettings;

  // ---- data -------------------------------------------------------------------
  /** RDS PostgreSQL settings. */
  readonly database: DatabaseSettings;
  /** ElastiCache Redis settings. */
  readonly redis: RedisSettings;

  // ---- operations ---------------------------------------------------------------
  /**
   * CloudWatch Logs retention in days (must be a value CloudWatch accepts).
   * @default dev 7, prod 30
   */
  readonly logRetentionDays: number;
  /**
   * E-mail subscribed to the alarm topic; `undefined` subscribes nobody.
   * @default undefined
   */
  readonly alarmEmail?: string;
  /** Alarm thresholds. */
  readonly alarms: AlarmThresholds;
  /**
   * Keep stateful resources (tables, database, stream) when the stack is deleted.
   * @default dev false, prod true
   */
  readonly retainData: boolean;
}

export interface ServiceSizing {
  /** Fargate task vCPU units (256 = 0.25 vCPU). @default 256 dev, 1024 prod */
  readonly cpu: number;
  /** Fargate task memory MiB. @default 512 dev, 2048 prod */
  readonly memoryMiB: number;
  /** Minimum running tasks (autoscaling floor). @default 1 dev; prod 3 (read API 20) */
  readonly minTasks: number;
  /** Maximum running tasks (autoscaling ceiling). @default 2 dev; prod 30 (read API 80) */
  readonly maxTasks: number;
  /** Target average CPU utilisation percent. @default 60 */
  readonly targetCpuPercent: number;
  /** Target ALB requests per task per minute; `undefined` disables that policy (the ack service: long-lived sockets). */
  readonly targetRequestsPerTaskPerMinute?: number;
}

export interface ProcessorSettings {
  /** Lambda memory MiB (CPU scales with it). @default 512 dev, 1024 prod */
  readonly memoryMiB: number;
  /** Lambda timeout seconds. @default 60 */
  readonly timeoutSeconds: number;
  /** Records per invocation. @default 100 dev, 500 prod */
  readonly batchSize: number;
  /** The commit mapping's max batching window seconds: every ack may wait up to this long (latency vs. batch fill). @default 1 dev, 1 prod */
  readonly maxBatchingWindowSeconds: number;
  /**
   * The projection mapping's max batching window seconds: not on the ack path, so fewer, bigger
   * batches (fewer invocations and DynamoDB calls; the newest version of a hot item only); the
   * local runner's PROJECTION_BATCH_WINDOW_MS. It is how late listings may be under heavy
   * traffic and how long a `consistentWith` listing may wait (READ_MIN_VERSION_WAIT_MS bounds it).
   * @default 1 dev, 1 prod
   */
  readonly projectionMaxBatchingWindowSeconds: number;
  /** Concurrent batches per shard (1-10); order is kept per partition key. @default 1 dev, 4 prod */
  readonly parallelizationFactor: number;
  // Retries and record age are NOT settings: the mappings retry without limit (-1/-1), because the
  // handlers are written for it (infrastructure errors are retried until they pass, poison records
  // are parked by the handler itself; see infra/lib/constructs/stream-processor.ts).
  /** Read through a dedicated enhanced fan-out consumer (2 MB/s/shard, ~70 ms). @default false dev, true prod */
  readonly enhancedFanOut: boolean;
  /**
   * Reserved concurrency of EACH of the two functions. A Kinesis mapping never runs more than
   * shards x parallelization invocations at once, which already bounds the proxy's clients
   * (2 functions x 32 x PG_POOL_SIZE 2 = 128 in prod); reserving takes that capacity out of the
   * account's pool and fails the deploy where the account quota is low, so it is off by default.
   * Override with `-c reservedConcurrency=N` (N >= shards x parallelization, or the mapping throttles).
   * @default undefined (both stages)
   */
  readonly reservedConcurrency?: number;
}

export interface DatabaseSettings {
  /** Instance class, e.g. 't4g.micro', 'r7g.xlarge'. @default dev t4g.micro, prod r7g.xlarge */
  readonly instanceType: string;
  /** Multi-AZ standby. @default dev false, prod true */
  readonly multiAz: boolean;
  /** Initial gp3 storage GiB (>= 400 GiB unlocks 12,000 IOPS / 500 MiB/s baseline). @default dev 20, prod 1000 */
  readonly allocatedStorageGiB: number;
  /** Storage autoscaling ceiling GiB; the event log grows ~1.5-2 TB/month at the brief's load. @default dev 50, prod 16384 */
  readonly maxAllocatedStorageGiB: number;
  /** Automated backup retention days. @default dev 1, prod 14 */
  readonly backupRetentionDays: number;
  /** Days between automatic rotations of the master and the application passwords. @default 30 */
  readonly rotationDays: number;
  /** Database name the processors use. @default 'ackstream' */
  readonly databaseName: string;
}

export interface RedisSettings {
  /** Node type. @default dev cache.t4g.small, prod cache.r7g.xlarge */
  readonly nodeType: string;
  /** Replicas of the primary (0 = single node; >=1 enables Multi-AZ failover). @default dev 0, prod 2 */
  readonly replicas: number;
  /** Engine version. @default '7.1' */
  readonly engineVersion: string;
  /** Daily snapshot retention days. @default dev 1, prod 7 */
  readonly snapshotRetentionDays: number;
}

export interface AlarmThresholds {
  /** Processor iterator age alarm, seconds. @default 60 */
  readonly iteratorAgeSeconds: number;
  /** HTTP 5xx share of requests, percent. @default 1 */
  readonly http5xxPercent: number;
  /** p99 target response time, seconds. @default 1 */
  readonly p99LatencySeconds: number;
  /** RDS CPU percent. @default 80 */
  readonly dbCpuPercent: number;
  /** RDS connections (below max_connections of the class). @default dev 60, prod 1000 */
  readonly dbConnections: number;
  /** Redis memory usage percent (the highest node: the primary or a replica that took over). @default 80 */
  readonly redisMemoryPercent: number;
  /** Redis engine CPU percent. @default 90 */
  readonly redisCpuPercent: number;
  /** Redis replication lag, seconds (only with replicas). @default 5 */
  readonly redisReplicationLagSeconds: number;
  /** Records the processors' handlers reported failed (retried), per 5 minutes. @default 50 */
  readonly failedRecordsPer5Min: number;
}

const azs = (region: string, n: number): string[] => ['a', 'b', 'c'].slice(0, n).map((s) => `${region}${s}`);

export function devConfig(region = 'us-east-1'): StageConfig {
  return {
    stage: 'dev',
    region,
    availabilityZones: azs(region, 2),
    natGateways: 1,
    albIdleTimeoutSeconds: 120,
    gateway: { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 2, targetCpuPercent: 60, targetRequestsPerTaskPerMinute: 6000 },
    readApi: { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 2, targetCpuPercent: 60, targetRequestsPerTaskPerMinute: 12000 },
    ackService: { cpu: 256, memoryMiB: 512, minTasks: 1, maxTasks: 2, targetCpuPercent: 60 },
    containerArchitecture: 'x86_64',
    streamRetentionHours: 24,
    processor: {
      memoryMiB: 512,
      timeoutSeconds: 60,
      batchSize: 100,
      maxBatchingWindowSeconds: 1,
      projectionMaxBatchingWindowSeconds: 1,
      parallelizationFactor: 1,
      enhancedFanOut: false,
    },
    database: {
      instanceType: 't4g.micro',
      multiAz: false,
      allocatedStorageGiB: 20,
      maxAllocatedStorageGiB: 50,
      backupRetentionDays: 1,
      rotationDays: 30,
      databaseName: 'ackstream',
    },
    redis: { nodeType: 'cache.t4g.small', replicas: 0, engineVersion: '7.1', snapshotRetentionDays: 1 },
    logRetentionDays: 7,
    alarms: {
      iteratorAgeSeconds: 60,
      http5xxPercent: 1,
      p99LatencySeconds: 1,
      dbCpuPercent: 80,
      dbConnections: 60,
      redisMemoryPercent: 80,
      redisCpuPercent: 90,
      redisReplicationLagSeconds: 5,
      failedRecordsPer5Min: 50,
    },
    retainData: false,
  };
}

/** The brief's scale: 400 writes/s (4,000 peak), 40,000 reads/s; see docs/DEPLOY.md. */
export function prodConfig(region = 'us-east-1'): StageConfig {
  return {
    stage: 'prod',
    region,
    availabilityZones: azs(region, 3),
    natGateways: 3,
    albIdleTimeoutSeconds: 120,
    wafRateLimitPer5Min: 3000,
    gateway: { cpu: 1024, memoryMiB: 2048, minTasks: 3, maxTasks: 30, targetCpuPercent: 60, targetRequestsPerTaskPerMinute: 30000 },
    readApi: { cpu: 1024, memoryMiB: 2048, minTasks: 20, maxTasks: 80, targetCpuPercent: 60, targetRequestsPerTaskPerMinute: 60000 },
    ackService: { cpu: 1024, memoryMiB: 2048, minTasks: 3, maxTasks: 30, targetCpuPercent: 60 },
    containerArchitecture: 'x86_64',
    streamShardCount: 8,
    streamRetentionHours: 168,
    processor: {
      memoryMiB: 1024,
      timeoutSeconds: 60,
      batchSize: 500,
      maxBatchingWindowSeconds: 1,
      projectionMaxBatchingWindowSeconds: 1,
      parallelizationFactor: 4,
      enhancedFanOut: true,
    },
    database: {
      instanceType: 'r7g.xlarge',
      multiAz: true,
      allocatedStorageGiB: 1000,
      maxAllocatedStorageGiB: 16384,
      backupRetentionDays: 14,
      rotationDays: 30,
      databaseName: 'ackstream',
    },
    redis: { nodeType: 'cache.r7g.xlarge', replicas: 2, engineVersion: '7.1', snapshotRetentionDays: 7 },
    logRetentionDays: 30,
    alarms: {
      iteratorAgeSeconds: 60,
      http5xxPercent: 1,
      p99LatencySeconds: 1,
      dbCpuPercent: 80,
      dbConnections: 1000,
      redisMemoryPercent: 80,
      redisCpuPercent: 90,
      redisReplicationLagSeconds: 5,
      failedRecordsPer5Min: 50,
    },
    retainData: true,
  };
}

/** Reads a context value as a string (context from the CLI is always a string). */
export type ContextReader = (key: string) => unknown;

/**
 * Picks the preset for `stage` and applies flat overrides from context:
 * `certificateArn`, `alarmEmail`, `region`, `streamShardCount` (0 = on-demand),
 * `natGateways`, `wafRateLimitPer5Min` (0 = no WAF), `dbInstanceType`,
 * `redisNodeType`, `redisReplicas`, `containerArchitecture`, `reservedConcurrency` (0 = none).
 */
export function resolveStageConfig(ctx: ContextReader): StageConfig {
  const str = (k: string): string | undefined => {
    const v = ctx(k);
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const num = (k: string): number | undefined => {
    const v = str(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`context ${k} must be a non-negative integer, got ${v}`);
    return n;
  };
  const stage = str('stage') ?? 'dev';
  if (stage !== 'dev' && stage !== 'prod') throw new Error(`context stage must be dev or prod, got ${stage}`);
  const region = str('region') ?? 'us-east-1';
  const base = stage === 'prod' ? prodConfig(region) : devConfig(region);

  const shards = num('streamShardCount');
  const waf = num('wafRateLimitPer5Min');
  const reserved = num('reservedConcurrency');
  const arch = str('containerArchitecture');
  if (arch !== undefined && arch !== 'x86_64' && arch !== 'arm64') throw new Error(`containerArchitecture must be x86_64 or arm64`);
  return {
    ...base,
    certificateArn: str('certificateArn') ?? base.certificateArn,
    alarmEmail: str('alarmEmail') ?? base.alarmEmail,
    natGateways: num('natGateways') ?? base.natGateways,
    streamShardCount: shards === undefined ? base.streamShardCount : shards === 0 ? undefined : shards,
    wafRateLimitPer5Min: waf === undefined ? base.wafRateLimitPer5Min : waf === 0 ? undefined : waf,
    containerArchitecture: arch ?? base.containerArchitecture,
    processor: {
      ...base.processor,
      reservedConcurrency: reserved === undefined ? base.processor.reservedConcurrency : reserved === 0 ? undefined : reserved,
    },
    database: {
      ...base.database,
      instanceType: str('dbInstanceType') ?? base.database.instanceType,
    },
    redis: {
      ...base.redis,
      nodeType: str('redisNodeType') ?? base.redis.nodeType,
      replicas: num('redisReplicas') ?? base.redis.replicas,
    },
  };
}

import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sources from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { ProcessorSettings } from '../config';
import { esbuildLambdaCode } from '../lambda-bundle';
import { vpcFunctionBase } from '../vpc-function';

/** Either a TypeScript entry bundled with esbuild at synth, or ready code (tests, prebuilt dirs). */
export type ProcessorSource = { readonly entry: string } | { readonly code: lambda.Code; readonly handler?: string };

export interface StreamProcessorProps {
  readonly source: ProcessorSource;
  readonly settings: ProcessorSettings;
  /** Shard count; `undefined` = on-demand capacity. */
  readonly shardCount?: number;
  readonly retentionHours: number;
  readonly encryptionKey: kms.IKey;
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  /** Failed-records alarm threshold per 5 minutes. @default 50 */
  readonly failedRecordsPer5Min?: number;
  /** Extra environment (tables, DB, Redis); the construct adds KINESIS_STREAM and DLQ_URL. */
  readonly environment: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  readonly retain: boolean;
  readonly iteratorAgeAlarmSeconds: number;
}

/**
 * What the processors' handlers log when they hand records back in `batchItemFailures` (or fail a
 * batch): the source of the "failed records" metric. A handler never throws for a bad record, so
 * Lambda's own Errors metric stays at zero while records fail; these lines are the real signal.
 * Kept next to the metric filter and checked against the bundle's output (tests/infra).
 */
export const PROCESSOR_FAILURE_MESSAGES = [
  'record failed',
  'batch commit failed; retrying from its first record',
  'final ack not published; record will be retried',
  'dead-letter queue unavailable; retrying the malformed record',
  'projection failed; retrying the batch',
  'projection: outcome lookup failed; retrying the batch',
] as const;

export const FAILED_RECORDS_METRIC = { namespace: 'Ackstream', metricName: 'ProcessorFailedRecords' } as const;

/**
 * One pattern, one construct: Kinesis stream + processor Lambdas + event source
 * mappings (partial batch failures, unbounded retries and record age: the
 * handlers are written for it) + the DLQ the handlers park poison records in +
 * the alarms that say it is failing or falling behind.
 */
export class StreamProcessor extends Construct {
  readonly stream: kinesis.Stream;
  /** Commit consumer: commits to PostgreSQL and publishes the acks. */
  readonly fn: lambda.Function;
  /** Projection consumer: writes what PostgreSQL decided into DynamoDB and Redis. */
  readonly projectionFn: lambda.Function;
  readonly deadLetterQueue: sqs.Queue;
  readonly consumer?: kinesis.StreamConsumer;
  readonly projectionConsumer?: kinesis.StreamConsumer;
  readonly alarms: cloudwatch.Alarm[] = [];
  /** The two event source mappings (commit, projection): the migrations run before they exist. */
  readonly mappings: lambda.EventSourceMapping[] = [];
  readonly logGroup: logs.LogGroup;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: StreamProcessorProps) {
    super(scope, id);
    const s = props.settings;

    this.stream = new kinesis.Stream(this, 'Stream', {
      streamMode: props.shardCount === undefined ? kinesis.StreamMode.ON_DEMAND : kinesis.StreamMode.PROVISIONED,
      shardCount: props.shardCount,
      retentionPeriod: Duration.hours(props.retentionHours),
      encryption: kinesis.StreamEncryption.KMS,
      encryptionKey: props.encryptionKey,
      removalPolicy: props.retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });

    // Poison records, parked by the handlers themselves (processors/parking.ts): `npm run dlq`.
    this.deadLetterQueue = new sqs.Queue(this, 'Dlq', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.encryptionKey,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const base = vpcFunctionBase(this, {
      vpc: props.vpc,
      subnets: props.subnets,
      securityGroupDescription: 'Processor Lambda: no ingress; egress to proxy, Redis and AWS endpoints',
      logRetention: props.logRetention,
      logRemovalPolicy: RemovalPolicy.DESTROY,
    });
    const logGroup = this.logGroup = base.logGroup;
    this.securityGroup = base.securityGroup;

    new logs.MetricFilter(this, 'FailedRecordsFilter', {
      logGroup,
      metricNamespace: FAILED_RECORDS_METRIC.namespace,
      metricName: FAILED_RECORDS_METRIC.metricName,
      filterPattern: logs.FilterPattern.any(...PROCESSOR_FAILURE_MESSAGES.map((m) => logs.FilterPattern.stringValue('$.msg', '=', m))),
      metricValue: '1',
      defaultValue: 0,
    });

    const code = 'entry' in props.source ? esbuildLambdaCode(props.source.entry) : props.source.code;
    const handler = 'entry' in props.source ? 'index.handler' : (props.source.handler ?? 'index.handler');
    const makeFn = (id: string, handlerName: string) =>
      new lambda.Function(this, id, {
        ...base.functionProps({
          ...props.environment,
          KINESIS_STREAM: this.stream.streamName,
          DLQ_URL: this.deadLetterQueue.queueUrl,
        }),
        code,
        handler: handlerName,
        memorySize: s.memoryMiB,
        timeout: Duration.seconds(s.timeoutSeconds),
        reservedConcurrentExecutions: s.reservedConcurrency,
        tracing: lambda.Tracing.ACTIVE,
      });
    // Two consumers of the same stream, each with its own event source mapping (own checkpoints):
    // commits + acks, and the projection into the read model, so DynamoDB never holds back a commit.
    this.fn = makeFn('Fn', handler);
    this.projectionFn = makeFn('ProjectionFn', handler.replace(/\.handler$/, '.projectionHandler'));

    // No on-failure destination and no retry/age bound: the handlers retry infrastructure errors
    // until they pass and park poison records themselves, and the projection consumer waits for
    // records the commit consumer has not decided yet. A bound would skip such records as
    // metadata-only letters: lost acks and holes in the read model. Stream retention is the limit;
    // the iterator-age alarms fire long before it.
    const esmProps: sources.KinesisEventSourceProps = {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: s.batchSize,
      maxBatchingWindow: Duration.seconds(s.maxBatchingWindowSeconds),
      bisectBatchOnError: false,
      reportBatchItemFailures: true,
      parallelizationFactor: s.parallelizationFactor,
    };
    // The projection is not on the ack path: its own batching window (fewer, bigger batches).
    const projectionEsmProps: sources.KinesisEventSourceProps = { ...esmProps, maxBatchingWindow: Duration.seconds(s.projectionMaxBatchingWindowSeconds) };
    if (s.enhancedFanOut) {
      // Dedicated 2 MB/s per shard pipe per consumer: they do not share read throughput.
      this.consumer = new kinesis.StreamConsumer(this, 'Consumer', {
        stream: this.stream,
        streamConsumerName: 'processors',
      });
      this.projectionConsumer = new kinesis.StreamConsumer(this, 'ProjectionConsumer', {
        stream: this.stream,
        streamConsumerName: 'projections',
      });
      this.fn.addEventSource(new sources.KinesisConsumerEventSource(this.consumer, esmProps));
      this.projectionFn.addEventSource(new sources.KinesisConsumerEventSource(this.projectionConsumer, projectionEsmProps));
    } else {
      this.fn.addEventSource(new sources.KinesisEventSource(this.stream, esmProps));
      this.projectionFn.addEventSource(new sources.KinesisEventSource(this.stream, projectionEsmProps));
    }
    for (const fn of [this.fn, this.projectionFn]) {
      for (const child of fn.node.children) {
        if (!(child instanceof lambda.EventSourceMapping)) continue;
        const cfn = child.node.defaultChild as lambda.CfnEventSourceMapping;
        cfn.addPropertyOverride('MaximumRetryAttempts', -1);
        cfn.addPropertyOverride('MaximumRecordAgeInSeconds', -1);
        this.mappings.push(child);
      }
    }
    // Processors may re-publish (e.g. replays), and write failed records to the DLQ themselves.
    this.stream.grantWrite(this.fn);
    this.deadLetterQueue.grantSendMessages(this.fn);

    this.alarms.push(
      this.iteratorAgeAlarm('IteratorAge', this.fn, 'Processors are falling behind the stream', props.iteratorAgeAlarmSeconds),
      this.iteratorAgeAlarm('ProjectionIteratorAge', this.projectionFn, 'The read model (projection consumer) is falling behind the stream', props.iteratorAgeAlarmSeconds),
      new cloudwatch.Alarm(this, 'DlqDepth', {
        alarmDescription: 'Batches failed past their retries and were parked in the DLQ',
        metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1) }),
        threshold: 0,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'FailedRecords', {
        alarmDescription: 'Processors keep handing records back for retry (batchItemFailures): a store is failing or a record cannot be processed',
        metric: this.failedRecordsMetric(),
        threshold: props.failedRecordsPer5Min ?? 50,
        evaluationPeriods: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'Throttles', {
        alarmDescription: 'Processor invocations throttled (account concurrency or reserved concurrency too low)',
        metric: new cloudwatch.MathExpression({
          expression: 'commit + projection',
          usingMetrics: {
            commit: this.fn.metricThrottles({ statistic: 'Sum' }),
            projection: this.projectionFn.metricThrottles({ statistic: 'Sum' }),
          },
          period: Duration.minutes(5),
        }),
        threshold: 0,
        evaluationPeriods: 2,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'WriteThrottles', {
        alarmDescription: 'Stream rejects writes: add shards (or switch to on-demand)',
        metric: this.stream.metricWriteProvisionedThroughputExceeded({ period: Duration.minutes(1), statistic: 'Sum' }),
        threshold: 0,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }

  /** Records the handlers reported failed, counted from their log lines by a metric filter. */
  failedRecordsMetric(): cloudwatch.Metric {
    return new cloudwatch.Metric({ ...FAILED_RECORDS_METRIC, statistic: 'Sum', period: Duration.minutes(5) });
  }

  /** One consumer's records are older than the bound for five minutes: it is falling behind. */
  private iteratorAgeAlarm(id: string, fn: lambda.IFunction, description: string, seconds: number): cloudwatch.Alarm {
    return new cloudwatch.Alarm(this, id, {
      alarmDescription: description,
      metric: fn.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: seconds * 1000,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }
}

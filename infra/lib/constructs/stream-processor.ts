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
  /** Extra environment (tables, DB, Redis); the construct adds KINESIS_STREAM and DLQ_URL. */
  readonly environment: Record<string, string>;
  readonly logRetention: logs.RetentionDays;
  readonly retain: boolean;
  readonly iteratorAgeAlarmSeconds: number;
}

/**
 * One pattern, one construct: Kinesis stream + processor Lambda + event source
 * mapping (partial batch failures, bisect, bounded retries and record age) +
 * on-failure SQS destination + the alarms that say it is falling behind.
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

    // Failed batches land here as metadata (shard, sequence range) for replay from the stream.
    this.deadLetterQueue = new sqs.Queue(this, 'Dlq', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: props.encryptionKey,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const securityGroup = new ec2.SecurityGroup(this, 'Sg', {
      vpc: props.vpc,
      description: 'Processor Lambda: no ingress; egress to proxy, Redis and AWS endpoints',
      allowAllOutbound: true,
    });

    const code = 'entry' in props.source ? esbuildLambdaCode(props.source.entry) : props.source.code;
    const handler = 'entry' in props.source ? 'index.handler' : (props.source.handler ?? 'index.handler');
    const makeFn = (id: string, handlerName: string) =>
      new lambda.Function(this, id, {
        runtime: lambda.Runtime.NODEJS_24_X,
        architecture: lambda.Architecture.ARM_64,
        code,
        handler: handlerName,
        memorySize: s.memoryMiB,
        timeout: Duration.seconds(s.timeoutSeconds),
        reservedConcurrentExecutions: s.reservedConcurrency,
        vpc: props.vpc,
        vpcSubnets: props.subnets,
        securityGroups: [securityGroup],
        logGroup,
        tracing: lambda.Tracing.ACTIVE,
        environment: {
          ...props.environment,
          KINESIS_STREAM: this.stream.streamName,
          DLQ_URL: this.deadLetterQueue.queueUrl,
          NODE_OPTIONS: '--enable-source-maps',
        },
      });
    // Two consumers of the same stream, each with its own event source mapping (own checkpoints):
    // commits + acks, and the projection into the read model, so DynamoDB never holds back a commit.
    this.fn = makeFn('Fn', handler);
    this.projectionFn = makeFn('ProjectionFn', handler.replace(/\.handler$/, '.projectionHandler'));

    const esmProps: sources.KinesisEventSourceProps = {
      startingPosition: lambda.StartingPosition.TRIM_HORIZON,
      batchSize: s.batchSize,
      maxBatchingWindow: Duration.seconds(s.maxBatchingWindowSeconds),
      bisectBatchOnError: true,
      reportBatchItemFailures: true,
      retryAttempts: s.retryAttempts,
      maxRecordAge: Duration.seconds(s.maxRecordAgeSeconds),
      parallelizationFactor: s.parallelizationFactor,
      onFailure: new sources.SqsDlq(this.deadLetterQueue),
    };
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
      this.projectionFn.addEventSource(new sources.KinesisConsumerEventSource(this.projectionConsumer, esmProps));
    } else {
      this.fn.addEventSource(new sources.KinesisEventSource(this.stream, esmProps));
      this.projectionFn.addEventSource(new sources.KinesisEventSource(this.stream, esmProps));
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
      new cloudwatch.Alarm(this, 'Errors', {
        alarmDescription: 'Processor invocations failing',
        metric: new cloudwatch.MathExpression({
          expression: 'commit + projection',
          usingMetrics: { commit: this.fn.metricErrors(), projection: this.projectionFn.metricErrors() },
          period: Duration.minutes(5),
        }),
        threshold: 10,
        evaluationPeriods: 1,
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

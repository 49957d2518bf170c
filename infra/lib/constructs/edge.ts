import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as acm from 'aws-cdk-lib/aws-certificatemanager';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as wafv2 from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';

/**
 * Rules of the AWS common rule set that would block valid API traffic: SizeRestrictions_BODY blocks
 * bodies over 8 KB (the gateway accepts 64 KiB), NoUserAgent_HEADER blocks clients without a
 * User-Agent (curl -A '', SDKs, scripts). They are counted (visible in WAF metrics) instead.
 */
export const WAF_COUNT_ONLY_RULES = ['SizeRestrictions_BODY', 'NoUserAgent_HEADER'] as const;

export interface EdgeProps {
  readonly vpc: ec2.IVpc;
  readonly certificateArn: string;
  readonly idleTimeoutSeconds: number;
  /** Requests per IP per 5 minutes; `undefined` = no WAF. */
  readonly wafRateLimitPer5Min?: number;
  readonly http5xxAlarmPercent: number;
  /** Protect the ALB (and its DNS name clients use) from accidental deletion. */
  readonly deletionProtection: boolean;
}

/**
 * The only public entry point: an internet-facing ALB in the public subnets.
 * HTTPS only (HTTP answers with a redirect); unmatched paths get 404 from the
 * ALB itself. Services attach their own rules to {@link httpsListener}.
 */
export class Edge extends Construct {
  readonly alb: elbv2.ApplicationLoadBalancer;
  readonly httpsListener: elbv2.ApplicationListener;
  readonly webAcl?: wafv2.CfnWebACL;
  readonly accessLogs: s3.Bucket;
  readonly alarms: cloudwatch.Alarm[] = [];

  constructor(scope: Construct, id: string, props: EdgeProps) {
    super(scope, id);

    const sg = new ec2.SecurityGroup(this, 'AlbSg', {
      vpc: props.vpc,
      description: 'ALB: HTTPS and HTTP (redirect only) from the internet',
      allowAllOutbound: false,
    });
    sg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS from clients');
    sg.addIngressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(80), 'HTTP, redirected to HTTPS');

    this.alb = new elbv2.ApplicationLoadBalancer(this, 'Alb', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: ec2.SubnetType.PUBLIC },
      securityGroup: sg,
      idleTimeout: Duration.seconds(props.idleTimeoutSeconds),
      dropInvalidHeaderFields: true,
      http2Enabled: true,
      deletionProtection: props.deletionProtection,
    });

    this.accessLogs = new s3.Bucket(this, 'AccessLogs', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      lifecycleRules: [{ expiration: Duration.days(90) }],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.alb.logAccessLogs(this.accessLogs, 'alb');

    this.httpsListener = this.alb.addListener('Https', {
      port: 443,
      protocol: elbv2.ApplicationProtocol.HTTPS,
      certificates: [acm.Certificate.fromCertificateArn(this, 'Cert', props.certificateArn)],
      sslPolicy: elbv2.SslPolicy.RECOMMENDED_TLS,
      defaultAction: elbv2.ListenerAction.fixedResponse(404, {
        contentType: 'application/json',
        messageBody: '{"error":"not_found"}',
      }),
      open: false,
    });
    this.alb.addListener('Http', {
      port: 80,
      protocol: elbv2.ApplicationProtocol.HTTP,
      defaultAction: elbv2.ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
      open: false,
    });

    if (props.wafRateLimitPer5Min !== undefined) {
      this.webAcl = new wafv2.CfnWebACL(this, 'Waf', {
        scope: 'REGIONAL',
        defaultAction: { allow: {} },
        visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'ackstream-waf', sampledRequestsEnabled: true },
        rules: [
          {
            name: 'rate-limit-per-ip',
            priority: 0,
            action: { block: {} },
            statement: { rateBasedStatement: { limit: props.wafRateLimitPer5Min, aggregateKeyType: 'IP' } },
            visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'rate-limit-per-ip', sampledRequestsEnabled: true },
          },
          {
            name: 'aws-common',
            priority: 1,
            overrideAction: { none: {} },
            statement: {
              managedRuleGroupStatement: {
                vendorName: 'AWS',
                name: 'AWSManagedRulesCommonRuleSet',
                // Counted, not blocked: the API takes bodies up to 64 KiB (the gateway answers 413 past
                // MAX_BODY_BYTES) and API clients often send no User-Agent.
                ruleActionOverrides: WAF_COUNT_ONLY_RULES.map((name) => ({ name, actionToUse: { count: {} } })),
              },
            },
            visibilityConfig: { cloudWatchMetricsEnabled: true, metricName: 'aws-common', sampledRequestsEnabled: true },
          },
        ],
      });
      new wafv2.CfnWebACLAssociation(this, 'WafAssociation', {
        resourceArn: this.alb.loadBalancerArn,
        webAclArn: this.webAcl.attrArn,
      });
    }

    // 5xx rate = (target 5xx + ALB 5xx) / requests, so a flood of 500s alarms regardless of traffic level.
    const m = this.alb.metrics;
    const rate = new cloudwatch.MathExpression({
      expression: 'IF(req > 0, 100 * (FILL(t5, 0) + FILL(e5, 0)) / req, 0)',
      usingMetrics: {
        t5: m.httpCodeTarget(elbv2.HttpCodeTarget.TARGET_5XX_COUNT, { statistic: 'Sum' }),
        e5: m.httpCodeElb(elbv2.HttpCodeElb.ELB_5XX_COUNT, { statistic: 'Sum' }),
        req: m.requestCount({ statistic: 'Sum' }),
      },
      period: Duration.minutes(1),
      label: '5xx %',
    });
    this.alarms.push(
      new cloudwatch.Alarm(this, 'Http5xxRate', {
        alarmDescription: 'Share of requests answered with 5xx is above threshold',
        metric: rate,
        threshold: props.http5xxAlarmPercent,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}

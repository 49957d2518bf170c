import { RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface NetworkProps {
  /** Explicit AZs, so synth needs no account lookup. */
  readonly availabilityZones: string[];
  /** NAT gateways for private-subnet egress (ECR pulls, anything without an endpoint). */
  readonly natGateways: number;
  /** Flow log retention. */
  readonly logRetention: logs.RetentionDays;
}

/**
 * Three tiers: public subnets hold only the load balancer, private subnets the
 * tasks and the Lambda, isolated subnets (no route out) the databases. AWS APIs
 * the hot path calls are reached through VPC endpoints, not the NAT.
 */
export class Network extends Construct {
  readonly vpc: ec2.Vpc;
  /** Subnets of the tasks and the processor Lambda. */
  readonly appSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS };
  /** Subnets of RDS and ElastiCache. */
  readonly dataSubnets: ec2.SubnetSelection = { subnetType: ec2.SubnetType.PRIVATE_ISOLATED };

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr('10.40.0.0/16'),
      availabilityZones: props.availabilityZones,
      natGateways: props.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
        // /20: room for thousands of task ENIs and Lambda ENIs at peak scale.
        { name: 'app', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
        { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
      ],
      // The default SG allowing all intra-group traffic is a common foot-gun.
      restrictDefaultSecurityGroup: true,
    });

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });

    // Gateway endpoints are free; DynamoDB is on the read and write paths, S3 serves ECR layers.
    this.vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [this.appSubnets] });
    this.vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [this.appSubnets] });

    const endpointSg = new ec2.SecurityGroup(this, 'EndpointSg', {
      vpc: this.vpc,
      description: 'Interface endpoints: HTTPS from inside the VPC only',
      allowAllOutbound: false,
    });
    endpointSg.addIngressRule(ec2.Peer.ipv4(this.vpc.vpcCidrBlock), ec2.Port.tcp(443), 'HTTPS from the VPC');

    const interfaceEndpoints: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
      Kinesis: ec2.InterfaceVpcEndpointAwsService.KINESIS_STREAMS,
      Sqs: ec2.InterfaceVpcEndpointAwsService.SQS,
      SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    };
    for (const [name, service] of Object.entries(interfaceEndpoints)) {
      this.vpc.addInterfaceEndpoint(name, {
        service,
        subnets: this.appSubnets,
        securityGroups: [endpointSg],
        privateDnsEnabled: true,
      });
    }
  }
}

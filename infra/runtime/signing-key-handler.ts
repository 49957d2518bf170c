/**
 * The CDN signing key's generator: a CloudFormation custom resource (CDK Provider framework, the
 * `onEvent` handler; infra/lib/constructs/attachments.ts). On Create (and on every Update) it makes
 * sure the Secrets Manager secret `SecretArn` holds an RSA-2048 private key (PEM, PKCS#8),
 * generating one only if the secret does not hold one yet, and returns the matching public key as
 * `PublicKeyPem`, which the stack's CloudFront PublicKey (in the distribution's key group) takes.
 * The private key never leaves Secrets Manager and this function: the template only sees the
 * public half, and the gateway gets the private half injected by ECS from the secret.
 *
 * Idempotent: a retried or repeated event finds the key in the secret and returns the same public
 * key, so URLs the gateway already signed stay valid. Delete leaves the secret to CloudFormation.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

export interface SigningKeyResult {
  PhysicalResourceId: string;
  Data?: { PublicKeyPem: string };
}

/** The PEM public key of a PEM RSA private key, or undefined if `pem` is not one. */
export function publicKeyOf(pem: string | undefined): string | undefined {
  if (!pem || !pem.includes('PRIVATE KEY-----')) return undefined;
  try {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'rsa') return undefined;
    return createPublicKey(key).export({ type: 'spki', format: 'pem' }).toString();
  } catch {
    return undefined;
  }
}

export async function handler(event: CloudFormationCustomResourceEvent): Promise<SigningKeyResult> {
  const secretArn = String(event.ResourceProperties['SecretArn'] ?? '');
  if (event.RequestType === 'Delete') return { PhysicalResourceId: event.PhysicalResourceId };
  if (!secretArn) throw new Error('SecretArn is required');
  const sm = new SecretsManagerClient({});
  try {
    const current = await sm.send(new GetSecretValueCommand({ SecretId: secretArn }));
    let publicKeyPem = publicKeyOf(current.SecretString);
    if (!publicKeyPem) {
      const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
      await sm.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() }));
      publicKeyPem = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    }
    return { PhysicalResourceId: secretArn, Data: { PublicKeyPem: publicKeyPem } };
  } finally {
    sm.destroy();
  }
}

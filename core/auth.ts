/**
 * JWT auth shared by every service: HS256 only (an allow-list, so `alg: none` and key confusion
 * are refused), `exp` required, `nbf` honoured, `sub` and `tenant` validated as key-safe.
 */
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { SUBJECT_PATTERN, TENANT_PATTERN } from './contracts';
import { UnauthorizedError } from './errors';

export interface Principal {
  tenant: string;
  sub: string;
  roles: string[];
}

const ALGORITHMS = ['HS256'];
const CLOCK_TOLERANCE_S = 5;

export class TokenVerifier {
  private readonly key: Uint8Array;
  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  async verify(token: string): Promise<Principal> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, {
        algorithms: ALGORITHMS,
        requiredClaims: ['exp', 'sub'],
        clockTolerance: CLOCK_TOLERANCE_S,
      }));
    } catch (err) {
      throw new UnauthorizedError(describeJoseError(err));
    }
    const tenant = payload.tenant;
    const sub = payload.sub;
    if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
      throw new UnauthorizedError('The token has no valid "tenant" claim (^[A-Za-z0-9_.-]{1,64}$).');
    }
    if (typeof sub !== 'string' || !SUBJECT_PATTERN.test(sub)) {
      throw new UnauthorizedError('The token has no valid "sub" claim (1-256 printable ASCII characters).');
    }
    const roles = Array.isArray(payload.roles) ? payload.roles.filter((r: unknown): r is string => typeof r === 'string') : [];
    return { tenant, sub, roles };
  }

  /** Reads `Authorization: Bearer <jwt>`; throws 401 when absent or malformed. */
  async verifyHeader(header: string | undefined): Promise<Principal> {
    return this.verify(bearerToken(header));
  }
}

export function bearerToken(header: string | undefined): string {
  if (!header) throw new UnauthorizedError('Missing Authorization header: expected "Bearer <token>".');
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+)$/i.exec(header.trim());
  if (!m?.[1]) throw new UnauthorizedError('Malformed Authorization header: expected "Bearer <token>".');
  return m[1];
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'The token has expired.';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return `The token's "${err.claim}" claim is invalid: ${err.reason}.`;
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'The token is signed with an algorithm that is not allowed (HS256 only).';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'The token signature is invalid.';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'The token is malformed.';
  return 'The token could not be verified.';
}

export interface TokenRequest {
  tenant: string;
  sub: string;
  roles?: string[];
  ttlSeconds?: number;
  notBefore?: number;
}

export async function signToken(secret: string, req: TokenRequest): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ tenant: req.tenant, ...(req.roles?.length ? { roles: req.roles } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(req.sub)
    .setIssuedAt(now)
    .setExpirationTime(now + (req.ttlSeconds ?? 3600));
  if (req.notBefore !== undefined) jwt.setNotBefore(req.notBefore);
  return jwt.sign(new TextEncoder().encode(secret));
}

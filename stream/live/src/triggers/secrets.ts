import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Webhook secrets at rest: AES-256-GCM under a key held outside the store (TRIGGERS_SECRET_KEY),
 * so a copy of ClickHouse (a backup, a read-only user, a leaked dump) does not give away the keys
 * that sign our webhooks. Stored as `v1:` + base64url(iv | tag | ciphertext); the (tenant, rule)
 * pair is the associated data, so a sealed secret cannot be moved onto another tenant's rule.
 * Values without the prefix are clear text written before encryption existed: still read.
 */

export const SEALED_PREFIX = 'v1:';
const IV = 12;
const TAG = 16;

export class SecretBox {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new RangeError('the webhook secret key must be 32 bytes');
  }

  seal(plain: string, tenant: string, rule: string): string {
    const iv = randomBytes(IV);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(aad(tenant, rule));
    const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return SEALED_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64url');
  }

  /** The clear secret; throws when the value was sealed under another key or for another rule. */
  open(stored: string, tenant: string, rule: string): string {
    const raw = Buffer.from(stored.slice(SEALED_PREFIX.length), 'base64url');
    if (raw.length < IV + TAG) throw new Error('sealed secret too short');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, IV));
    decipher.setAAD(aad(tenant, rule));
    decipher.setAuthTag(raw.subarray(IV, IV + TAG));
    return Buffer.concat([decipher.update(raw.subarray(IV + TAG)), decipher.final()]).toString('utf8');
  }
}

export function isSealed(stored: string): boolean {
  return stored.startsWith(SEALED_PREFIX);
}

function aad(tenant: string, rule: string): Buffer {
  return Buffer.from(`${tenant}\u0000${rule}`, 'utf8');
}

import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, parseKey32, type AfterglowConfig, type Logger } from '@afterglow/core';

/**
 * Secrets a process needs from outside the store: the API key pepper (AUTH_KEY_PEPPER) and the
 * webhook secret key (TRIGGERS_SECRET_KEY). Outside the embedded demo they must be configured
 * (the same on every process); a missing one is a start-up ConfigError naming the variable, never
 * a silent public default. The demo (`npm start`, one process) generates each once into a 0600
 * file under the data directory, so it works with nothing set and keeps working across restarts.
 */

export const PEPPER_FILE = 'auth-key-pepper';
export const SECRET_KEY_FILE = 'triggers-secret-key';

/** `${dataDir}/secrets/<name>`. */
export function secretPath(dataDir: string, name: string): string {
  return path.join(dataDir, 'secrets', name);
}

/** Write a file only its owner can read (replacing any earlier one, whose mode may be wider). */
export function writePrivateFile(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    unlinkSync(file);
  } catch {
    // none yet
  }
  writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
}

/** The content of a secret file, or undefined when there is none; a file others can read is narrowed to 0600. */
export function readSecretFile(file: string, log?: Logger): string | undefined {
  let content: string;
  try {
    content = readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
  if ((statSync(file).mode & 0o077) !== 0) {
    chmodSync(file, 0o600);
    log?.warn({ file }, 'secret file was readable by others; narrowed to 0600');
  }
  return content || undefined;
}

function demoSecret(dataDir: string, name: string, make: () => string, log: Logger): string {
  const file = secretPath(dataDir, name);
  const existing = readSecretFile(file, log);
  if (existing) return existing;
  const value = make();
  writePrivateFile(file, `${value}\n`);
  log.info({ file }, 'demo secret generated (0600); set the variable instead outside the demo');
  return value;
}

export interface ResolvedSecrets {
  pepper: string | undefined;
  secretKey: Buffer | undefined;
}

/**
 * The pepper and the webhook key this process runs with. `demo`: generate missing ones into the
 * data directory. Otherwise, with API keys on, both are required (the key only where the live
 * role runs triggers); with AUTH_MODE=off (a trusted gateway in front) a missing webhook key keeps
 * secrets in clear, with a warning.
 */
export function resolveSecrets(config: AfterglowConfig, options: { demo: boolean; live: boolean; log: Logger }): ResolvedSecrets {
  const { demo, live, log } = options;
  const keysOn = config.auth.mode === 'keys';
  let pepper = config.auth.pepper;
  if (keysOn && pepper === undefined) {
    if (!demo) {
      throw new ConfigError(
        'invalid configuration:\n  AUTH_KEY_PEPPER: required when API keys are on (AUTH_MODE=keys) outside the embedded demo; ' +
          'set the same secret of 16+ characters on every process (e.g. `openssl rand -base64 32`)',
      );
    }
    pepper = demoSecret(config.dataDir, PEPPER_FILE, () => randomBytes(32).toString('base64url'), log);
  }
  let secretKey = config.triggers.secretKey;
  if (live && secretKey === undefined) {
    if (demo) {
      const stored = demoSecret(config.dataDir, SECRET_KEY_FILE, () => randomBytes(32).toString('base64'), log);
      secretKey = parseKey32(stored);
      if (!secretKey) throw new ConfigError(`invalid configuration:\n  ${secretPath(config.dataDir, SECRET_KEY_FILE)}: not a 32-byte key (delete it to generate another)`);
    } else if (keysOn) {
      throw new ConfigError(
        'invalid configuration:\n  TRIGGERS_SECRET_KEY: required for the live role when API keys are on, outside the embedded demo; ' +
          'webhook secrets are encrypted with it before they are stored. Set 32 random bytes, base64 or hex (e.g. `openssl rand -base64 32`), the same on every live process',
      );
    } else {
      log.warn('TRIGGERS_SECRET_KEY is not set (AUTH_MODE=off): webhook secrets are stored in clear');
    }
  }
  return { pepper, secretKey };
}

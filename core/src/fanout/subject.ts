import { AfterglowError } from '../errors.js';

/**
 * NATS subject rules, shared by both fan-out adapters so a subject the embedded bus accepts is
 * one NATS accepts too. Subjects are '.'-separated, non-empty tokens without whitespace. In a
 * subscription pattern a token that is exactly '*' matches one token and a last token that is
 * exactly '>' matches one or more; a '*' or '>' inside a longer token is a literal character,
 * as in NATS. Publish subjects take no wildcards.
 */
export class InvalidSubjectError extends AfterglowError {
  constructor(
    readonly subject: string,
    reason: string,
  ) {
    super('invalid_subject', `invalid subject ${JSON.stringify(subject)}: ${reason}`);
  }
}

/** Throws InvalidSubjectError unless `subject` is a concrete subject (no wildcards). */
export function assertPublishSubject(subject: string): void {
  check(subject, false);
}

/** Throws InvalidSubjectError unless `pattern` is a valid subscription subject. */
export function assertSubscribeSubject(pattern: string): void {
  check(pattern, true);
}

/** True when `pattern` has a '*' or '>' token. */
export function hasWildcard(pattern: string): boolean {
  return pattern.split('.').some((t) => t === '*' || t === '>');
}

/** Whether the concrete `subject` matches the subscription `pattern` (both assumed valid). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>') return s.length > i;
    if (i >= s.length || (token !== '*' && token !== s[i])) return false;
  }
  return p.length === s.length;
}

// One pass over the characters: this runs on every publish, so no split or regex.
function check(subject: string, wildcards: boolean): void {
  if (subject.length === 0) throw new InvalidSubjectError(subject, 'empty');
  let tokenStart = 0;
  for (let i = 0; i <= subject.length; i++) {
    const c = i < subject.length ? subject.charCodeAt(i) : DOT;
    if (c === DOT) {
      const length = i - tokenStart;
      if (length === 0) throw new InvalidSubjectError(subject, 'empty token');
      if (length === 1) {
        const only = subject.charCodeAt(tokenStart);
        if (only === STAR || only === GT) {
          if (!wildcards) throw new InvalidSubjectError(subject, 'wildcards are only allowed when subscribing');
          if (only === GT && i !== subject.length) throw new InvalidSubjectError(subject, "'>' must be the last token");
        }
      }
      tokenStart = i + 1;
    } else if (isWhitespace(c)) {
      throw new InvalidSubjectError(subject, 'contains whitespace or a control character');
    }
  }
}

const DOT = 0x2e;
const STAR = 0x2a;
const GT = 0x3e;

function isWhitespace(c: number): boolean {
  // ASCII space and controls (tab, CR, LF, ...) plus the Unicode spaces String#trim knows.
  return c <= 0x20 || c === 0x7f || (c > 0x7f && String.fromCharCode(c).trim() === '');
}

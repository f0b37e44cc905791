/** Where an API key may come in a URL fragment: `#key=abc`, or after a route, `#/c/x&key=abc`. */

/** `#key=abc` or `#/c/x&key=abc` -> ['abc', the fragment without it]. */
export function takeKeyFromHash(hash: string): [string | null, string] {
  const m = /(^#|[#&?])key=([^&]*)/.exec(hash);
  if (!m) return [null, hash];
  let key: string;
  try {
    key = decodeURIComponent(m[2]!);
  } catch {
    key = m[2]!;
  }
  const after = hash.slice(m.index + m[0].length);
  // `#key=a&x` -> `#x`; `#/c/x&key=a&y` -> `#/c/x&y`.
  let rest = m[1] === '#' ? `#${after.replace(/^&/, '')}` : hash.slice(0, m.index) + after;
  rest = rest.replace(/[&?]$/, '');
  if (rest === '#' || rest === '') rest = '#/';
  return [key.trim() || null, rest];
}

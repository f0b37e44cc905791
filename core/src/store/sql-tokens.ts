/**
 * A small ClickHouse SQL tokenizer: enough to find clauses at the right nesting depth while
 * keeping every other character of the statement (formatting included) as it was written
 * (cluster-ddl.ts rewrites the single-node DDL with it).
 */

/** SQL this generator cannot read or convert, with the statement it was in. */
export class ClusterDdlError extends Error {
  constructor(message: string, readonly statement: string) {
    super(`${message}\n  in: ${statement.replace(/\s+/g, ' ').trim().slice(0, 200)}`);
    this.name = 'ClusterDdlError';
  }
}

export type TokenType = 'ws' | 'comment' | 'string' | 'qident' | 'ident' | 'number' | 'punct';
export interface Token {
  type: TokenType;
  text: string;
}

export function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    const start = i;
    if (/\s/.test(c)) {
      while (i < n && /\s/.test(sql[i]!)) i++;
      out.push({ type: 'ws', text: sql.slice(start, i) });
    } else if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++;
      out.push({ type: 'comment', text: sql.slice(start, i) });
    } else if (c === '/' && sql[i + 1] === '*') {
      const end = sql.indexOf('*/', i + 2);
      if (end < 0) throw new SyntaxError(`unterminated comment at ${i}`);
      i = end + 2;
      out.push({ type: 'comment', text: sql.slice(start, i) });
    } else if (c === "'" || c === '`' || c === '"') {
      i++;
      for (;;) {
        if (i >= n) throw new SyntaxError(`unterminated ${c} at ${start}`);
        const d = sql[i]!;
        if (d === '\\') i += 2;
        else if (d === c && sql[i + 1] === c) i += 2;
        else if (d === c) {
          i++;
          break;
        } else i++;
      }
      out.push({ type: c === "'" ? 'string' : 'qident', text: sql.slice(start, i) });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < n && /[A-Za-z0-9_$]/.test(sql[i]!)) i++;
      out.push({ type: 'ident', text: sql.slice(start, i) });
    } else if (/[0-9]/.test(c)) {
      while (i < n && /[0-9A-Za-z_.]/.test(sql[i]!)) i++;
      out.push({ type: 'number', text: sql.slice(start, i) });
    } else {
      i++;
      out.push({ type: 'punct', text: c });
    }
  }
  return out;
}

/** Significant tokens with their nesting depth (parentheses and brackets), over the full token list. */
export class Statement {
  readonly sig: Token[] = [];
  readonly depth: number[] = [];
  /** Index in `all` of each significant token. */
  private readonly pos: number[] = [];
  private readonly all: Token[];

  constructor(readonly sql: string) {
    this.all = tokenize(sql);
    let last = this.all.length - 1;
    while (last >= 0 && (this.all[last]!.type === 'ws' || this.all[last]!.type === 'comment' || this.all[last]!.text === ';')) last--;
    this.all = this.all.slice(0, last + 1);
    let d = 0;
    this.all.forEach((t, k) => {
      if (t.type === 'ws' || t.type === 'comment') return;
      if (t.type === 'punct' && (t.text === ')' || t.text === ']')) d--;
      if (d < 0) throw new ClusterDdlError('unbalanced parentheses', sql);
      this.sig.push(t);
      this.pos.push(k);
      this.depth.push(d);
      if (t.type === 'punct' && (t.text === '(' || t.text === '[')) d++;
    });
    if (d !== 0) throw new ClusterDdlError('unbalanced parentheses', sql);
  }

  is(i: number, ...words: string[]): boolean {
    return words.every((w, k) => {
      const t = this.sig[i + k];
      return t !== undefined && t.type === 'ident' && t.text.toUpperCase() === w;
    });
  }

  punct(i: number, p: string): boolean {
    const t = this.sig[i];
    return t !== undefined && t.type === 'punct' && t.text === p;
  }

  /** Index of the first top-level (depth 0) keyword sequence at or after `from`, or -1. */
  find(from: number, ...words: string[]): number {
    for (let i = from; i < this.sig.length; i++) if (this.depth[i] === 0 && this.is(i, ...words)) return i;
    return -1;
  }

  /** Index just past the parenthesis group opening at `open`. */
  closeOf(open: number): number {
    const d = this.depth[open]!;
    for (let i = open + 1; i < this.sig.length; i++) if (this.punct(i, ')') && this.depth[i] === d) return i + 1;
    throw new ClusterDdlError('unbalanced parentheses', this.sql);
  }

  /** `[db.]name` at i: the parts unquoted, and the index after it. */
  name(i: number): { db: string | undefined; table: string; end: number } {
    const a = this.sig[i];
    if (!a || (a.type !== 'ident' && a.type !== 'qident')) throw new ClusterDdlError(`expected a name at token ${i}`, this.sql);
    if (this.punct(i + 1, '.')) {
      const b = this.sig[i + 2];
      if (!b || (b.type !== 'ident' && b.type !== 'qident')) throw new ClusterDdlError('expected a table name after the dot', this.sql);
      return { db: unquote(a), table: unquote(b), end: i + 3 };
    }
    return { db: undefined, table: unquote(a), end: i + 1 };
  }

  /**
   * The whole statement with edits applied: each replaces significant tokens [from, to) by `text`,
   * or, when from === to, inserts `text` right after token from - 1. Everything else is kept as written.
   */
  edit(edits: { from: number; to: number; text: string }[], map?: (t: Token) => Token): string {
    const replace = new Map<number, { end: number; text: string }>();
    const insertAfter = new Map<number, string>();
    for (const e of edits) {
      if (e.to > e.from) replace.set(this.pos[e.from]!, { end: this.pos[e.to - 1]!, text: e.text });
      else {
        const k = e.from === 0 ? -1 : e.from >= this.sig.length ? this.all.length - 1 : this.pos[e.from - 1]!;
        insertAfter.set(k, (insertAfter.get(k) ?? '') + e.text);
      }
    }
    let out = insertAfter.get(-1) ?? '';
    for (let k = 0; k < this.all.length; k++) {
      const r = replace.get(k);
      if (r) {
        out += r.text;
        k = r.end;
      } else out += (map ? map(this.all[k]!) : this.all[k]!).text;
      out += insertAfter.get(k) ?? '';
    }
    return out;
  }

  /** The source text of significant tokens [from, to), as written (whitespace and comments kept). */
  text(from: number, to = this.sig.length, map?: (t: Token) => Token): string {
    if (from >= to) return '';
    const tokens = this.all.slice(this.pos[from]!, this.pos[to - 1]! + 1);
    return (map ? tokens.map(map) : tokens).map((t) => t.text).join('');
  }
}

export function unquote(t: Token): string {
  return t.type === 'qident' ? t.text.slice(1, -1).replace(/\\(.)/g, '$1') : t.text;
}

export function identifierColumns(expr: string): string[] {
  const toks = tokenize(expr).filter((t) => t.type !== 'ws' && t.type !== 'comment');
  const cols: string[] = [];
  toks.forEach((t, k) => {
    if ((t.type === 'ident' || t.type === 'qident') && toks[k + 1]?.text !== '(') cols.push(unquote(t));
  });
  return cols;
}

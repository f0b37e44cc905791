/** Argument parsing shared by the inference package's commands (`afterglow tie`, `assets import`, `train`). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CommandArgs {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Strict `parseArgs` of `argv` with `options` plus `--help`/`-h`. A bad option writes its message and
 * `usage` to `io.stderr` and yields exit code 2; `--help` writes `usage` to `io.help` (default stderr)
 * and yields 0. Otherwise the parsed values and positionals.
 */
export function parseCommandArgs(
  argv: readonly string[],
  options: NonNullable<ParseArgsConfig['options']>,
  usage: string,
  io: { stderr: NodeJS.WritableStream; help?: NodeJS.WritableStream },
  allowPositionals = false,
): CommandArgs | number {
  let parsed: CommandArgs;
  try {
    parsed = parseArgs({ args: [...argv], options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals }) as CommandArgs;
  } catch (err) {
    io.stderr.write(`${(err as Error).message}\n\n${usage}\n`);
    return 2;
  }
  if (parsed.values.help) {
    (io.help ?? io.stderr).write(`${usage}\n`);
    return 0;
  }
  return parsed;
}

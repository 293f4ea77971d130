// The command-line entry: `npm run cli -- <command> [options]` or the
// package's bin. Every command reads the same environment as the server.
// A command's module is loaded only when that command runs, so a quick
// `token` or `--help` does not pay for loading the HTTP server.
import { ConfigError, loadConfig, type Config } from '../config.ts';

interface CommandModule {
  readonly help: string;
  run(config: Config, argv: string[]): Promise<number>;
}

type Command = {
  readonly summary: string;
  /** The command's help text and entry point. */
  load(): Promise<CommandModule>;
};

export const COMMANDS: Record<string, Command> = {
  token: {
    summary: 'mint a development access token',
    load: async () => {
      const m = await import('./token.ts');
      return { help: m.TOKEN_HELP, run: m.tokenCommand };
    },
  },
  project: {
    summary: 'run the projector as its own process',
    load: async () => {
      const m = await import('./project.ts');
      return { help: m.PROJECT_HELP, run: m.projectCommand };
    },
  },
  'projections rebuild': {
    summary: 'rebuild the read model from the event log (safe while serving)',
    load: async () => {
      const m = await import('./rebuild.ts');
      return { help: m.PROJECTIONS_REBUILD_HELP, run: m.projectionsRebuildCommand };
    },
  },
  'audit replay': {
    summary: 'the state of every webhook at a past instant, from the log alone, as JSON lines',
    load: async () => {
      const m = await import('./audit.ts');
      return { help: m.AUDIT_REPLAY_HELP, run: m.auditReplayCommand };
    },
  },
  'audit verify': {
    summary: "verify every stream's hash chain and the read model against the log",
    load: async () => {
      const m = await import('./audit.ts');
      return { help: m.AUDIT_VERIFY_HELP, run: m.auditVerifyCommand };
    },
  },
};

/** Exit status when a command fails unexpectedly (EX_SOFTWARE), distinct from a command's own answers. */
const EXIT_FAILURE = 70;

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return [
    'usage: webhook-registry <command> [options]',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`),
    '',
    'Run "<command> --help" for its options. Configuration comes from the environment (see README).',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${usage()}\n`);
    return first === undefined ? 2 : 0;
  }
  // Two-word commands ("audit verify", "projections rebuild") are keyed with a space.
  const twoWord = second !== undefined ? `${first} ${second}` : undefined;
  const [name, args] =
    twoWord !== undefined && COMMANDS[twoWord] ? [twoWord, rest] : [first, second === undefined ? rest : [second, ...rest]];
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  const module = await command.load();
  // --help needs no configuration.
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${module.help}\n`);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return 78;
    }
    throw error;
  }
  try {
    return await module.run(config, args);
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error).message}\n`);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main(process.argv.slice(2));

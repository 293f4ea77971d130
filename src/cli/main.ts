// The command-line entry: `npm run cli -- <command> [options]` or the
// package's bin. Every command reads the same environment as the server.
import { ConfigError, loadConfig, type Config } from '../config.ts';
import { PROJECT_HELP, projectCommand } from './project.ts';
import { TOKEN_HELP, tokenCommand } from './token.ts';

type Command = { readonly summary: string; readonly help: string; run(config: Config, argv: string[]): Promise<number> };

export const COMMANDS: Record<string, Command> = {
  token: { summary: 'mint a development access token', help: TOKEN_HELP, run: tokenCommand },
  project: { summary: 'run the projector as its own process', help: PROJECT_HELP, run: projectCommand },
};

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
  return command.run(config, args);
}

process.exitCode = await main(process.argv.slice(2));

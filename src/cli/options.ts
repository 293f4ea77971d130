// Option handling shared by the commands that take options: parsing with
// -h/--help, usage errors (the problem, then the command's help, on stderr;
// exit status 2) and --page-size.
import { parseArgs, type ParseArgsConfig } from 'node:util';

export const EXIT_USAGE = 2;

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

type CommandConfig<O extends OptionsConfig> = {
  args: string[];
  options: O & typeof HELP_OPTION;
  strict: true;
  allowPositionals: false;
};

export type CommandValues<O extends OptionsConfig> = ReturnType<typeof parseArgs<CommandConfig<O>>>['values'];

/** Writes `<command>: <message>`, a blank line and the help to stderr; returns the usage exit status. */
export function usageError(command: string, message: string, help: string): number {
  process.stderr.write(`${command}: ${message}\n\n${help}\n`);
  return EXIT_USAGE;
}

/**
 * Parses a command's options (plus -h/--help; no positionals). `exit`: the
 * command is done with this status: 0 after printing the help on stdout,
 * 2 after a usage error.
 */
export function parseCommandOptions<const O extends OptionsConfig>(
  command: string,
  help: string,
  argv: string[],
  options: O,
): { readonly values: CommandValues<O> } | { readonly exit: number } {
  let values: CommandValues<O>;
  try {
    const config: CommandConfig<O> = { args: argv, options: { ...options, ...HELP_OPTION }, strict: true, allowPositionals: false };
    ({ values } = parseArgs(config));
  } catch (error) {
    return { exit: usageError(command, (error as Error).message, help) };
  }
  // (O is still open here, so TypeScript cannot see the help flag it adds.)
  if ((values as { readonly help?: boolean }).help === true) {
    process.stdout.write(`${help}\n`);
    return { exit: 0 };
  }
  return { values };
}

export const PAGE_SIZE_PROBLEM = '--page-size must be a whole number from 1 to 100000';

/** --page-size: undefined when not given, 'invalid' when not a whole number from 1 to 100000. */
export function parsePageSize(text: string | undefined): number | undefined | 'invalid' {
  if (text === undefined) return undefined;
  const n = Number(text);
  return /^\d+$/.test(text) && Number.isSafeInteger(n) && n >= 1 && n <= 100_000 ? n : 'invalid';
}

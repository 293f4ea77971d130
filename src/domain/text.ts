// Well-formed text: no unpaired UTF-16 surrogates. Such strings cannot be
// encoded as UTF-8 (stores write U+FFFD instead) and strict JSON parsers
// refuse them, so nothing that holds one is accepted.

/** String.prototype.isWellFormed is in Node 20's V8 but not in the ES2023 lib this project compiles against. */
interface WellFormedString {
  isWellFormed(): boolean;
}

export function isWellFormedText(text: string): boolean {
  return (text as unknown as WellFormedString).isWellFormed();
}

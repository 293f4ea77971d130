// An output file that appears only when complete: written to a temporary file
// beside the target (same directory, so same file system), flushed to disk,
// then renamed over the target in one step. An interrupted run never leaves a
// partial target; a crash (kill -9, power loss) leaves at most a
// "<name>.<pid>.partial" file, never a truncated <name>.
import { randomBytes } from 'node:crypto';
import { open, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export class AtomicFile {
  private finished = false;

  private constructor(
    readonly target: string,
    readonly temporary: string,
    private readonly handle: FileHandle,
  ) {}

  /** Creates the temporary file now, so an unwritable destination fails before any long work. */
  static async create(target: string): Promise<AtomicFile> {
    const absolute = path.resolve(target);
    const temporary = path.join(
      path.dirname(absolute),
      `.${path.basename(absolute)}.${process.pid}.${randomBytes(3).toString('hex')}.partial`,
    );
    const handle = await open(temporary, 'wx', 0o644);
    return new AtomicFile(absolute, temporary, handle);
  }

  async write(text: string): Promise<void> {
    await this.handle.write(text);
  }

  /** fsync, close and rename over the target (then fsync the directory, best effort). */
  async commit(): Promise<void> {
    if (this.finished) throw new Error('output file already finished');
    this.finished = true;
    await this.handle.sync();
    await this.handle.close();
    await rename(this.temporary, this.target);
    try {
      const dir = await open(path.dirname(this.target), 'r');
      try {
        await dir.sync();
      } finally {
        await dir.close();
      }
    } catch {
      // Some platforms cannot fsync a directory; the rename is still atomic.
    }
  }

  /** Removes the temporary file; the target is left as it was. */
  async discard(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.handle.close().catch(() => undefined);
    await rm(this.temporary, { force: true });
  }
}

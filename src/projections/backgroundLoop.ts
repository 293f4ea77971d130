// A loop that runs in the background until stopped (the projector, the
// change feed's follower): start() begins it once; stop() aborts its signal
// and waits until the loop has returned, so whatever it was committing is done.
export class BackgroundLoop {
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly body: (signal: AbortSignal) => Promise<void>) {}

  get running(): boolean {
    return this.loop !== undefined;
  }

  start(): void {
    if (this.loop) return;
    const controller = new AbortController();
    this.controller = controller;
    this.loop = this.body(controller.signal);
  }

  async stop(): Promise<void> {
    this.controller?.abort();
    await this.loop;
    this.loop = undefined;
  }
}

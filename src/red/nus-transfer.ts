/**
 * What the two YMODEM-over-NUS nodes (nus-ymodem-receive, nus-ymodem-send) share: which device a message selects,
 * and the triggers' queue: one transfer at a time per node, a bounded number waiting, each transfer in its turn on
 * the device (src/red/device-turns.ts, shared with every other node on the adapter), and a close that drops the
 * waiting triggers and withdraws a wait for a turn.
 */
import type { NodeMessage, NodeMessageInFlow, NodeStatus } from "node-red";
import type { DeviceSelector } from "../ble/selector";
import { NUS_SERVICE } from "../protocol/nus";
import { turnsOf } from "./device-turns";
import { addressProperty } from "./properties";
import type { Translate } from "./status";

/** Triggers waiting while a transfer runs; more are refused (a flow that triggers in a loop must not pile up). */
export const QUEUE_LIMIT = 10;

export type InputMessage = NodeMessageInFlow & Record<string, unknown>;
export type Send = (msg: NodeMessage | NodeMessage[]) => void;
export type Done = (err?: Error) => void;

export interface Job {
  msg: InputMessage;
  send: Send;
  done: Done;
}

/**
 * The device of one transfer: msg.address, else the configured address (it identifies the device alone: its
 * advertised name may differ), else the configured name, else any device advertising NUS.
 */
export function nusSelector(cfg: { address: string; deviceName: string }, msg: InputMessage): DeviceSelector {
  if (msg.address !== undefined && msg.address !== null && msg.address !== "") return { address: addressProperty(msg.address) };
  if (cfg.address) return { address: cfg.address };
  return cfg.deviceName ? { name: cfg.deviceName } : { service: NUS_SERVICE };
}

/**
 * A node's triggers, run one after another by `run`. The node's catalog words the texts: `status.queued`,
 * `status.waiting-turn`, `errors.queue-full`, `errors.closed`.
 */
export class TransferQueue {
  private readonly jobs: Job[] = [];
  private draining: Promise<void> | null = null;
  private waitingTurn: AbortController | null = null;
  private closing = false;
  private lastStatus: NodeStatus = {};

  constructor(
    private readonly t: Translate,
    private readonly showStatus: (s: NodeStatus) => void,
    private readonly run: (job: Job) => Promise<void>,
  ) {}

  get closed(): boolean {
    return this.closing;
  }

  /** Sets the node's status, with the number of waiting triggers appended while there are any. */
  status(s: NodeStatus): void {
    this.lastStatus = s;
    const queued = s.text !== undefined && this.jobs.length > 0;
    this.showStatus(queued ? { ...s, text: this.t("status.queued", { status: String(s.text), count: this.jobs.length }) } : s);
  }

  /** A trigger: run now, queued, or refused (queue full: never interleaved, one link carries one transfer). */
  push(job: Job): void {
    if (this.closing) {
      job.done();
      return;
    }
    if (this.draining && this.jobs.length >= QUEUE_LIMIT) {
      job.done(new Error(this.t("errors.queue-full", { limit: QUEUE_LIMIT })));
      return;
    }
    this.jobs.push(job);
    if (this.draining) this.status(this.lastStatus);
    else this.draining = this.drain();
  }

  /**
   * Waits for the turn on `address` (null: any device) on this adapter; resolves with the function that ends it,
   * or null when the node closed meanwhile (the job is then done with `errors.closed`).
   */
  async takeTurn(adapter: object, address: string | null, job: Job): Promise<(() => void) | null> {
    const turns = turnsOf(adapter);
    // Another transfer on this device may be running: wait for it to end (every transfer is bounded).
    if (!turns.isFree(address)) this.status({ fill: "yellow", shape: "ring", text: this.t("status.waiting-turn") });
    this.waitingTurn = new AbortController();
    let endTurn: () => void;
    try {
      endTurn = await turns.take(address, this.waitingTurn.signal);
    } catch {
      job.done(new Error(this.t("errors.closed")));
      return null;
    } finally {
      this.waitingTurn = null;
    }
    if (this.closing) {
      endTurn();
      job.done(new Error(this.t("errors.closed")));
      return null;
    }
    return endTurn;
  }

  /** The node closes: waiting triggers are dropped quietly; resolves once the running transfer has ended. */
  close(): Promise<void> {
    this.closing = true;
    for (const job of this.jobs.splice(0)) job.done();
    this.waitingTurn?.abort();
    return this.draining ?? Promise.resolve();
  }

  private async drain(): Promise<void> {
    for (let job = this.jobs.shift(); job && !this.closing; job = this.jobs.shift()) await this.run(job);
    this.draining = null;
  }
}

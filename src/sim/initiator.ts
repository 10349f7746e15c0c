/**
 * Initiating on the virtual controller: one LE Create Connection at a time, completed connectDelayMs after its peer
 * advertises (powered on, not connected, the address type the host named), as real hardware only connects to an
 * advertiser it hears. The radio then opens the link.
 */
import type { ControllerPorts, PeripheralEntry } from "./connection";
import type { LinkRequest, Radio } from "./radio";
import type { Timer } from "../protocol/clock";

interface PendingCreate extends LinkRequest {
  timer?: Timer;
}

export class Initiator {
  private pending?: PendingCreate;

  constructor(
    private readonly ports: ControllerPorts,
    private readonly entries: ReadonlyMap<string, PeripheralEntry>,
    private readonly radio: Radio,
    private readonly connectDelayMs: number,
  ) {}

  /** An LE Create Connection is pending (a second one is disallowed). */
  get busy(): boolean {
    return this.pending !== undefined;
  }

  start(request: LinkRequest): void {
    this.pending = { ...request };
    this.tryComplete();
  }

  /** Completes the pending LE Create Connection once its peer advertises (powered on, not connected). */
  tryComplete(): void {
    const pending = this.pending;
    if (!pending || pending.timer) return;
    const entry = this.entries.get(pending.address);
    // The initiator only connects to the address and address type it was given, as real hardware does.
    // A non-connectable advertiser ignores CONNECT_IND: the creation stays pending until the host cancels it.
    if (!entry || !entry.powered || entry.connection || entry.peripheral.connectable === false) return;
    if ((entry.peripheral.addressType === "random" ? 1 : 0) !== pending.addressType) return;
    pending.timer = this.ports.clock.setTimeout(() => {
      pending.timer = undefined;
      if (this.pending !== pending || !entry.powered || entry.connection) return;
      this.pending = undefined;
      this.radio.open(entry, pending);
    }, this.connectDelayMs);
  }

  /** LE Create Connection Cancel: the request it cancelled, or undefined when none was pending. */
  cancel(): LinkRequest | undefined {
    const pending = this.pending;
    if (!pending) return undefined;
    pending.timer?.cancel();
    this.pending = undefined;
    return pending;
  }

  /** The peer stopped advertising: a connection about to complete waits for it again. */
  peerPoweredOff(entry: PeripheralEntry): void {
    const pending = this.pending;
    if (pending && pending.address === entry.peripheral.address.toLowerCase()) {
      pending.timer?.cancel();
      pending.timer = undefined;
    }
  }

  /** HCI Reset or close: the request vanishes without an event. */
  reset(): void {
    this.pending?.timer?.cancel();
    this.pending = undefined;
  }
}
